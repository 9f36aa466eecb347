"""Run a model over a data loader and score it with the official DOTA metric (``rdet.eval``)."""

from __future__ import annotations

import torch
from torch import nn

from rdet.eval.dota import EvalResult, evaluate
from rdet.utils.progress import progress as progress_bar


@torch.no_grad()
def predict_loader(model: nn.Module, loader, progress: bool = True) -> tuple[dict, dict]:
    """Detections and ground truth per image id, in the loader's (network input) pixel coordinates.

    Returns:
        detections: ``{image_id: {'boxes': [N, 5], 'scores': [N], 'labels': [N]}}`` (numpy);
        annotations: ``{image_id: {'polygons': [M, 8], 'labels': [M], 'difficult': [M]}}`` (numpy).
    """
    module = model.module if hasattr(model, "module") else model
    was_training = module.training
    module.eval()
    device = next(module.parameters()).device
    dets, anns = {}, {}
    for batch in progress_bar(loader, desc="eval", enabled=progress):
        images = batch["images"].to(device)
        for det, target in zip(module.predict(images), batch["targets"]):
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
    module = model.module if hasattr(model, "module") else model
    return evaluate(dets, anns, iou_thrs=iou_thrs, use_07_metric=use_07_metric, class_names=module.class_names)
