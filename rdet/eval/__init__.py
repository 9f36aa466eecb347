"""Evaluation with the official DOTA Task1 metric (polygon IoU, VOC07 11-point AP), AP50:95, PR curves.

``evaluate`` works on in-memory detections and annotations, ``evaluate_task1`` on the devkit's files;
``plot_pr_curves`` draws one PNG per class; ``run_model`` runs a detector over a dataset split;
``rdet eval`` is :func:`rdet.eval.cli.cli`.
"""

from rdet.eval.cli import load_detections_json, run_model, save_detections_json
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
    "rotated_ld_printed_ap",
    "run_model",
    "save_detections_json",
    "voc_ap",
]
