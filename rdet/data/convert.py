"""``rdet convert``: label files from one format to another, never overwriting and never losing silently.

:func:`convert_labels` reads every input first (so a malformed file stops the run before anything is written),
then refuses:

* two inputs that would write the same output (``a.txt`` and ``a.xml`` both become ``a.txt``);
* an output file that already exists (unless ``overwrite=True``), which also protects converting in place;

and says what the target format cannot hold: YOLO-OBB has no ``difficult`` field (objects marked difficult
are counted in the report's notes) and its coordinates are normalised to ``[0, 1]`` (objects cut by the image
border are clipped, and counted). DOTA -> DOTA keeps the ``imagesource``/``gsd`` header lines. YOLO-OBB input
finds its class names in ``classes.yaml``/``data.yaml`` beside the labels when none are given.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from rdet.data import classes as C
from rdet.data.formats import FORMATS, read_labels, remap_classes, write_dota, write_yolo_obb

TARGETS = ("dota", "yolo-obb")


@dataclass
class ConvertReport:
    """What :func:`convert_labels` did: ``written`` paths, ``skipped`` entries (lenient mode), ``notes``."""

    files: int = 0
    written: list[Path] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def label_files(src: str | Path) -> list[Path]:
    """``src`` itself, or the ``*.txt``/``*.xml`` files of the folder ``src`` (sorted)."""
    src = Path(src)
    if src.is_file():
        return [src]
    if not src.is_dir():
        raise FileNotFoundError(f"no such label file or folder: {src}")
    files = sorted(q for q in src.iterdir() if q.suffix.lower() in (".txt", ".xml") and q.is_file())
    if not files:
        raise ValueError(f"{src}: no label files (*.txt, *.xml)")
    return files


def convert_labels(
    src: str | Path,
    dst: str | Path,
    to: str,
    src_format: str | None = None,
    names=None,
    classes=None,
    images: str | Path | None = None,
    strict: bool = True,
    overwrite: bool = False,
) -> ConvertReport:
    """Convert a label file or folder ``src`` into the folder ``dst``.

    Args:
        to: ``'dota'`` or ``'yolo-obb'``.
        src_format: input format (``None``: guessed per file).
        names: input class names (list, dataset key or names file); YOLO-OBB input defaults to the class file
            found beside the labels.
        classes: output class list (names matched loosely, ``rdet.data.classes.ClassIndex``); default: the
            input list. YOLO-OBB output also writes ``dst/classes.yaml``.
        images: image folder (for image sizes) if not beside the labels.
        strict: stop at the first malformed entry; ``False`` skips and lists them (``report.skipped``).
        overwrite: replace existing output files.

    Raises:
        FileNotFoundError, ValueError: naming the file (and line) at fault; nothing is written then.
    """
    if to not in TARGETS:
        raise ValueError(f"to must be one of {TARGETS}, got {to!r}")
    if src_format is not None and src_format not in FORMATS:
        raise ValueError(f"src_format must be one of {FORMATS}, got {src_format!r}")
    files = label_files(src)
    dst = Path(dst)
    outputs: dict[Path, Path] = {}
    for f in files:
        out = dst / (f.stem + ".txt")
        if out in outputs:
            raise ValueError(
                f"{outputs[out]} and {f} would both be written to {out}; convert them into separate folders"
            )
        outputs[out] = f
    report = ConvertReport(files=len(files))
    records = []
    for out, f in outputs.items():  # read everything before writing anything
        ann = read_labels(f, src_format, names, strict=strict, image_dir=images, _warn=False)
        report.skipped += ann.meta["skipped"]
        if classes is not None:
            ann = remap_classes(ann, classes)
        records.append((out, ann))
    if to == "yolo-obb":
        missing = [a.label_path for _, a in records if not a.width or not a.height]
        if missing:
            raise ValueError(
                f"{missing[0]}: YOLO-OBB needs the image size and no image was found for it "
                f"({len(missing)} file(s)); pass the image folder (images=...)"
            )
    extra = [dst / "classes.yaml"] if to == "yolo-obb" else []
    existing = [p for p in [*outputs, *extra] if p.exists()]
    if existing and not overwrite:
        raise ValueError(
            f"{existing[0]} already exists ({len(existing)} output file(s) would be overwritten); choose an "
            f"empty output folder or pass overwrite=True"
        )
    dst.mkdir(parents=True, exist_ok=True)
    difficult = clipped = 0
    for out, ann in records:
        if to == "dota":
            write_dota(out, ann)
        else:
            clipped += write_yolo_obb(out, ann)
            difficult += int((ann.difficulty != 0).sum())
        report.written.append(out)
    if to == "yolo-obb":
        names_out = records[0][1].class_names if records else []
        C.write_class_names(str(dst / "classes.yaml"), names_out)
        report.written.append(dst / "classes.yaml")
        if difficult:
            report.notes.append(
                f"{difficult} object(s) marked difficult: YOLO-OBB has no difficult field, so that flag is not "
                f"in the output (keep the DOTA files to evaluate with it)"
            )
        if clipped:
            report.notes.append(f"{clipped} object(s) cut by the image border: coordinates clipped to [0, 1]")
    return report


__all__ = ["ConvertReport", "TARGETS", "convert_labels", "label_files"]
