"""``rdet demo``: the whole pipeline on the bundled real samples, offline, on a CPU (``make demo``).

    rdet demo                    # quick mode: 40 training iterations (a few minutes on 2 cores)
    rdet demo --full             # the config's 300 iterations
    rdet demo --retrain --iters 120 --output /tmp/demo
    rdet demo --model rotated-retinanet-rbox-le90_r50_fpn_kld-stable_1x_dota   # a published model (downloaded once)

Splits the bundled DOTA samples into tiles, gets a model, prints the official metric on a held-out tile, exports
to ONNX and runs tiled inference on a bundled scene. The model is a published one when its file is cached
(``rdet zoo`` lists them; ``--model`` names one, ``--train`` ignores the cache); otherwise a small detector trained
from scratch on the CPU, which is untrained for any practical purpose: it shows that every stage works, not a
usable detector.
"""

from __future__ import annotations

import argparse

from rdet.commands.common import Parser, add, doc_parts, positive_int, run_command


def parser() -> Parser:
    p = Parser("rdet demo", *doc_parts(__doc__))
    add(p, "--output", deprecated=["--out"], default="demo_out", metavar="DIR", help="output folder")
    p.add_argument("--full", action="store_true", help="the config's 300 iterations of batch 4 instead of 40 of 2")
    p.add_argument(
        "--iters", type=positive_int, default=None, help="training iterations (default: 40 quick, 300 --full)"
    )
    p.add_argument(
        "--retrain", action="store_true", help="train again, even if OUTPUT/model.pt or a published model exists"
    )
    which = p.add_mutually_exclusive_group()
    which.add_argument(
        "--model",
        default=None,
        metavar="NAME|PATH",
        help="a published model (rdet zoo) or a checkpoint, no training (default: a cached published one, else train)",
    )
    which.add_argument("--train", action="store_true", help="train from scratch even if a published model is cached")
    return p


def run(args: argparse.Namespace) -> int:
    from rdet.demo import run as run_demo

    return run_demo(args)


def cli(argv: list[str] | None = None) -> int:
    return run_command(parser(), run, argv)
