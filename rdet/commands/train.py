"""``rdet train``: train a rotated detector from a config file.

    rdet train configs/kld/rotated-retinanet-rbox-le90_r50_fpn_kld-stable_1x_dota.py --set train.lr=0.005
    rdet train CONFIG --print-config                                  # the resolved, validated config
    rdet train CONFIG --resume                                        # continue from work_dir/last.pt
    torchrun --nproc_per_node 4 -m rdet.cli train CONFIG              # DistributedDataParallel

CONFIG is a file or the name of a shipped config (e.g. rotated-retinanet-rbox-le90_r50_fpn_kld-stable_1x_dota).
Writes into the work_dir (--output, or the config's train.work_dir): log.jsonl, loss.png, epoch checkpoints,
last.pt and model.pt (weights only, for predict/serve/export).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rdet.commands.common import Parser, doc_parts, run_command

KEYWORDS = {
    "resume=True": "--resume",
    "teacher_weights": "--teacher-weights",
    "model.backbone.weights": "--set model.backbone.weights",
}


def add_config_arguments(p: Parser, what: str) -> None:
    """CONFIG, --set, --output, --resume, --print-config: shared by ``rdet train`` and ``rdet distill``."""
    p.add_argument("config", metavar="CONFIG", help=what)
    p.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config field, e.g. --set train.lr=0.01 (repeatable; default: none)",
    )
    p.add_argument(
        "--output",
        metavar="DIR",
        default=None,
        help="work_dir for checkpoints and logs (default: the config's train.work_dir)",
    )
    p.add_argument("--resume", action="store_true", help="continue from work_dir/last.pt")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")


def load(args: argparse.Namespace):
    """The config of parsed :func:`add_config_arguments` arguments; ``None`` after ``--print-config`` printed it."""
    from rdet.config import find_config, load_config, to_dict

    # --output is relative to the current folder (where the user typed it), whatever the config's path rules
    sets = list(args.sets) + ([f"train.work_dir={Path(args.output).resolve()}"] if args.output else [])
    # validated here only to print it: rdet.train/rdet.distill validate the config they get (once per run)
    config = load_config(find_config(args.config), sets, check=args.print_config)
    if args.print_config:
        print(json.dumps(to_dict(config), indent=2))
        return None
    return config


def parser() -> Parser:
    p = Parser("rdet train", *doc_parts(__doc__))
    add_config_arguments(p, "config file or shipped config name (configs/...)")
    return p


def run(args: argparse.Namespace) -> int:
    config = load(args)
    if config is None:
        return 0
    from rdet.engine.train import train

    result = train(config, resume=args.resume)
    print(json.dumps(result, indent=2))
    return 0


def cli(argv: list[str] | None = None) -> int:
    return run_command(parser(), run, argv, KEYWORDS)
