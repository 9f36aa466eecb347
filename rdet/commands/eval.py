"""``rdet eval``: the official DOTA Task1 metric (polygon IoU, VOC07 AP) on result files, detections, or a model.

    rdet eval --results results/ --labels DOTA/val/labelTxt            # Task1_<class>.txt files (rdet predict's)
    rdet eval --detections results/ --labels DOTA/val/labelTxt         # rdet predict's JSON files (or one file)
    rdet eval --model work/model.pt --split val --save-detections dets.json
    rdet eval --detections dets.json --labels data/val/labelTxt        # a --save-detections file, as written
    rdet eval --results results/ --labels labelTxt --iou-thrs coco --output eval.json --plots pr/

The class list travels inside the files (Task1 file names, the JSON's class_names); the classes evaluated are
--classes, or those found in the labels. Detections of other classes are not evaluated (as in the DOTA devkit),
and a note says so. The table prints AP in percent; --output writes JSON with AP as fractions (0-1).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rdet.commands.common import Parser, UserError, add, doc_parts, note, run_command


def classes_arg(text: str | None) -> list[str] | None:
    """``--classes``: a dataset name (``dota1.0``, ``hrsc``, ...), a class-list file, or comma-separated names."""
    if text is None:
        return None
    if "," not in text:
        from rdet.data.classes import CLASS_LISTS, get_classes

        if text.lower() in CLASS_LISTS or text.lower().startswith(("dota", "dior", "hrsc")) or Path(text).is_file():
            return list(get_classes(text))
    return [c.strip() for c in text.split(",") if c.strip()]


def thresholds(text: str):
    if text == "coco":
        return "coco"
    try:
        return tuple(float(t) for t in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'coco' or comma-separated floats, got {text!r}") from None


def parser() -> Parser:
    p = Parser("rdet eval", *doc_parts(__doc__))
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument(
        "--results",
        type=Path,
        metavar="DIR",
        help="folder of Task1_<class>.txt files (with --labels; required: one of --results, --detections, --model)",
    )
    src.add_argument(
        "--detections",
        type=Path,
        metavar="PATH",
        help="detections JSON file, or a folder of them (with --labels; required: one of the three)",
    )
    add(
        src,
        "--model",
        deprecated=["--checkpoint"],
        default=None,
        metavar="PATH",
        help="checkpoint (or zoo name): run it on --split of its config (required: one of the three)",
    )
    p.add_argument(
        "--labels",
        type=Path,
        default=None,
        metavar="DIR",
        help="folder of DOTA labelTxt <image_id>.txt (required with --results and --detections)",
    )
    p.add_argument(
        "--classes",
        default=None,
        help="dataset name (dota1.0, dota1.5, hrsc, ...), class-list file or comma-separated names "
        "(default: the classes found in the labels)",
    )
    p.add_argument("--split", default="val", choices=("val", "train"), help="with --model: split of its config")
    p.add_argument("--device", default=None, help="with --model: cpu, cuda, cuda:1 ... (default: cpu)")
    p.add_argument(
        "--save-detections",
        type=Path,
        default=None,
        metavar="PATH",
        help="with --model: also write the detections JSON (loader pixel coordinates; rdet eval --detections reads it) "
        "(default: not written)",
    )
    p.add_argument(
        "--iou-thrs", type=thresholds, default="0.5", help="'coco' (0.50:0.05:0.95) or comma-separated thresholds"
    )
    p.add_argument("--area", action="store_true", help="area under the PR envelope instead of VOC07 11-point AP")
    add(
        p,
        "--output",
        deprecated=["--json"],
        type=Path,
        default=None,
        metavar="PATH",
        help="write the result as JSON (AP as fractions 0-1; default: not written)",
    )
    p.add_argument("--pr", action="store_true", help="include the PR arrays in the JSON")
    p.add_argument(
        "--plots", type=Path, default=None, metavar="DIR", help="write one PR-curve PNG per class here (default: none)"
    )
    return p


def evaluate_args(args: argparse.Namespace):
    """The :class:`rdet.eval.EvalResult` the arguments ask for."""
    from rdet.eval import evaluate
    from rdet.eval.detections_io import load_detections_json, read_detections, save_detections_json
    from rdet.eval.files import labels_from_dir, load_task1

    classes = classes_arg(args.classes)
    use07 = not args.area
    if args.model is not None:
        from rdet.engine.evaluate import run_model

        dets, anns, names = run_model(args.model, args.split, args.device)
        if args.save_detections:
            save_detections_json(dets, args.save_detections, names)
            print(f"wrote {args.save_detections}")
        return evaluate(dets, anns, args.iou_thrs, use07, classes or names)
    if args.save_detections is not None:
        raise UserError("--save-detections goes with --model")
    if args.labels is None:
        raise UserError(f"--labels is required with {'--results' if args.results else '--detections'}")
    if args.results is not None:
        ignored: list[str] = []
        dets, anns, names = load_task1(args.results, args.labels, classes, ignored)
        if ignored:
            note("rdet eval", f"not evaluated (classes not in the evaluated list): Task1_{{{','.join(ignored)}}}.txt")
    else:
        read_detections(args.detections)  # errors in the file come before the labels are read
        anns, names = labels_from_dir(args.labels, classes)
        skipped: dict[str, int] = {}
        dets = load_detections_json(args.detections, names, skipped)
        if skipped:
            shown = ", ".join(f"{k} ({v})" for k, v in sorted(skipped.items()))
            note("rdet eval", f"detections of classes not evaluated were left out: {shown}")
        unknown = sorted(set(dets) - set(anns))
        if unknown:
            raise UserError(
                f"{args.detections}: image {unknown[0]!r} has no label file in {args.labels} "
                f"({len(unknown)} such image(s))"
            )
    return evaluate(dets, anns, args.iou_thrs, use07, names)


def run(args: argparse.Namespace) -> int:
    result = evaluate_args(args)
    print(result.table())
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        result.to_json(args.output, include_pr=args.pr)
        print(f"\nwrote {args.output} (AP as fractions 0-1)")
    if args.plots:
        from rdet.eval.plots import plot_pr_curves

        files = plot_pr_curves(result, args.plots)
        print(f"\nwrote {len(files)} PR curves to {args.plots}")
    return 0


def cli(argv: list[str] | None = None) -> int:
    return run_command(
        parser(), run, argv, {"classes=": "--classes", "labels_dir": "--labels", "results_dir": "--results"}
    )


if __name__ == "__main__":
    sys.exit(cli())
