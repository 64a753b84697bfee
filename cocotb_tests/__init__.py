"""cocotb benches, run under Verilator through :func:`sim.runner.run_cocotb`.

Bench modules are named ``bench_*.py`` so pytest never collects them; the
pytest side that drives each bench lives in ``tests/``. See
``docs/simulation.md``.
"""
