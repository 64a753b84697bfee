"""The ``spikecore`` command line.

Subcommands:
  train     offline float training, quantisation and integer on-chip-rule
            training on the digits; writes weights, a plot and report.json
  check     validate a configuration or weight file and print a summary
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
    t.add_argument("--out", required=True, help="output folder")
    t.add_argument("--config", help="configuration JSON (default: the built-in 64-32-10)")
    t.add_argument("--epochs", type=int, default=10, help="on-chip rule epochs (default 10)")
    t.add_argument("--float-epochs", type=int, default=100, help="offline float epochs (default 100)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--sops-samples", type=int, default=None, help="samples for the event-driven op count")
    t.add_argument("--quiet", action="store_true", help="no progress bars")
    t.set_defaults(func=cmd_train)

    c = sub.add_parser("check", help="validate a configuration or weight file")
    c.add_argument("file")
    c.set_defaults(func=cmd_check)

    d = sub.add_parser("config", help="print the default configuration")
    d.set_defaults(func=cmd_config)
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
