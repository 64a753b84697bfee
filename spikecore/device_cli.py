"""``spikecore load`` / ``eval`` / ``train --on-device``: the host side of the protocol.

Every command opens one device:

* ``--port /dev/ttyUSB1`` -- a board on a serial port (pyserial);
* ``--sim`` -- the Verilated ``SpikeGradSystem`` driven over its UART pins
  (built on first use, cached);
* ``--virtual`` -- the golden model behind a pseudo-terminal (no simulator).

Files are validated before anything is sent: a bad weight or configuration
file never reaches the device.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

from spikecore.config import SpikeGradConfig


def add_device_options(p) -> None:
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--port", help="serial port of a board (e.g. /dev/ttyUSB1)")
    g.add_argument("--sim", action="store_true", help="the Verilated core, over its UART pins")
    g.add_argument("--virtual", action="store_true", help="the golden model behind a pseudo-terminal")
    p.add_argument("--baud", type=int, default=115200, help="serial baud rate (with --port)")
    p.add_argument("--config", help="configuration of the simulated/virtual device (default: the built-in one)")


@contextlib.contextmanager
def open_device(args, cfg: SpikeGradConfig | None = None):
    """Yield a transport for the device the options name."""
    from spikecore.host.transports import SerialTransport, SimulatedSystem, VirtualDevice

    if args.port:
        with SerialTransport(args.port, args.baud) as t:
            yield t
        return
    cfg = cfg or (SpikeGradConfig.load(args.config) if args.config else SpikeGradConfig())
    if args.sim:
        print("starting the simulated core (the first run builds it with Verilator)...", flush=True)
        with SimulatedSystem(cfg) as t:
            yield t
        return
    with VirtualDevice(cfg) as dev, SerialTransport(dev.port) as t:
        yield t


def _weights_config(path) -> SpikeGradConfig:
    """Validate a weight file up front (raises before any device is opened)."""
    from golden.spikegrad.weights import load
    return load(path).config


def cmd_load(args) -> int:
    from spikecore.host.client import load

    cfg = _weights_config(args.weights)
    with open_device(args, cfg) as t:
        params = load(args.weights, t, progress=not args.quiet)
    sizes = [tuple(w.shape) for w in params.weights]
    print(f"loaded {args.weights} ({sizes}) and verified it by reading it back")
    return 0


def cmd_eval(args) -> int:
    from spikecore.host.client import SpikecoreClient, evaluate, load

    cfg = _weights_config(args.weights) if args.weights else None
    with open_device(args, cfg) as t:
        if args.weights:
            load(args.weights, t, progress=not args.quiet)
        res = evaluate(t, args.split, limit=args.limit, progress=not args.quiet)
        counters = SpikecoreClient(t).read_counters()
    print(f"{args.split} accuracy on the device: {100 * res['accuracy']:.2f} % ({res['correct']}/{res['samples']})")
    if "identical_to_golden" in res:
        print(f"identical to the golden integer model: {res['identical_to_golden']}")
    print("counters of the last sample: " + ", ".join(f"{k} {v}" for k, v in counters.items()))
    if args.json:
        Path(args.json).write_text(json.dumps({k: v for k, v in res.items() if k != "predictions"}, indent=2))
    return 0 if res.get("identical_to_golden", True) else 1


def cmd_train_on_device(args) -> int:
    from golden.spikegrad import weights as weight_file
    from spikecore.host.client import load, train_on_device

    if not args.weights:
        raise ValueError("train --on-device needs --weights FILE (the starting weights)")
    cfg = _weights_config(args.weights)
    with open_device(args, cfg) as t:
        load(args.weights, t, progress=not args.quiet)
        res = train_on_device(t, args.samples, args.epochs, progress=not args.quiet)
    print(f"trained {res['steps']} steps on the device; online accuracy {100 * res['online_accuracy']:.2f} %")
    if "identical_to_golden" in res:
        print(f"weights read back identical to the golden model: {res['identical_to_golden']}")
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        weight_file.save(res["params"], Path(args.out) / "weights_device.json")
        print(f"wrote {args.out}/weights_device.json")
    return 0 if res.get("identical_to_golden", True) else 1


def add_device_commands(sub) -> None:
    lp = sub.add_parser("load", help="load a weight file onto a device (validated first, read back)")
    lp.add_argument("weights")
    add_device_options(lp)
    lp.add_argument("--quiet", action="store_true")
    lp.set_defaults(func=cmd_load)

    ep = sub.add_parser("eval", help="run a digits split through a device: accuracy and counters")
    add_device_options(ep)
    ep.add_argument("--weights", help="load this weight file first (needed with --sim/--virtual)")
    ep.add_argument("--split", default="test", choices=["test", "train"])
    ep.add_argument("--limit", type=int, help="only the first N samples")
    ep.add_argument("--json", help="write the result as JSON")
    ep.add_argument("--quiet", action="store_true")
    ep.set_defaults(func=cmd_eval)
