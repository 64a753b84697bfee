"""Every register input's timing, from the SDF file nextpnr writes after routing.

nextpnr's log and report name one critical path per clock. When a design misses
its target by a quarter, the question is how many paths fail and in which
blocks, which that one path does not answer. This reads the routed delays
(``nextpnr --sdf``: every cell's pin-to-pin delay and every routed connection)
and finds, for every timing endpoint (a flip-flop, block RAM or DSP input with a
setup check), the slowest path into it: the arrival time plus the setup time.

The analysis assumes one clock: every path starts at a register's clock pin
(or an input pad) and is timed against one period; the clock tree is common to
both ends of a path and not modelled (nextpnr's own analysis leaves it out
too), and constants start no path. That is the boards' case (one PLL output;
the UART input goes through a synchroniser). On both boards' builds the worst
endpoint equals nextpnr's critical path within 5 ps (``tests/test_fpga_build.py``
checks it against nextpnr's Fmax).

Each failing path is also classed by the hard blocks it passes through (block
RAM, multiplier, LUT RAM, or logic only) and split into routing and cell delay:
on the ECP5 a block RAM read without its output register takes about 5 ns and
a MULT18X18D about 4 ns of a 10 ns period before any routing, so these classes
say which fix a failing path needs (an output register, a pipelined multiplier)
rather than another cut in the logic.

``python -m fpga.sdf_timing build/fpga/ulx3s-85f/spikecore.sdf --period 10``
prints the summary; :func:`build_board <fpga.build.build_board>` writes it as
``timing.txt`` beside the bitstream.
"""

from __future__ import annotations

import argparse
import collections
import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["TimingGraph", "Endpoint", "read_sdf", "block_of", "path_kinds", "summarise", "format_timing"]

_INSTANCE = re.compile(r"\(INSTANCE\s*([^)\s]*)\s*\)")
_EDGE_PIN = r"(?:\((?:posedge|negedge)\s+([^)\s]+)\)|([^()\s]+))"
_IOPATH = re.compile(r"\(IOPATH\s+" + _EDGE_PIN + r"\s+([^()\s]+)\s+(.*)\)\s*$")
_INTERCONNECT = re.compile(r"\(INTERCONNECT\s+([^()\s]+)\s+([^()\s]+)\s+(.*)\)\s*$")
_CHECK = re.compile(r"\((SETUPHOLD|SETUP)\s+" + _EDGE_PIN + r"\s+\((?:posedge|negedge)\s+([^)\s]+)\)\s+\(([^)]*)\)")
_TRIPLE = re.compile(r"\(([^()]*)\)")
_TIMESCALE = re.compile(r"\(TIMESCALE\s+(\d+)\s*(ps|ns)\s*\)")
_CELLTYPE = re.compile(r'\(CELLTYPE\s+"([^"]*)"\s*\)')

# nextpnr's cell types (ECP5, iCE40) of the hard blocks a path may pass through; LUT RAM is a
# TRELLIS_COMB that the packer named "...$DPRAM_COMBn".
HARD_BLOCKS = {
    "block RAM": ("DP16KD", "PDPW16KD", "ICESTORM_RAM", "ICESTORM_SPRAM"),
    "multiplier": ("MULT18X18D", "ALU54B", "ICESTORM_DSP"),
}
KINDS = (*HARD_BLOCKS, "LUT RAM", "logic")   # the classes of a path, in the order they are reported


def _worst(triples: str) -> float:
    """The largest value of ``(min:typ:max) (min:typ:max)`` (rise, fall), in the file's unit."""
    values = [float(v) for t in _TRIPLE.findall(triples) for v in t.split(":") if v.strip()]
    return max(values, default=0.0)


@dataclass(frozen=True)
class Endpoint:
    """A timed input: ``delay_ns`` is its slowest path's delay plus its setup time, the shortest clock
    period it allows."""
    pin: str
    delay_ns: float
    path: tuple[str, ...]   # pins from the path's start to ``pin``
    arrivals: tuple[float, ...] = ()   # arrival time at each pin of ``path`` (ns)
    kinds: tuple[str, ...] = ("logic",)  # the hard blocks the path crosses (:func:`path_kinds`)

    @property
    def routing_ns(self) -> float:
        """The path's delay on routed nets (the hops between two cells; the rest is in cells)."""
        return sum(b - a for p, q, a, b in zip(self.path, self.path[1:], self.arrivals, self.arrivals[1:])
                   if _instance(p) != _instance(q))

    @property
    def start(self) -> str:
        """The path's first pin: the launching register's clock pin (or an input pad)."""
        return self.path[0]


class TimingGraph:
    """The routed design's delays: ``edges[pin] = [(next_pin, ns), ...]``, ``setup[pin] = ns``, and the
    pins that drive routed nets (``net_drivers``) and the clock pins of the setup checks (``clock_pins``)."""

    def __init__(self, edges: dict, setup: dict, net_drivers: set, clock_pins: set, celltypes: dict | None = None):
        self.edges, self.setup, self.net_drivers, self.clock_pins = edges, setup, net_drivers, clock_pins
        self.celltypes = celltypes or {}   # instance -> nextpnr cell type

    def endpoints(self) -> list[Endpoint]:
        """Every endpoint reached from a start pin, slowest first (longest paths; the graph is acyclic).

        A path starts at a register's clock pin (arrival 0: the clock tree is common to launch and
        capture) or at a net driver nothing drives (an input pad). Constants (nextpnr's
        ``$PACKER_VCC``/``$PACKER_GND`` nets) and cell inputs tied inside the cell start no path.
        """
        indeg = collections.Counter()
        for outs in self.edges.values():
            for dst, _ in outs:
                indeg[dst] += 1
        order = collections.deque(pin for pin in self.edges if indeg[pin] == 0)
        arrival = {pin: 0.0 for pin in order if pin in self.net_drivers}
        pred = {}
        while order:
            pin = order.popleft()
            a = arrival.get(pin)
            for dst, ns in self.edges.get(pin, ()):
                if a is not None and dst in self.clock_pins:
                    arrival[dst] = 0.0    # launch: the clock tree is common to both ends (no skew model)
                elif a is not None and a + ns > arrival.get(dst, -1.0):
                    arrival[dst], pred[dst] = a + ns, pin
                indeg[dst] -= 1
                if indeg[dst] == 0:
                    order.append(dst)
        if any(n > 0 for n in indeg.values()):
            raise ValueError("the SDF's delay graph has a combinational loop; endpoint timing needs a DAG")
        result = []
        for pin, setup in self.setup.items():
            if pin not in arrival:
                continue
            path = [pin]
            while path[-1] in pred:
                path.append(pred[path[-1]])
            path.reverse()
            result.append(Endpoint(pin, arrival[pin] + setup, tuple(path), tuple(arrival[p] for p in path),
                                   path_kinds(path, self.celltypes)))
        result.sort(key=lambda e: -e.delay_ns)
        return result


def read_sdf(path) -> TimingGraph:
    """Parse nextpnr's SDF (one construct per line, as nextpnr writes it); delays in ns, worst corner."""
    path = Path(path)
    edges, setup, drivers, clocks = collections.defaultdict(list), {}, set(), set()
    sinks = collections.defaultdict(list)
    scale, instance, seen, celltype, celltypes = 1e-3, "", 0, "", {}
    with path.open() as f:
        for line in f:
            line = line.strip().replace("\\", "")   # SDF escapes '$' and '.' in names
            if line.startswith("(INTERCONNECT"):
                m = _INTERCONNECT.match(line)
                if m:
                    edges[m[1]].append((m[2], _worst(m[3]) * scale))
                    if not m[1].startswith("$PACKER_"):   # the constant drivers: not timed
                        drivers.add(m[1])
                    sinks[m[1]].append(m[2])
                    seen += 1
            elif line.startswith("(IOPATH"):
                m = _IOPATH.match(line)
                if m:
                    src = m[1] or m[2]
                    edges[f"{instance}/{src}"].append((f"{instance}/{m[3]}", _worst(m[4]) * scale))
            elif line.startswith(("(SETUPHOLD", "(SETUP ")):
                m = _CHECK.match(line)
                if m:
                    pin = f"{instance}/{m[2] or m[3]}"
                    setup[pin] = max(setup.get(pin, 0.0), _worst(f"({m[5]})") * scale)
                    clocks.add(f"{instance}/{m[4]}")
            elif line.startswith("(CELLTYPE"):
                m = _CELLTYPE.match(line)
                celltype = m[1] if m else ""
            elif line.startswith("(INSTANCE"):
                m = _INSTANCE.match(line)
                instance = m[1] if m else ""
                if instance:
                    celltypes[instance] = celltype
            elif line.startswith("(TIMESCALE"):
                m = _TIMESCALE.match(line)
                if not m:
                    raise ValueError(f"{path}: unsupported TIMESCALE line {line!r}")
                scale = int(m[1]) * (1e-3 if m[2] == "ps" else 1.0)
    if not seen:
        raise ValueError(f"{path}: no INTERCONNECT delays: not a routed design's SDF from nextpnr")
    # a clock net reaches every register, including those without a setup check of their own
    for driver in {d for d, pins in sinks.items() if any(p in clocks for p in pins)}:
        clocks.update(sinks[driver])
    return TimingGraph(dict(edges), setup, drivers, clocks, celltypes)


def _instance(pin: str) -> str:
    return pin.rsplit("/", 1)[0]


def path_kinds(path, celltypes: dict) -> tuple[str, ...]:
    """The hard blocks ``path`` passes through (``"block RAM"``, ``"multiplier"``, ``"LUT RAM"``, in
    that order), or ``("logic",)`` for a path of LUTs, carry chains and registers only."""
    found = set()
    for pin in path:
        inst = _instance(pin)
        ct = celltypes.get(inst, "")
        for kind, types in HARD_BLOCKS.items():
            if ct in types:
                found.add(kind)
        if "$DPRAM" in inst:
            found.add("LUT RAM")
    return tuple(k for k in KINDS if k in found) or ("logic",)


_CELL_SUFFIX = re.compile(r"(_TRELLIS_|\$DPRAM|_DI_|\$CCU2|_LUT4|_MULT18|_DP16KD|_SB_|\$nextpnr|_CCU2C)")


def block_of(pin: str) -> tuple[str, str]:
    """``(module path, signal)`` of a cell pin named after the netlist (``design.exodus.layer0.acc_mem.0.14``
    -> ``("design.exodus.layer0", "acc_mem")``): the cell's suffix, bit and memory-slice numbers dropped."""
    name = pin.split("/")[0]
    name = _CELL_SUFFIX.split(name, maxsplit=1)[0]
    parts = name.split(".")
    while len(parts) > 1 and (not parts[-1] or parts[-1][0].isdigit()):
        parts.pop()
    signal = parts[-1].split("$")[0] if parts[-1] else parts[-1]
    return ".".join(parts[:-1]), signal


def summarise(endpoints: list[Endpoint], period_ns: float, *, top: int = 20) -> dict:
    """Counts, the worst endpoint, the failing endpoints grouped by (source block, destination block),
    and by the hard blocks on their paths (``by_kind``: a path counts under each it passes through),
    with the share of their delay spent in routing."""
    failing = [e for e in endpoints if e.delay_ns > period_ns]
    groups = {}
    for e in failing:
        key = (block_of(e.start)[0], block_of(e.pin)[0])
        n, worst = groups.get(key, (0, 0.0))
        groups[key] = (n + 1, max(worst, e.delay_ns))
    ranked = sorted(groups.items(), key=lambda kv: -kv[1][1])
    kinds = collections.Counter(k for e in failing for k in e.kinds)
    total = sum(e.arrivals[-1] for e in failing if e.arrivals)
    routed = sum(e.routing_ns for e in failing if e.arrivals)
    return {
        "period_ns": period_ns,
        "endpoints": len(endpoints),
        "failing": len(failing),
        "worst_ns": round(endpoints[0].delay_ns, 3) if endpoints else None,
        "by_block": [{"from": a, "to": b, "failing": n, "worst_ns": round(w, 3)} for (a, b), (n, w) in ranked[:top]],
        "blocks_failing": len(groups),
        "by_kind": {k: kinds[k] for k in KINDS if kinds[k]},
        "routing_share": round(routed / total, 3) if total else None,
    }


def format_timing(s: dict, endpoints: list[Endpoint] | None = None, *, paths: int = 3) -> str:
    lines = [f"endpoints {s['endpoints']}, failing at {s['period_ns']:.3f} ns: {s['failing']}"
             + (f", worst {s['worst_ns']:.3f} ns ({1000 / s['worst_ns']:.2f} MHz)" if s["worst_ns"] else "")]
    if s["by_block"]:
        lines.append(f"failing endpoints by (source block -> destination block), {s['blocks_failing']} pairs, "
                     f"worst first:")
        for g in s["by_block"]:
            lines.append(f"  {g['worst_ns']:7.3f} ns {g['failing']:6d}  {g['from'] or '(top)'} -> {g['to'] or '(top)'}")
    if s.get("by_kind"):
        lines.append("failing endpoints by the hard blocks on their paths (a path counts under each): "
                     + ", ".join(f"{k} {n}" for k, n in s["by_kind"].items())
                     + (f"; {100 * s['routing_share']:.0f} % of their delay is routing" if s.get("routing_share") else ""))
    for e in (endpoints or [])[:paths]:
        lines.append(f"path to {e.pin} ({e.delay_ns:.3f} ns with setup, {e.routing_ns:.3f} ns of it routing):")
        lines.extend(f"    {a:7.3f}  {p}" for p, a in zip(e.path, e.arrivals or (0.0,) * len(e.path)))
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m fpga.sdf_timing", description=__doc__.split("\n\n")[0])
    ap.add_argument("sdf", type=Path, help="the SDF nextpnr wrote (--sdf)")
    ap.add_argument("--period", type=float, required=True, help="clock period in ns")
    ap.add_argument("--top", type=int, default=40, help="block pairs to list")
    ap.add_argument("--paths", type=int, default=3, help="slowest paths to print in full")
    args = ap.parse_args(argv)
    eps = read_sdf(args.sdf).endpoints()
    print(format_timing(summarise(eps, args.period, top=args.top), eps, paths=args.paths), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
