"""The ``spikecore`` command line.

Subcommands:
  load      load a weight file onto a device (--port, --sim or --virtual)
  eval      accuracy and counters of a device on a digits split
  demo      the main job: train, then evaluate and train on the simulated core
  train     offline float training, quantisation and integer on-chip-rule
            training on the digits; writes weights, a plot and report.json;
            with --on-device, SpikeGrad training on a device through the protocol
  verilog   write standalone Verilog of the SpikeGrad core for any vendor flow
  build     FPGA bitstream for iCEBreaker or ULX3S-85F, with an Fmax/utilisation summary
  check     validate a configuration or weight file and print a summary
  nir       export a trained network as a NIR graph, or import one (snnTorch, Norse)
  config    print the default configuration as JSON (a starting point to edit)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from spikecore.config import ConfigError, SpikeGradConfig


def _load_config(path: str | None) -> SpikeGradConfig:
    return SpikeGradConfig.load(path) if path else SpikeGradConfig()


def cmd_train(args) -> int:
    if getattr(args, "on_device", False):
        from spikecore.device_cli import cmd_train_on_device
        if not (args.port or args.sim or args.virtual):
            raise ValueError("train --on-device needs one of --port PORT, --sim or --virtual")
        return cmd_train_on_device(args)
    if not args.out:
        raise ValueError("train needs --out DIR")
    from golden.spikegrad.report import run_training

    cfg = _load_config(args.config)
    report = run_training(cfg, Path(args.out), float_epochs=args.float_epochs, onchip_epochs=args.epochs,
                          seed=args.seed, sops_samples=args.sops_samples, progress=not args.quiet)
    acc = report["onchip_rule_test_accuracy"]
    print(f"float test accuracy:              {100 * report['float_test_accuracy']:.2f} %")
    print(f"quantised integer test accuracy:  {100 * report['int_inference_test_accuracy']:.2f} %")
    print(f"on-chip rule test accuracy/epoch: {' '.join(f'{100 * a:.2f}' for a in acc)}")
    print(f"synaptic ops per sample: forward {report['forward_sops_per_sample']:.0f}, "
          f"backward {report['backward_sops_per_sample']:.0f}, update {report['update_ops_per_sample']:.0f}")
    print(f"wrote {args.out}/report.json, training.png, weights_offline.json, weights_onchip.json, hex/")
    return 0


def cmd_demo(args) -> int:
    """The main job on the embedded default: train, then run the simulated core."""
    args.config = getattr(args, "config", None)
    args.epochs, args.float_epochs, args.seed, args.sops_samples = 10, 100, 0, None
    rc = cmd_train(args)
    if rc:
        return rc
    from sim.demo import run_core_demo
    return run_core_demo(_load_config(args.config), Path(args.out), progress=not args.quiet)


def cmd_verilog(args) -> int:
    from rtl.spikegrad import generate_core_verilog

    cfg = _load_config(args.config)
    text = generate_core_verilog(cfg, name=args.name)
    Path(args.output).write_text(text)
    print(f"wrote {args.output}: module {args.name}, layers {list(cfg.layer_sizes)}, lanes {cfg.lanes}")
    return 0


def cmd_build(args) -> int:
    from fpga.boards import BOARDS
    from fpga.build import BuildError, TimingError, build_board, format_summary, spikegrad_system_factory

    # Without --config the board's own default (fpga/configs/) is used.
    cfg = SpikeGradConfig.load(args.config) if args.config else BOARDS[args.board].load_config()
    out = Path(args.out or f"build/fpga/{args.board}")
    try:
        design = spikegrad_system_factory(args.board, cfg, baud=args.baud,
                                          exodus=None if args.spikegrad_only else "board")
        summary = build_board(args.board, design, out, mhz=args.mhz)
    except TimingError as e:
        print(f"spikecore: error: {e}", file=sys.stderr)
        print((out / "summary.txt").read_text(), file=sys.stderr)
        return 1
    except BuildError as e:
        print(f"spikecore: error: {e}", file=sys.stderr)
        return 1
    print(format_summary(summary), end="")
    print(f"wrote {out}/summary.json and {summary['bitstream']}")
    return 0


def cmd_check(args) -> int:
    from golden.spikegrad import weights as weight_file

    text = Path(args.file).read_text() if Path(args.file).exists() else None
    if text is None:
        raise ConfigError(f"{args.file}: no such file")
    doc = json.loads(text) if text.strip().startswith("{") else {}
    if doc.get("format") == weight_file.FORMAT_NAME:
        p = weight_file.load(args.file)
        print(f"{args.file}: valid weight file, layers {list(p.config.layer_sizes)}")
    else:
        cfg = SpikeGradConfig.load(args.file)
        print(f"{args.file}: valid configuration, layers {list(cfg.layer_sizes)}")
    return 0


def cmd_config(args) -> int:
    print(SpikeGradConfig().to_json())
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="spikecore", description="spikecore: on-chip learning SNN core")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train on the digits (float offline + integer on-chip rule)")
    t.add_argument("--out", help="output folder (required for offline training)")
    t.add_argument("--config", help="configuration JSON (default: the built-in 64-32-10)")
    t.add_argument("--epochs", type=int, default=10, help="on-chip rule epochs (default 10)")
    t.add_argument("--float-epochs", type=int, default=100, help="offline float epochs (default 100)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--sops-samples", type=int, default=None, help="samples for the event-driven op count")
    t.add_argument("--quiet", action="store_true", help="no progress bars")
    d = t.add_argument_group("on-device training (SpikeGrad rule on the core, through the protocol)")
    d.add_argument("--on-device", action="store_true", help="train on a device instead of offline")
    dev = d.add_mutually_exclusive_group()
    dev.add_argument("--port", help="serial port of a board")
    dev.add_argument("--sim", action="store_true", help="the Verilated core over its UART pins")
    dev.add_argument("--virtual", action="store_true", help="the golden model behind a pseudo-terminal")
    d.add_argument("--baud", type=int, default=115200)
    d.add_argument("--weights", help="starting weights (validated, then loaded)")
    d.add_argument("--samples", type=int, default=100, help="training samples per epoch (default 100)")
    t.set_defaults(func=cmd_train)

    m = sub.add_parser("demo", help="the main job: train on digits, then evaluate and train the simulated core")
    m.add_argument("--out", default="out", help="output folder (default: out)")
    m.add_argument("--quiet", action="store_true", help="no progress bars")
    m.set_defaults(func=cmd_demo)

    v = sub.add_parser("verilog", help="write standalone Verilog of the SpikeGrad core")
    v.add_argument("--config", help="configuration JSON (default: the built-in 64-32-10)")
    v.add_argument("-o", "--output", required=True, help="Verilog file to write")
    v.add_argument("--name", default="spikegrad_core", help="top module name (default spikegrad_core)")
    v.set_defaults(func=cmd_verilog)

    b = sub.add_parser("build", help="build an FPGA bitstream with the YoWASP tools")
    b.add_argument("--board", required=True, choices=["icebreaker", "ulx3s-85f"])
    b.add_argument("--config", help="configuration JSON (default: the board's, fpga/configs/BOARD.json, "
                                    "or the built-in 64-32-10)")
    b.add_argument("--mhz", type=float, help="core clock (default: 30 on iCEBreaker, 100 on ULX3S)")
    b.add_argument("--baud", type=int, default=115200, help="UART baud rate (default 115200)")
    b.add_argument("--out", help="build folder (default build/fpga/BOARD)")
    b.add_argument("--spikegrad-only", action="store_true",
                   help="leave out the board's EXODUS engine (the ULX3S-85F carries both by default)")
    b.set_defaults(func=cmd_build)

    c = sub.add_parser("check", help="validate a configuration or weight file")
    c.add_argument("file")
    c.set_defaults(func=cmd_check)

    d = sub.add_parser("config", help="print the default configuration")
    d.set_defaults(func=cmd_config)

    from golden.spikegrad.nir_io import add_nir_commands
    from spikecore.device_cli import add_device_commands
    add_nir_commands(sub)
    add_device_commands(sub)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ConfigError, ValueError) as e:
        print(f"spikecore: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
