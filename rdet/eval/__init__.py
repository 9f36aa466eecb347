"""Evaluation with the official DOTA Task1 metric (polygon IoU, VOC07 11-point AP), AP50:95, PR curves.

``evaluate`` works on in-memory detections and annotations, ``evaluate_task1`` on the devkit's files;
``save_detections_json`` / ``load_detections_json`` / ``read_detections`` are the detections files that ``rdet
eval`` and ``rdet predict`` exchange; ``plot_pr_curves`` draws one PNG per class. A leaf of the package: it depends
on ``rdet.ops``, ``rdet.boxes`` and the ``rdet.data`` readers only. Running a model over a dataset is
:func:`rdet.engine.evaluate.run_model`; ``rdet eval`` is :mod:`rdet.commands.eval`.
"""

from rdet.eval.detections_io import load_detections_json, read_detections, save_detections_json
from rdet.eval.dota import COCO_IOU_THRS, EvalResult, evaluate, rotated_ld_printed_ap, voc_ap
from rdet.eval.files import evaluate_task1, load_task1
from rdet.eval.plots import plot_pr_curves

__all__ = [
    "COCO_IOU_THRS",
    "EvalResult",
    "evaluate",
    "evaluate_task1",
    "load_detections_json",
    "load_task1",
    "plot_pr_curves",
    "read_detections",
    "rotated_ld_printed_ap",
    "save_detections_json",
    "voc_ap",
]
