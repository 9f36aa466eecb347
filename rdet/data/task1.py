"""DOTA Task1 result files (the submission format of the DOTA evaluation server).

One file per class, ``Task1_<class>.txt``, one detection per line::

    <image_id> <score> <x1> <y1> <x2> <y2> <x3> <y3> <x4> <y4>

with the polygon in pixels of the full (unsplit) image.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rdet.data import _parse as P


@dataclass
class Task1Detections:
    """Detections of one class.

    Attributes:
        image_ids: image of each detection (``[N]``).
        scores (np.ndarray[N] float64), polygons (np.ndarray[N, 8] float64).
    """

    image_ids: list[str]
    scores: np.ndarray
    polygons: np.ndarray

    def __len__(self) -> int:
        return len(self.image_ids)


def parse_task1(text: str, source: str = "<string>") -> Task1Detections:
    """Parse the text of one Task1 file; a malformed line raises ``ValueError('<file>:<line>: ...')``."""
    ids, rows = [], []
    for n, line in enumerate(P.lines(text), 1):
        parts = P.tokens(line)
        if not parts:
            continue
        if len(parts) != 10:
            raise ValueError(f'{source}:{n}: expected 10 fields "image_id score x1 y1 ... x4 y4", got {len(parts)}')
        bad = [v for v in parts[1:] if not P.is_float(v)]
        if bad:
            # keep the two cases apart: a NaN/inf is a broken detector, a word a broken file
            kind = (
                "NaN or infinite value"
                if bad[0].lower().lstrip("+-") in ("nan", "inf", "infinity")
                else "non-numeric field"
            )
            raise ValueError(f"{source}:{n}: {kind} {bad[0][:20]!r} in {line.strip()[:80]!r}")
        try:
            vals = [P.parse_float(parts[1], "score", -1e9, 1e9)]
            vals += [P.parse_float(v, f"coordinate {i + 1}") for i, v in enumerate(parts[2:])]
        except ValueError as e:
            raise ValueError(f"{source}:{n}: {e}: {line.strip()[:80]!r}") from None
        ids.append(parts[0])
        rows.append(vals)
    arr = np.array(rows, np.float64).reshape(-1, 9)
    return Task1Detections(ids, arr[:, 0].copy(), arr[:, 1:].copy())


def read_task1(path: str | Path) -> dict[str, Task1Detections]:
    """Read ``Task1_<class>.txt`` files of a folder (or one such file) -> ``{class name: detections}``."""
    path = Path(path)
    files = [path] if path.is_file() else sorted(path.glob("Task1_*.txt")) if path.is_dir() else None
    if files is None:
        raise FileNotFoundError(f"no such Task1 file or folder: {path}")
    out = {}
    for f in files:
        if not f.name.startswith("Task1_"):
            raise ValueError(f"{f}: Task1 files are named Task1_<class>.txt")
        out[f.stem[len("Task1_") :]] = parse_task1(f.read_text(encoding="utf-8"), str(f))
    return out


def write_task1(
    out_dir: str | Path,
    detections: dict[str, Task1Detections],
    class_names: list[str] | None = None,
    score_fmt: str = ".6f",
    coord_fmt: str = ".2f",
) -> list[Path]:
    """Write one ``Task1_<class>.txt`` per class (an empty file for a class of ``class_names`` without
    detections, as the evaluation server expects all of them). Lines are sorted by decreasing score.

    Returns:
        the written paths.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    names = list(class_names) if class_names is not None else sorted(detections)
    extra = set(detections) - set(names)
    if extra:
        raise ValueError(f"detections for classes {sorted(extra)} not in class_names")
    paths = []
    for name in names:
        if not name or len(name.split()) != 1 or "/" in name:
            raise ValueError(f"class name {name!r} cannot be part of a Task1 file name")
        det = detections.get(name, Task1Detections([], np.zeros(0), np.zeros((0, 8))))
        order = np.argsort(-np.asarray(det.scores), kind="stable")
        lines = []
        for i in order:
            if len(det.image_ids[i].split()) != 1:
                raise ValueError(f"image id {det.image_ids[i]!r} contains whitespace")
            coords = " ".join(format(float(v), coord_fmt) for v in det.polygons[i])
            lines.append(f"{det.image_ids[i]} {format(float(det.scores[i]), score_fmt)} {coords}\n")
        p = out_dir / f"Task1_{name}.txt"
        p.write_text("".join(lines), encoding="utf-8")
        paths.append(p)
    return paths
