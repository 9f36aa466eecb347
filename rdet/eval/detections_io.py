"""Detections as JSON, for :func:`rdet.eval.dota.evaluate`: the files ``rdet eval --save-detections`` and ``rdet
predict`` write, read back without extra flags (the class list travels inside each file).

Layouts read by :func:`read_detections` (a file, or a folder of ``*.json`` files):

* ``save_detections_json``'s: ``{"class_names": [...] | null, "detections": {image_id: {"polygons" [N, 8] |
  "boxes" [N, 5], "scores" [N], "labels" [N]}}}``, labels indexing ``class_names`` (or class names);
* the bare ``{image_id: record}`` form of the same;
* ``rdet predict``'s per-image file (:func:`rdet.inference.outputs.to_json`): ``{"format": "rdet.detections/1",
  "image_id", "class_names", "detections": [{"polygon", "box", "score", "label", "class"}, ...]}``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

_KEYS = ("polygons", "boxes", "scores", "labels")


def _plain(value) -> list:
    """A tensor or array-like -> nested lists (tensors are detached and moved to the CPU first)."""
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.asarray(value).tolist()


def save_detections_json(detections: Mapping, path: str | Path, class_names: Sequence[str] | None = None) -> Path:
    """Write ``{image_id: {'polygons' | 'boxes', 'scores', 'labels'}}`` (arrays or tensors) as JSON.

    The file is ``{"class_names": [...] | null, "detections": {image_id: {key: list}}}``; labels stay integers
    indexing ``class_names``. Non-finite values are refused (they are not valid JSON).
    """
    out = {str(i): {k: _plain(v) for k, v in rec.items() if k in _KEYS} for i, rec in detections.items()}
    doc = {"class_names": None if class_names is None else list(class_names), "detections": out}
    path = Path(path)
    try:
        text = json.dumps(doc, allow_nan=False)
    except ValueError:
        raise ValueError(f"{path}: detections hold NaN or infinite values; refusing to write invalid JSON") from None
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _load(path: Path) -> object:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from None


def _named(labels: list, names: list[str] | None, where: str) -> list:
    """Integer labels -> class names through the file's own ``names`` (kept as integers when it has none)."""
    if names is None:
        return list(labels)
    out = []
    for v in labels:
        if isinstance(v, str):
            out.append(v)
        elif isinstance(v, (int, float)) and float(v).is_integer() and 0 <= int(v) < len(names):
            out.append(names[int(v)])
        else:
            raise ValueError(f"{where}: label {v!r} is not an index into the file's {len(names)} class names")
    return out


def _from_doc(doc: object, path: Path) -> tuple[dict, list[str] | None]:
    """One parsed file -> ({image_id: record with labels as names or ints}, the file's class names)."""
    if not isinstance(doc, dict):
        raise ValueError(f"{path}: expected a JSON object of detections, got {type(doc).__name__}")
    names = doc.get("class_names") if "detections" in doc else None
    if names is not None and not (isinstance(names, list) and all(isinstance(n, str) for n in names)):
        raise ValueError(f"{path}: 'class_names' must be a list of strings")
    records = doc["detections"] if "detections" in doc else doc
    if isinstance(records, list):  # rdet predict: one image, a list of rows
        image_id = doc.get("image_id") or path.stem
        try:
            rec = {
                "polygons": [r["polygon"] for r in records],
                "scores": [r["score"] for r in records],
                "labels": [r.get("class", r.get("label")) for r in records],
            }
        except (KeyError, TypeError) as e:
            raise ValueError(f"{path}: a detection row lacks {e} (expected 'polygon', 'score', 'class')") from None
        records = {image_id: rec}
    if not isinstance(records, dict):
        raise ValueError(f"{path}: expected an object mapping image ids to detection records, or rdet predict's rows")
    out = {}
    for image_id, rec in records.items():
        if not isinstance(rec, dict):
            raise ValueError(
                f"{path}: image {image_id!r}: expected a record with 'polygons'/'boxes', 'scores', 'labels'"
            )
        out[str(image_id)] = {**rec, "labels": _named(rec.get("labels", []), names, f"{path}: image {image_id!r}")}
    return out, names


def read_detections(path: str | Path) -> tuple[dict, list[str] | None]:
    """Read detections from a JSON file or a folder of them (any layout of the module docstring).

    Returns:
        ``({image_id: {'polygons' | 'boxes', 'scores', 'labels'}}, class_names)``: labels are class names when the
        files carry a class list, else the integers as stored; ``class_names`` is the union of the files' lists in
        first-seen order (``None`` when no file has one). An image id found in two files raises ValueError.
    """
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.glob("*.json") if p.is_file())
        if not files:
            raise ValueError(f"{path}: no *.json detection files in this folder")
    elif path.is_file():
        files = [path]
    else:
        raise FileNotFoundError(f"detections not found: {path}")
    records: dict = {}
    names: list[str] | None = None
    seen: dict[str, Path] = {}
    for f in files:
        recs, file_names = _from_doc(_load(f), f)
        for image_id, rec in recs.items():
            if image_id in seen:
                raise ValueError(f"{f}: image {image_id!r} is also in {seen[image_id]}")
            seen[image_id] = f
            records[image_id] = rec
        if file_names is not None:
            names = (names or []) + [n for n in file_names if n not in (names or [])]
    return records, names


def load_detections_json(path: str | Path, class_names: Sequence[str], ignored: dict[str, int] | None = None) -> dict:
    """Detections of ``path`` (:func:`read_detections`) with labels as indices into ``class_names``.

    Detections of classes outside ``class_names`` are left out, as the DOTA devkit reads only the classes it
    evaluates; ``ignored`` (if given) receives ``{class name: count}`` of them. Integer labels of a file without
    a class list must already index ``class_names``.
    """
    records, _ = read_detections(path)
    index = {n: i for i, n in enumerate(class_names)}
    out = {}
    for image_id, rec in records.items():
        labels = rec.get("labels", [])
        keep, mapped = [], []
        for k, v in enumerate(labels):
            if isinstance(v, str):
                if v not in index:
                    if ignored is not None:
                        ignored[v] = ignored.get(v, 0) + 1
                    continue
                v = index[v]
            elif not (isinstance(v, (int, float)) and float(v).is_integer() and 0 <= int(v) < len(class_names)):
                raise ValueError(f"{path}: image {image_id!r}: label {v!r} is not an index of {list(class_names)}")
            keep.append(k)
            mapped.append(int(v))
        new = {"labels": mapped}
        for key in ("polygons", "boxes", "scores"):
            if key in rec:
                values = rec[key]
                if len(values) != len(labels):
                    raise ValueError(f"{path}: image {image_id!r}: {len(values)} {key} but {len(labels)} labels")
                new[key] = [values[k] for k in keep]
        out[image_id] = new
    return out


__all__ = ["save_detections_json", "read_detections", "load_detections_json"]
