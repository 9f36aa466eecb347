"""Precision-recall curves of an ``EvalResult``: one PNG per class, the AP of each curve in its legend."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from rdet.eval.dota import EvalResult


def _file_stem(name: str) -> str:
    """Class name -> a safe file stem (``small-vehicle`` stays, ``Car carrier([]==[])`` -> ``Car_carrier_``)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "class"


def plot_pr_curves(
    result: EvalResult, out_dir: str | Path, iou_thrs: Sequence[float] | None = None, size: tuple[int, int] = (800, 500)
) -> list[Path]:
    """Write ``pr_<class>.png`` per class: precision against recall, one line per IoU threshold.

    The raw curve is drawn (precision after each non-ignored detection, in score order), as the
    devkit's commented-out plot; the legend gives ``IoU 0.5: AP 0.912`` for each line. A class with
    ground truth but no detections gets a single point at (0, 0) so its AP 0 shows. Classes without
    non-difficult ground truth (AP undefined) get no file.

    Args:
        result: output of ``rdet.eval.evaluate``.
        out_dir: folder for the PNGs (created).
        iou_thrs: thresholds to draw (each must have been evaluated); default: all of them.
        size: image (width, height) in pixels.

    Returns:
        list[Path]: the files written, in class order.
    """
    from rdet.plot import line_plot  # matplotlib (OpenCV without it); imported only when plotting

    thrs = list(result.iou_thrs) if iou_thrs is None else [float(t) for t in iou_thrs]
    cols = [result.thr_index(t) for t in thrs]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written, used = [], set()
    metric = "VOC07 11-point AP" if result.use_07_metric else "area AP"
    for c, name in enumerate(result.class_names):
        if result.num_gt[c] == 0:
            continue
        series = {}
        for t in cols:
            rec, prec = list(map(float, result.recall[c][t])), list(map(float, result.precision[c][t]))
            series[f"IoU {result.iou_thrs[t]:g}: AP {result.ap[c, t]:.3f}"] = (rec or [0.0], prec or [0.0])
        stem = _file_stem(name)
        if stem in used:  # two names that sanitise alike must not overwrite each other
            stem = f"{stem}_{c}"
        used.add(stem)
        path = out_dir / f"pr_{stem}.png"
        title = f"{name}: {result.num_gt[c]} objects, {result.num_dets[c]} detections ({metric})"
        line_plot(
            series, path, title=title, xlabel="recall", ylabel="precision", size=size, xlim=(0.0, 1.0), ylim=(0.0, 1.05)
        )
        written.append(path)
    return written
