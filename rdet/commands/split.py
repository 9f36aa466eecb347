"""``rdet split``: cut large images (and their DOTA labels) into training tiles, as MMRotate's img_split.

    rdet split --images DOTA/train/images --labels DOTA/train/labelTxt --output data/split_1024/trainval
    rdet split --images DOTA/test/images --output data/split_1024/test --tile 1024 --overlap 200 --rates 0.5 1.0

Writes --output/images and --output/labelTxt; tiles already present are kept (--no-resume rewrites them).
"""

from __future__ import annotations

import argparse
import os

from rdet.commands.common import Parser, add, add_max_pixels, doc_parts, note, positive_int, require, run_command

STYLES = ("mmrotate", "devkit")  # rdet.data.split.STYLES and DEPTHS (tests/test_commands.py checks)
DEPTHS = ("auto", "keep", "scale", "stretch")


def parser() -> Parser:
    p = Parser("rdet split", *doc_parts(__doc__))
    p.add_argument("--images", required=True, metavar="DIR", help="folder of images")
    p.add_argument(
        "--labels",
        default=None,
        metavar="DIR",
        help="folder of DOTA labelTxt files (default: none, for unlabelled images)",
    )
    add(p, "--output", deprecated=["--out"], default=None, metavar="DIR", help="output folder (required)")
    add(p, "--tile", deprecated=["--size"], type=positive_int, default=1024, help="tile size in pixels")
    add(p, "--overlap", deprecated=["--gap"], type=int, default=200, help="overlap between tiles in pixels")
    p.add_argument("--rates", type=float, nargs="+", default=[1.0], help="scales, e.g. 0.5 1.0 1.5")
    p.add_argument("--iof-thr", type=float, default=0.7, help="keep objects with IoF >= this")
    p.add_argument("--img-rate-thr", type=float, default=0.6, help="drop windows mostly outside the image (MMRotate)")
    p.add_argument("--no-padding", action="store_true", help="do not pad border tiles to full size")
    p.add_argument(
        "--padding-value",
        type=int,
        nargs=3,
        default=None,
        metavar=("R", "G", "B"),
        help="padding colour (default: 124 116 104 for mmrotate, 0 0 0 for devkit)",
    )
    p.add_argument("--style", choices=STYLES, default="mmrotate", help="reference behaviour")
    p.add_argument("--ext", default=".png", help="tile image extension")
    p.add_argument(
        "--classes", default=None, help="class list: dataset key (dota1.0, ...) or names file (default: dota2.0)"
    )
    p.add_argument("--nproc", type=positive_int, default=max(1, (os.cpu_count() or 2) // 2), help="processes")
    p.add_argument("--no-resume", action="store_true", help="rewrite tiles that already exist")
    p.add_argument("--lenient", action="store_true", help="skip malformed label lines (reported) instead of failing")
    p.add_argument(
        "--depth",
        choices=DEPTHS,
        default="auto",
        help="16-bit images: keep (PNG/TIFF), scale (/257) or stretch (2..98th percentile) to 8 bits; "
        "auto keeps them where the tile format can",
    )
    add_max_pixels(p)
    return p


def run(args: argparse.Namespace) -> int:
    require(parser(), args, "--output")
    from rdet.data.split import SplitConfig, split_dataset

    padding = None if args.padding_value is None else tuple(args.padding_value)
    config = SplitConfig(
        args.tile, args.overlap, tuple(args.rates), args.iof_thr, args.img_rate_thr, not args.no_padding, padding,
        args.style, args.ext, args.depth, args.max_pixels
    )  # fmt: skip
    rep = split_dataset(
        args.images, args.labels, args.output, config, args.nproc, not args.no_resume, args.classes, not args.lenient
    )
    print(
        f"split {rep['images']} images into {rep['patches']} tiles ({rep['resumed']} already present) in {args.output}"
    )
    for path, what in sorted(rep["depth"].items()):
        note("rdet split", f"{path}: {what}")
    for m in rep["missing_labels"]:
        note("rdet split", f"no label file for {m}: written as an image without objects")
    return 0


KEYWORDS = {
    "patch_size": "--tile",
    "gap ": "--overlap ",
    "iof_thr": "--iof-thr",
    "classes=": "--classes",
    "strict=False": "--lenient",
    "image_dir": "--images",
    "label_dir": "--labels",
}


def cli(argv: list[str] | None = None) -> int:
    return run_command(parser(), run, argv, KEYWORDS)
