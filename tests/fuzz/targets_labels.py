"""Fuzz targets: the label readers (DOTA, YOLO-OBB, DIOR-R, HRSC, class YAML) in strict and lenient mode."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import strategies as st

from rdet.data import classes as C
from rdet.data import formats as F

from .registry import SilentlyWrong, target
from .strategies import CLASS_YAML, dior_xml, dota_text, hrsc_xml, yolo_text

SOURCE = "fuzz-label.txt"
_TMP = Path(tempfile.mkdtemp(prefix="rdet_fuzz_labels_"))
atexit.register(shutil.rmtree, _TMP, ignore_errors=True)


def _check_record(a, text_lines: int) -> None:
    if not np.isfinite(a.polygons).all() or (np.abs(a.polygons) > 1e9).any():
        raise SilentlyWrong(f"polygons out of range: {a.polygons.tolist()[:2]}")
    if len(a.difficulty) and not ((a.difficulty >= 0) & (a.difficulty <= F.MAX_DIFFICULT)).all():
        raise SilentlyWrong(f"difficulty out of range: {a.difficulty.tolist()}")
    if len(a) + len(a.meta.get("skipped", [])) > max(text_lines, 1):
        raise SilentlyWrong(f"{len(a)} objects + {len(a.meta['skipped'])} skipped from {text_lines} lines")
    for name, v in (("width", a.width), ("height", a.height)):
        if v is not None and not (isinstance(v, int) and v > 0):
            raise SilentlyWrong(f"{name} {v!r} accepted")
    for msg in a.meta.get("skipped", []):
        if SOURCE not in msg and "fuzz-" not in msg:
            raise SilentlyWrong(f"skipped entry without its file: {msg}")


def _lines(text: str) -> int:
    return len(text.split("\n"))


@target("labels: DOTA text", st.tuples(dota_text(), st.booleans()), where=lambda ex: [SOURCE])
def dota(example) -> None:
    text, strict = example
    a = F.parse_dota(text, SOURCE, strict=strict)
    _check_record(a, _lines(text))
    if strict and a.meta["skipped"]:
        raise SilentlyWrong("strict mode skipped lines")
    if strict:  # every line was accepted: none may hold a number spelled in non-ASCII digits or with "_"
        for line in text.split("\n"):
            if line.split(":", 1)[0].strip().lower() in ("imagesource", "gsd") and ":" in line:
                continue
            bad = [tok for tok in line.split() if any(c in tok for c in "١٠１０_")]
            if bad:
                raise SilentlyWrong(f"accepted {bad[0]!r} as a number")


@target("labels: YOLO-OBB text", st.tuples(yolo_text(), st.booleans()), where=lambda ex: [SOURCE])
def yolo(example) -> None:
    text, strict = example
    a = F.parse_yolo_obb(text, 1000, 500, ["a", "b", "c"], SOURCE, strict=strict)
    _check_record(a, _lines(text))
    if len(a):
        xs, ys = a.polygons[:, 0::2] / 1000, a.polygons[:, 1::2] / 500
        lo, hi = -F.YOLO_MARGIN - 1e-6, 1 + F.YOLO_MARGIN + 1e-6
        if xs.min() < lo or xs.max() > hi or ys.min() < lo or ys.max() > hi:
            raise SilentlyWrong(f"normalised coordinates outside [{lo}, {hi}] accepted")


@target("labels: DIOR-R XML", st.tuples(dior_xml(), st.booleans()), where=lambda ex: ["fuzz-dior.xml"])
def dior(example) -> None:
    data, strict = example
    a = F.parse_dior_xml(data, "fuzz-dior.xml", strict=strict)
    _check_record(a, 10**6)


@target("labels: HRSC XML", st.tuples(hrsc_xml(), st.booleans()), where=lambda ex: ["fuzz-hrsc.xml"])
def hrsc(example) -> None:
    data, strict = example
    a = F.parse_hrsc_xml(data, "fuzz-hrsc.xml", strict=strict)
    _check_record(a, 10**6)
    if not np.isfinite(a.meta["headers"]).all():
        raise SilentlyWrong("non-finite bow point accepted")


@target(
    "labels: files (bytes, any format)",
    st.tuples(st.sampled_from(["txt", "xml"]), st.binary(max_size=300), st.booleans()),
    where=lambda ex: ["fuzz-file"],
)
def files(example) -> None:
    ext, data, strict = example
    path = _TMP / f"fuzz-file.{ext}"
    path.write_bytes(data)
    a = F.read_labels(
        path,
        classes=["a", "b"] if F.detect_format(path) == "yolo-obb" else None,
        image_size=(100, 80),
        strict=strict,
        _warn=False,
    )
    _check_record(a, _lines(data.decode("utf-8", "replace")) if ext == "txt" else 10**6)


@target("labels: class YAML", CLASS_YAML, where=lambda ex: ["fuzz-classes.yaml"])
def class_yaml(text) -> None:
    path = _TMP / "fuzz-classes.yaml"
    path.write_text(text, encoding="utf-8")
    names = C.read_class_names(path)
    if not names or not all(isinstance(n, str) and n.strip() for n in names) or len(set(names)) != len(names):
        raise SilentlyWrong(f"class names {names!r} accepted")
