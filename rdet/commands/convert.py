"""``rdet convert``: convert oriented-box label files (DOTA, YOLO-OBB, DIOR-R, HRSC) to DOTA or YOLO-OBB.

    rdet convert dota8/labels/train --output labels_dota --to dota           # classes.yaml/data.yaml found beside
    rdet convert labels_dota --output labels_yolo --to yolo-obb --images dota8/images/train
    rdet convert labels/ --output out/ --to dota --classes dota8.yaml --output-classes dota1.0

--classes is the class list of the input (what YOLO-OBB class ids mean); --output-classes maps the names onto
another list (matched ignoring case and space/-/_), which fixes the output's class ids.
"""

from __future__ import annotations

import argparse

from rdet.commands.common import (
    Parser,
    add,
    deprecated_positional,
    doc_parts,
    note,
    require,
    run_command,
    take_positional,
)

FORMATS = ("dota", "yolo-obb", "dior-r", "hrsc")  # rdet.data.formats.FORMATS (tests/test_commands.py checks)
TARGETS = ("dota", "yolo-obb")


def parser() -> Parser:
    p = Parser("rdet convert", *doc_parts(__doc__))
    p.add_argument("src", metavar="SRC", help="label file or folder")
    deprecated_positional(p, "dst")
    add(p, "--output", default=None, metavar="DIR", help="output folder (required)")
    p.add_argument("--to", required=True, choices=TARGETS, help="output format")
    p.add_argument("--from", dest="src_format", choices=FORMATS, default=None, help="input format (default: guessed)")
    add(
        p,
        "--classes",
        deprecated=["--names"],
        default=None,
        help="input class list: dataset key (dota1.0, dota1.5, dota2.0, dior-r, hrsc), names file or YAML "
        "(default: the names in the labels; for YOLO-OBB, classes.yaml/data.yaml beside them)",
    )
    p.add_argument(
        "--output-classes",
        default=None,
        help="map the classes onto this list (dataset key or names file) (default: the input list)",
    )
    p.add_argument("--images", default=None, metavar="DIR", help="image folder for image sizes (default: beside)")
    p.add_argument("--lenient", action="store_true", help="skip malformed entries (all are reported)")
    p.add_argument("--overwrite", action="store_true", help="replace output files that already exist")
    return p


def run(args: argparse.Namespace) -> int:
    p = parser()
    take_positional(p, args, "dst", "--output")
    require(p, args, "--output")
    from rdet.data.convert import convert_labels

    rep = convert_labels(
        args.src,
        args.output,
        args.to,
        args.src_format,
        names=args.classes,
        classes=args.output_classes,
        images=args.images,
        strict=not args.lenient,
        overwrite=args.overwrite,
    )
    for s in rep.skipped:
        note(p.prog, f"skipped {s}")
    for n in rep.notes:
        note(p.prog, n)
    extra = f" ({len(rep.skipped)} entries skipped)" if rep.skipped else ""
    print(f"converted {rep.files} file(s) to {args.to} in {args.output}{extra}")
    return 0


KEYWORDS = {
    "names=": "--classes",
    "classes=": "--output-classes",
    "images=...": "--images DIR",
    "images=": "--images",
    "overwrite=True": "--overwrite",
    "strict=False": "--lenient",
}


def cli(argv: list[str] | None = None) -> int:
    return run_command(parser(), run, argv, KEYWORDS)
