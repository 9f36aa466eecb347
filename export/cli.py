"""``rdet export CHECKPOINT --format onnx|trt --output PATH [--nms none|plugin|onnx] [--batch N | --dynamic-batch]
[--fp16] [--imgsz 1024] ...``"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="rdet export", description="Export an rdet checkpoint to ONNX or a TensorRT engine."
    )
    p.add_argument("checkpoint", help="rdet checkpoint (.pth) holding weights and config")
    p.add_argument("--format", choices=("onnx", "trt"), default="onnx")
    p.add_argument("--output", required=True, help="output .onnx (format onnx) or .engine/.plan (format trt)")
    p.add_argument(
        "--nms",
        choices=("none", "plugin", "onnx"),
        default="onnx",
        help="none: raw boxes+scores; plugin: one rdet::RotatedNMS node; onnx: NMS from standard ops (default)",
    )
    g = p.add_mutually_exclusive_group()
    g.add_argument("--batch", type=int, default=1, help="fixed batch size (default 1)")
    g.add_argument("--dynamic-batch", action="store_true", help="symbolic batch dimension")
    p.add_argument("--imgsz", type=int, nargs="+", default=[1024], help="input size H [W], divisible by 32")
    p.add_argument("--input-dtype", choices=("uint8", "float32"), default="uint8")
    p.add_argument("--opset", type=int, default=17)
    p.add_argument("--score-thr", type=float, default=None, help="default: the config's model.test.score_thr")
    p.add_argument("--iou-thr", type=float, default=None, help="default: model.test.iou_thr")
    p.add_argument("--max-det", type=int, default=None, help="default: model.test.max_per_img")
    p.add_argument("--pre-nms-topk", type=int, default=None, help="default: model.test.nms_pre")
    p.add_argument("--class-agnostic", action="store_true")
    trt = p.add_argument_group("TensorRT (--format trt)")
    trt.add_argument("--fp16", action="store_true")
    trt.add_argument("--plugin-lib", default=None, help="librdet_rotated_nms_plugin.so (needed for --nms plugin)")
    trt.add_argument("--min-batch", type=int, default=None)
    trt.add_argument("--opt-batch", type=int, default=None)
    trt.add_argument("--max-batch", type=int, default=None)
    trt.add_argument("--workspace-gib", type=float, default=4.0)
    return p


def cli(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    from rdet.export.onnx_export import export_onnx

    if len(args.imgsz) > 2:
        print("rdet export: --imgsz takes H or H W", file=sys.stderr)
        return 2
    imgsz = args.imgsz[0] if len(args.imgsz) == 1 else tuple(args.imgsz)
    output = Path(args.output)
    if args.format == "onnx" and (args.fp16 or args.plugin_lib or args.min_batch or args.opt_batch or args.max_batch):
        print("rdet export: --fp16/--plugin-lib/--min/opt/max-batch apply to --format trt only", file=sys.stderr)
        return 2
    from rdet.export.runtime import ENGINE_SUFFIXES

    if args.format == "onnx" and output.suffix != ".onnx":
        print(f"rdet export: --output must end with .onnx for --format onnx, got {output}", file=sys.stderr)
        return 2
    if args.format == "trt" and output.suffix not in ENGINE_SUFFIXES:
        print(
            f"rdet export: --output must end with one of {ENGINE_SUFFIXES} for --format trt, got {output}",
            file=sys.stderr,
        )
        return 2
    if args.format == "trt" and args.nms == "onnx" and args.pre_nms_topk is not None:
        from rdet.export.trt_build import TRT_MAX_TOPK

        if args.pre_nms_topk > TRT_MAX_TOPK:
            print(
                f"rdet export: --pre-nms-topk {args.pre_nms_topk} exceeds TensorRT's TopK limit of {TRT_MAX_TOPK} "
                f"(--format trt --nms onnx); use --pre-nms-topk {TRT_MAX_TOPK} or less, or --nms plugin",
                file=sys.stderr,
            )
            return 2
    onnx_path = output if args.format == "onnx" else output.with_suffix(".onnx")
    try:
        export_onnx(
            args.checkpoint,
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
    except (ValueError, RuntimeError, FileNotFoundError) as e:
        print(f"rdet export: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(cli(sys.argv[1:]))
