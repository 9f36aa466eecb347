"""``rdet convert``: convert oriented-box label files (DOTA, YOLO-OBB, DIOR-R, HRSC) to DOTA or YOLO-OBB.

    rdet convert dota8/labels/train --output labels_dota --to dota           # classes.yaml/data.yaml found beside
    rdet convert labels_dota --output labels_yolo --to yolo-obb --images dota8/images/train
    rdet convert labels/ --output out/ --to dota --classes dota8.yaml --output-classes dota1.0

--classes is the class list of the input (what YOLO-OBB class ids mean); --output-classes maps the names onto
another list (matched ignoring case and space/-/_), which fixes the output's class ids.
"""

from __future__ import annotations

import argparse
from pathlib import Path

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
    return p


def run(args: argparse.Namespace) -> int:
    p = parser()
    take_positional(p, args, "dst", "--output")
    require(p, args, "--output")
    from rdet.data import classes as C
    from rdet.data.formats import read_labels, remap_classes, write_dota, write_yolo_obb

    src, dst = Path(args.src), Path(args.output)
    if not src.exists():
        raise FileNotFoundError(f"no such label file or folder: {src}")
    files = [src] if src.is_file() else sorted(q for q in src.glob("*") if q.suffix.lower() in (".txt", ".xml"))
    if not files:
        raise ValueError(f"{src}: no label files (*.txt, *.xml)")
    dst.mkdir(parents=True, exist_ok=True)
    skipped, names = [], None
    for f in files:
        ann = read_labels(f, args.src_format, args.classes, strict=not args.lenient, image_dir=args.images, _warn=False)
        skipped += ann.meta["skipped"]
        if args.output_classes is not None:
            ann = remap_classes(ann, args.output_classes)
        names = ann.class_names
        out = dst / (f.stem + ".txt")
        write_dota(out, ann) if args.to == "dota" else write_yolo_obb(out, ann)
    if args.to == "yolo-obb":
        C.write_class_names(str(dst / "classes.yaml"), names)
    for s in skipped:
        note(p.prog, f"skipped {s}")
    extra = f" ({len(skipped)} entries skipped)" if skipped else ""
    print(f"converted {len(files)} file(s) to {args.to} in {dst}{extra}")
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
