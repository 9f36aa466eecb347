"""Run a model over a data loader and score it with the official DOTA metric (``rdet.eval``).

``run_model`` (a checkpoint or model over a split of its config), ``predict_loader`` (a model over any loader) and
``evaluate_model``; the metric itself lives in :mod:`rdet.eval`, which never imports this module.
"""

from __future__ import annotations

import typing
from pathlib import Path

import torch
from torch import nn

from rdet.eval.dota import EvalResult, evaluate
from rdet.models.detector import DenseDetector
from rdet.utils.progress import progress as progress_bar


def run_model(model, data="val", device: str | None = None, progress: bool = True) -> tuple[dict, dict, list[str]]:
    """Run a detector over a dataset split and return what :func:`rdet.eval.evaluate` needs.

    Args:
        model: an ``nn.Module`` with ``predict`` and ``class_names`` (``rdet.build_model``), or the path
            of a checkpoint (``rdet.checkpoint.load_checkpoint``).
        data: a split name of the model's config (``'val'`` or ``'train'``; built with
            ``rdet.engine.data.build_loader``) or an iterable of batches ``{'images', 'targets'}``.
        device: where to run (default: the model's device; ``'cpu'`` for a checkpoint path).

    Returns:
        detections ({image_id: {'boxes', 'scores', 'labels'}}), annotations, class_names, in the
        loader's pixel coordinates (tiles of a split dataset; merge before comparing with full-image
        results).
    """
    if isinstance(model, (str, Path)):
        from rdet.checkpoint import load_checkpoint

        model = load_checkpoint(model, device=device or "cpu")
    elif device is not None:
        model = model.to(device)
    if isinstance(data, str):
        from rdet.engine.data import build_loader

        data = build_loader(model.config, data)[0]
    dets, anns = predict_loader(model, data, progress)
    return dets, anns, list(model.class_names)


@torch.no_grad()
def predict_loader(model: nn.Module, loader, progress: bool = True) -> tuple[dict, dict]:
    """Detections and ground truth per image id, in the loader's (network input) pixel coordinates.

    Returns:
        detections: ``{image_id: {'boxes': [N, 5], 'scores': [N], 'labels': [N]}}`` (numpy);
        annotations: ``{image_id: {'polygons': [M, 8], 'labels': [M], 'difficult': [M]}}`` (numpy).
    """
    module = typing.cast(DenseDetector, getattr(model, "module", model))  # unwrap DistributedDataParallel
    was_training = module.training
    module.eval()
    dets, anns = {}, {}
    for batch in progress_bar(loader, desc="eval", enabled=progress):
        # uint8 images of any device: the model's own pre-processing normalises, pads and moves them
        for det, target in zip(module.predict(batch["images"]), batch["targets"]):
            image_id = target["image_id"]
            dets[image_id] = {
                "boxes": det.boxes.cpu().numpy(),
                "scores": det.scores.cpu().numpy(),
                "labels": det.labels.cpu().numpy(),
            }
            anns[image_id] = {
                "polygons": target["polygons"].cpu().numpy(),
                "labels": target["labels"].cpu().numpy(),
                "difficult": target["difficult"].cpu().numpy(),
            }
    module.train(was_training)
    return dets, anns


def evaluate_model(
    model: nn.Module, loader, iou_thrs="coco", use_07_metric: bool = True, progress: bool = True
) -> EvalResult:
    """DOTA Task1 metric of ``model`` on ``loader`` (default thresholds 0.50:0.05:0.95; ``map_at(0.5)`` is mAP50)."""
    dets, anns = predict_loader(model, loader, progress)
    module = typing.cast(DenseDetector, getattr(model, "module", model))
    return evaluate(dets, anns, iou_thrs=iou_thrs, use_07_metric=use_07_metric, class_names=module.class_names)
