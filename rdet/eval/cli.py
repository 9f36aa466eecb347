"""``rdet eval``: the official DOTA metric on Task1 result files, a detections JSON, or a checkpoint.

    rdet eval --results work/Task1 --labels DOTA/val/labelTxt                 # devkit-equivalent mAP50
    rdet eval --results work/Task1 --labels DOTA/val/labelTxt --iou-thrs coco --json eval.json --plots pr/
    rdet eval --detections dets.json --labels DOTA/val/labelTxt               # from run_model / rdet predict
    rdet eval --checkpoint work/last.pt --split val --save-detections dets.json

Prints the classes x thresholds table; ``--json`` writes ``EvalResult.to_json``; ``--plots`` one PR PNG per class.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from rdet.eval.dota import EvalResult, evaluate
from rdet.eval.files import labels_from_dir, load_task1


def save_detections_json(detections: Mapping, path: str | Path, class_names: Sequence[str] | None = None) -> None:
    """Write ``{image_id: {'polygons' | 'boxes', 'scores', 'labels'}}`` (arrays or tensors) as JSON.

    The file is ``{"class_names": [...] | null, "detections": {image_id: {key: list}}}``; labels stay
    integers indexing ``class_names``.
    """
    out = {}
    for image_id, rec in detections.items():
        out[str(image_id)] = {
            k: (v.detach().cpu().numpy() if isinstance(v, torch.Tensor) else np.asarray(v)).tolist()
            for k, v in rec.items()
            if k in ("polygons", "boxes", "scores", "labels")
        }
    Path(path).write_text(
        json.dumps({"class_names": None if class_names is None else list(class_names), "detections": out})
    )


def load_detections_json(path: str | Path, class_names: Sequence[str]) -> dict:
    """Read a detections JSON (``save_detections_json``'s layout, or the bare ``{image_id: record}``).

    Labels may be integers (indices into ``class_names``) or class names. A file that stores its own
    ``class_names`` must list the same classes (integer labels are re-indexed onto ``class_names``).
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from None
    stored = data.get("class_names") if "detections" in data else None
    records = data["detections"] if "detections" in data else data
    if not isinstance(records, dict):
        raise ValueError(f"{path}: expected an object mapping image ids to detection records")
    index = {n: i for i, n in enumerate(class_names)}
    out = {}
    for image_id, rec in records.items():
        labels = rec.get("labels", [])
        if stored is not None:  # integers index the file's own list
            labels = [stored[v] if isinstance(v, int) and 0 <= v < len(stored) else v for v in labels]
        mapped = []
        for v in labels:
            if isinstance(v, str):
                if v not in index:
                    raise ValueError(f"{path}: image {image_id!r}: unknown class {v!r}; classes: {list(class_names)}")
                v = index[v]
            mapped.append(v)
        out[image_id] = {**rec, "labels": mapped}
    return out


def run_model(model, data="val", device: str | None = None, progress: bool = True) -> tuple[dict, dict, list[str]]:
    """Run a detector over a dataset split and return what ``evaluate`` needs.

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
    from rdet.engine.evaluate import predict_loader

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


def _classes(text: str | None) -> list[str] | None:
    """``--classes``: a dataset name (``dota1.0``, ``hrsc``, ...) or a comma-separated list of names."""
    if text is None:
        return None
    if "," not in text:
        from rdet.data.classes import CLASS_LISTS, get_classes

        if text.lower() in CLASS_LISTS or text.lower().startswith(("dota", "dior", "hrsc")):
            return list(get_classes(text))
    return [c.strip() for c in text.split(",") if c.strip()]


def _thresholds(text: str):
    if text == "coco":
        return "coco"
    try:
        return tuple(float(t) for t in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'coco' or comma-separated floats, got {text!r}") from None


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="rdet eval",
        description="Official DOTA Task1 metric (polygon IoU, VOC07 AP).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n")[1],
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--results", type=Path, help="folder of Task1_<class>.txt result files (needs --labels)")
    src.add_argument("--detections", type=Path, help="detections JSON (save_detections_json; needs --labels)")
    src.add_argument("--checkpoint", type=Path, help="rdet checkpoint: run the model on --split of its config")
    p.add_argument("--labels", type=Path, help="folder of DOTA labelTxt files <image_id>.txt")
    p.add_argument(
        "--classes",
        help="dataset name (dota1.0, dota1.5, hrsc, ...) or comma-separated class names; "
        "default: classes found in the labels",
    )
    p.add_argument(
        "--split",
        default="val",
        choices=("val", "train"),
        help="with --checkpoint: dataset split of the checkpoint's config (default val)",
    )
    p.add_argument("--device", default=None, help="with --checkpoint: cpu, cuda, cuda:1 ...")
    p.add_argument(
        "--save-detections",
        type=Path,
        help="with --checkpoint: also write the detections JSON (in the loader's pixel coordinates)",
    )
    p.add_argument(
        "--iou-thrs",
        type=_thresholds,
        default=(0.5,),
        help="'coco' (0.50:0.05:0.95) or comma-separated thresholds (default 0.5)",
    )
    p.add_argument("--area", action="store_true", help="area under the PR envelope instead of VOC07 11-point AP")
    p.add_argument("--json", type=Path, help="write the result as JSON here")
    p.add_argument("--pr", action="store_true", help="include the PR arrays in the JSON")
    p.add_argument("--plots", type=Path, help="write one PR-curve PNG per class into this folder")
    return p


def _evaluate(args: argparse.Namespace) -> EvalResult:
    classes = _classes(args.classes)
    use07 = not args.area
    if args.checkpoint is not None:
        dets, anns, names = run_model(args.checkpoint, args.split, args.device)
        if args.save_detections:
            save_detections_json(dets, args.save_detections, names)
        return evaluate(dets, anns, args.iou_thrs, use07, classes or names)
    if args.labels is None:
        raise ValueError("--labels is required with --results and --detections")
    if args.results is not None:
        dets, anns, names = load_task1(args.results, args.labels, classes)
    else:
        anns, names = labels_from_dir(args.labels, classes)
        dets = load_detections_json(args.detections, names)
    return evaluate(dets, anns, args.iou_thrs, use07, names)


def cli(argv: list[str]) -> int:
    """Entry point of ``rdet eval``; returns the exit status (1 on bad input, with the reason on stderr)."""
    args = parser().parse_args(argv)
    try:
        result = _evaluate(args)
        print(result.table())
        if args.json:
            result.to_json(args.json, include_pr=args.pr)
        if args.plots:
            from rdet.eval.plots import plot_pr_curves

            files = plot_pr_curves(result, args.plots)
            print(f"\nwrote {len(files)} PR curves to {args.plots}")
    except (ValueError, FileNotFoundError) as e:
        print(f"rdet eval: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(cli(sys.argv[1:]))
