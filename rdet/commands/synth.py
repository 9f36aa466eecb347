"""``rdet synth``: write the synthetic scenes the quickstart configs train on (rdet.data.synthetic).

    rdet synth                                   # into the folders the quickstart config names (data/synthetic)
    rdet synth --output /tmp/syn --train 64 --val 16 --image-size 128

Scenes depend only on their seed and index, so existing files are rewritten identically.
"""

from __future__ import annotations

import argparse

from rdet.commands.common import Parser, doc_parts, positive_int, run_command

QUICKSTART = "rotated-retinanet-rbox-le90_r18_fpn_kld-stable_synthetic"


def parser() -> Parser:
    p = Parser("rdet synth", *doc_parts(__doc__))
    p.add_argument(
        "--config", default=QUICKSTART, help="write into the train/val folders of this config (file or shipped name)"
    )
    p.add_argument(
        "--output", default=None, metavar="DIR", help="write DIR/train and DIR/val (default: --config's folders)"
    )
    p.add_argument("--train", type=positive_int, default=200, help="training scenes")
    p.add_argument("--val", type=positive_int, default=50, help="validation scenes")
    p.add_argument("--image-size", type=positive_int, default=256, help="scene side in pixels")
    p.add_argument("--seed", type=int, default=0, help="the validation scenes use seed + 1")
    return p


def run(args: argparse.Namespace) -> int:
    from rdet.data.synthetic import write_synthetic_data

    folders = write_synthetic_data(args.config, args.output, args.train, args.val, args.image_size, args.seed)
    for split, folder in folders.items():
        print(f"{split}: {folder} ({args.train if split == 'train' else args.val} scenes of {args.image_size} px)")
    return 0


def cli(argv: list[str] | None = None) -> int:
    return run_command(parser(), run, argv)
