"""``rdet export``: export a checkpoint to ONNX (three NMS modes) or a TensorRT engine.

    rdet export --model work_dirs/x/model.pt --output model.onnx --nms onnx --imgsz 1024 --dynamic-batch
    rdet export --model work_dirs/x/model.pt --format trt --output model.engine --nms plugin \\
        --plugin-lib build/rotated_nms/librdet_rotated_nms_plugin.so --fp16

The graph takes uint8 (or --input-dtype float32) RGB images [B, 3, H, W]; the normalisation is inside it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rdet.commands.common import (
    Parser,
    UserError,
    deprecated_positional,
    doc_parts,
    positive_int,
    require,
    run_command,
    take_positional,
)

ENGINE_SUFFIXES = (".engine", ".plan", ".trt")  # rdet.export.runtime.ENGINE_SUFFIXES (tests/test_commands.py)


def parser() -> Parser:
    p = Parser("rdet export", *doc_parts(__doc__))
    deprecated_positional(p, "checkpoint")
    p.add_argument("--model", default=None, metavar="PATH", help="rdet checkpoint (.pt) or zoo name (required)")
    p.add_argument("--format", choices=("onnx", "trt"), default="onnx", help="output format")
    p.add_argument(
        "--output", default=None, metavar="PATH", help="output .onnx (--format onnx) or .engine/.plan (trt) (required)"
    )
    p.add_argument(
        "--nms",
        choices=("none", "plugin", "onnx"),
        default="onnx",
        help="none: raw boxes+scores; plugin: one rdet::RotatedNMS node; onnx: NMS from standard ONNX ops",
    )
    g = p.add_mutually_exclusive_group()
    g.add_argument("--batch", type=positive_int, default=1, help="fixed batch size")
    g.add_argument("--dynamic-batch", action="store_true", help="symbolic batch dimension")
    p.add_argument("--imgsz", type=positive_int, nargs="+", default=[1024], help="input size H [W], divisible by 32")
    p.add_argument("--input-dtype", choices=("uint8", "float32"), default="uint8", help="input image type")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (>= 17)")
    p.add_argument("--score-thr", type=float, default=None, help="default: the config's model.test.score_thr")
    p.add_argument("--iou-thr", type=float, default=None, help="default: the config's model.test.iou_thr")
    p.add_argument("--max-det", type=int, default=None, help="default: the config's model.test.max_per_img")
    p.add_argument(
        "--pre-nms-topk",
        type=int,
        default=None,
        help="candidates per FPN level (default: the config's model.test.nms_pre)",
    )
    p.add_argument("--class-agnostic", action="store_true", help="NMS across classes")
    trt = p.add_argument_group("TensorRT (--format trt)")
    trt.add_argument("--fp16", action="store_true", help="build an fp16 engine (TensorRT 10)")
    trt.add_argument(
        "--plugin-lib", default=None, help="librdet_rotated_nms_plugin.so (needed for --nms plugin; default: none)"
    )
    trt.add_argument("--min-batch", type=int, default=None, help="dynamic batch profile minimum (default: 1)")
    trt.add_argument("--opt-batch", type=int, default=None, help="dynamic batch profile optimum (default: the maximum)")
    trt.add_argument(
        "--max-batch", type=int, default=None, help="dynamic batch profile maximum (default: max(min, opt))"
    )
    trt.add_argument("--workspace-gib", type=float, default=4.0, help="TensorRT builder workspace")
    return p


def run(args: argparse.Namespace) -> int:
    p = parser()
    take_positional(p, args, "checkpoint", "--model")
    require(p, args, "--model", "--output")
    if len(args.imgsz) > 2:
        raise UserError("--imgsz takes H or H W")
    imgsz = args.imgsz[0] if len(args.imgsz) == 1 else tuple(args.imgsz)
    output = Path(args.output)
    trt_only = args.fp16 or args.plugin_lib or args.min_batch or args.opt_batch or args.max_batch
    if args.format == "onnx" and trt_only:
        raise UserError("--fp16/--plugin-lib/--min-batch/--opt-batch/--max-batch apply to --format trt only")
    if args.format == "onnx" and output.suffix != ".onnx":
        raise UserError(f"--output must end with .onnx for --format onnx, got {output}")
    if args.format == "trt" and output.suffix not in ENGINE_SUFFIXES:
        raise UserError(f"--output must end with one of {', '.join(ENGINE_SUFFIXES)} for --format trt, got {output}")
    if args.format == "trt" and args.nms in ("onnx", "plugin") and args.pre_nms_topk is not None:
        from rdet.export.trt_build import TRT_MAX_TOPK

        if args.pre_nms_topk > TRT_MAX_TOPK:
            raise UserError(
                f"--pre-nms-topk {args.pre_nms_topk} exceeds TensorRT's TopK limit of {TRT_MAX_TOPK} "
                f"(--format trt --nms {args.nms}: one TopK per FPN level); use --pre-nms-topk {TRT_MAX_TOPK} or less"
            )
    from rdet.export.onnx_export import export_onnx

    onnx_path = output if args.format == "onnx" else output.with_suffix(".onnx")
    export_onnx(
        args.model,
        onnx_path,
        nms=args.nms,
        batch=args.batch,
        dynamic_batch=args.dynamic_batch,
        imgsz=imgsz,
        input_dtype=args.input_dtype,
        opset=args.opset,
        score_threshold=args.score_thr,
        iou_threshold=args.iou_thr,
        max_det=args.max_det,
        pre_nms_topk=args.pre_nms_topk,
        class_agnostic=args.class_agnostic,
    )
    print(f"wrote {onnx_path}")
    if args.format == "trt":
        from rdet.export.trt_build import build_engine

        build_engine(
            onnx_path,
            output,
            plugin_lib=args.plugin_lib,
            fp16=args.fp16,
            min_batch=args.min_batch,
            opt_batch=args.opt_batch,
            max_batch=args.max_batch,
            workspace_gib=args.workspace_gib,
        )
        print(f"wrote {output}")
    return 0


KEYWORDS = {
    "imgsz=": "--imgsz ",
    "score_threshold": "--score-thr",
    "iou_threshold": "--iou-thr",
    "max_det": "--max-det",
    "pre_nms_topk": "--pre-nms-topk",
    "nms=": "--nms ",
    "opset=": "--opset ",
    "dynamic_batch=True": "--dynamic-batch",
}


def cli(argv: list[str] | None = None) -> int:
    # RuntimeError: what rdet.export raises for a missing TensorRT / failed build (said in one line, exit 2)
    return run_command(parser(), _run_catching_runtime, argv, KEYWORDS)


def _run_catching_runtime(args: argparse.Namespace) -> int:
    try:
        return run(args)
    except RuntimeError as e:
        raise UserError(str(e)) from e
