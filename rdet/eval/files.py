"""The DOTA devkit's file-level entry point: Task1 result files + labelTxt ground truth -> the metric.

``evaluate_task1(results_dir, labels_dir)`` mirrors ``dota_evaluation_task1.py``; ``load_task1`` returns the
parsed detections and annotations for :func:`rdet.eval.dota.evaluate`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rdet.data.classes import DOTA2_0
from rdet.data.task1 import read_task1
from rdet.eval.dota import evaluate


# ----------------------------------------------------------------- DOTA files: Task1 results, labelTxt
# Task1 files are read by rdet.data.task1. Ground truth has its own small labelTxt reader rather than
# rdet.data.read_labels, because the metric must see what the devkit's parse_gt sees: every class name
# (objects of classes not evaluated are ignored, not an error), zero-area polygons kept (the devkit
# counts them in npos though nothing can match them), float64 coordinates. Malformed lines raise.
def _floats(rows: list[list[str]], linenos: list[int], path: Path) -> np.ndarray:
    """Numeric fields of many lines -> [N, K] float64; errors name the file and line."""
    try:
        vals = np.array(rows, dtype=np.float64).reshape(len(rows), -1)
    except ValueError:  # find the culprit only when there is one (keeps the common path vectorised)
        for row, n in zip(rows, linenos):
            try:
                [float(v) for v in row]
            except ValueError:
                raise ValueError(f"{path}:{n}: non-numeric field in {' '.join(row)!r}") from None
        raise
    bad = ~np.isfinite(vals).all(1)
    if bad.any():
        k = int(np.argmax(bad))
        raise ValueError(f"{path}:{linenos[k]}: NaN or infinite value in {' '.join(rows[k])!r}")
    return vals


def _read_labeltxt(path: Path) -> tuple[np.ndarray, list[str], np.ndarray]:
    """DOTA labelTxt (optional ``imagesource:``/``gsd:`` headers, then ``x1 y1 ... x4 y4 class [difficulty]``)
    -> polygons [M, 8] float64, class names [M], difficult [M] bool (difficulty != 0, as the devkit)."""
    rows, names, diff, linenos = [], [], [], []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        parts = line.split()
        if not parts or parts[0].startswith(("imagesource:", "gsd:")):
            continue
        if len(parts) not in (9, 10):
            raise ValueError(f"{path}:{n}: expected 'x1 y1 ... x4 y4 class [difficult]', got {len(parts)} fields")
        if len(parts) == 10 and not parts[9].isdigit():
            raise ValueError(f"{path}:{n}: difficulty must be a non-negative integer, got {parts[9]!r}")
        rows.append(parts[:8]), names.append(parts[8]), linenos.append(n)
        diff.append(len(parts) == 10 and int(parts[9]) != 0)  # 2 = cut by a tile edge: difficult too
    polys = _floats(rows, linenos, path) if rows else np.zeros((0, 8))
    return polys, names, np.array(diff, bool)


def _line_of_record(path: Path, k: int) -> int:
    """1-based line number of the k-th non-blank line (record k of ``rdet.data.task1.parse_task1``)."""
    nonblank = [n for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if line.split()]
    return nonblank[k]


def labels_from_dir(labels_dir: str | Path, classes: Sequence[str] | None = None) -> tuple[dict, list[str]]:
    """labelTxt folder -> ({image_id: {'polygons', 'labels', 'difficult'}}, class_names); see ``load_task1``."""
    labels_dir = Path(labels_dir)
    if not labels_dir.is_dir():
        raise ValueError(f"labels_dir: {labels_dir} is not a directory")
    parsed = {f.stem: _read_labeltxt(f) for f in sorted(labels_dir.glob("*.txt"))}
    if not parsed:
        raise ValueError(f"labels_dir: no .txt label files in {labels_dir}")
    if classes is None:
        found = {n for _, names, _ in parsed.values() for n in names}
        rank = {n: i for i, n in enumerate(DOTA2_0)}
        classes = sorted(found, key=lambda n: (rank.get(n, len(rank)), n))
    class_names = [str(c) for c in classes]
    index = {n: i for i, n in enumerate(class_names)}
    annotations = {}
    for image_id, (polys, names, difficult) in parsed.items():
        labels = np.array([index.get(n, -1) for n in names], np.int64)
        keep = labels >= 0  # objects of classes not evaluated are ignored, as in the devkit
        annotations[image_id] = {"polygons": polys[keep], "labels": labels[keep], "difficult": difficult[keep]}
    return annotations, class_names


def load_task1(
    results_dir: str | Path,
    labels_dir: str | Path,
    classes: Sequence[str] | None = None,
    ignored: list[str] | None = None,
) -> tuple[dict, dict, list[str]]:
    """Read ``Task1_<class>.txt`` results and DOTA labelTxt files into ``evaluate``'s input.

    Args:
        results_dir: folder of ``Task1_<class>.txt`` files (a class without a file has no detections;
            a folder without any raises ValueError).
        labels_dir: folder of ``<image_id>.txt`` labelTxt files; they define the evaluated images.
        classes: class names to evaluate; objects of other classes are ignored (as in the devkit).
            Default: the classes found in the labels (DOTA order first). Result files of other classes
            are not read, as in the devkit (which opens only the files of the classes it evaluates).
        ignored: if given, receives the class names of the result files that were not read.

    Returns:
        detections ({image_id: {'polygons', 'scores', 'labels'}}), annotations ({image_id:
        {'polygons', 'labels', 'difficult'}}), class_names (list[str]).
    """
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise ValueError(f"results_dir: {results_dir} is not a directory")
    annotations, class_names = labels_from_dir(labels_dir, classes)
    ids = list(annotations)
    image_index, class_index = {k: i for i, k in enumerate(ids)}, {n: i for i, n in enumerate(class_names)}
    img, vals, lab = [np.zeros(0, np.int64)], [np.zeros((0, 9))], [np.zeros(0, np.int64)]
    files = sorted(results_dir.glob("Task1_*.txt"))
    if not files:  # an empty class file means "no detections"; no file at all means a wrong folder
        raise ValueError(f"results_dir: no Task1_<class>.txt files in {results_dir}")
    skipped = [f.stem[len("Task1_") :] for f in files if f.stem[len("Task1_") :] not in class_index]
    if ignored is not None:
        ignored += skipped
    results = {}
    for f in files:
        if f.stem[len("Task1_") :] in class_index:
            results.update(read_task1(f))  # Task1 format errors name file and line
    for name, task1 in results.items():
        f = results_dir / f"Task1_{name}.txt"
        unknown = [k for k, i in enumerate(task1.image_ids) if i not in image_index]
        if unknown:
            raise ValueError(
                f"{f}:{_line_of_record(f, unknown[0])}: unknown image id "
                f"{task1.image_ids[unknown[0]]!r} (no such label file)"
            )
        img.append(np.array([image_index[i] for i in task1.image_ids], np.int64))
        vals.append(np.concatenate([task1.scores[:, None], task1.polygons], 1))
        lab.append(np.full(len(task1), class_index[name]))
    img, vals, lab = np.concatenate(img), np.concatenate(vals), np.concatenate(lab)
    order = np.argsort(img, kind="stable")  # group by image, keeping file order within an image
    lims = np.searchsorted(img[order], np.arange(len(ids) + 1))
    detections = {}
    for k, image_id in enumerate(ids):
        o = order[lims[k] : lims[k + 1]]
        if len(o):
            detections[image_id] = {"polygons": vals[o, 1:], "scores": vals[o, 0], "labels": lab[o]}
    return detections, annotations, class_names


def evaluate_task1(
    results_dir: str | Path,
    labels_dir: str | Path,
    iou_thr: float = 0.5,
    use_07_metric: bool = True,
    classes: Sequence[str] | None = None,
) -> dict:
    """File-level DOTA Task1 evaluation, mirroring the devkit's ``dota_evaluation_task1.py``.

    Args:
        results_dir: folder of ``Task1_<class>.txt`` files, lines ``image_id score x1 y1 ... x4 y4``.
        labels_dir: folder of DOTA labelTxt files named ``<image_id>.txt``.
        iou_thr: IoU threshold (a match needs IoU > iou_thr).
        use_07_metric: 11-point AP (official) if True, else area under the PR envelope.
        classes: class names to evaluate (see ``load_task1``).

    Returns:
        ``{'mAP': float, 'per_class': {class name: AP}}`` (AP as fractions; NaN for a class without
        non-difficult objects, left out of mAP). Malformed files raise ValueError naming file and line.
    """
    detections, annotations, class_names = load_task1(results_dir, labels_dir, classes)
    result = evaluate(detections, annotations, (float(iou_thr),), use_07_metric, class_names)
    return {"mAP": float(result.map[0]), "per_class": result.per_class()}
