"""``rdet bench``: inference speed of rdet detectors (published settings, or your own checkpoint / ONNX file).

    rdet bench --quick                                            # tiny model, seconds
    rdet bench --model work_dirs/x/model.pt --backends eager onnx --iters 5 --allow-few-iters
    rdet bench --model model.onnx --batch 1                        # an exported file, as it is
    rdet bench --models retinanet-r18 retinanet-r50 --inputs dota --batch 1 --backends eager onnx \\
        --iters 3 --warmup 1 --allow-few-iters --output cpu.md
    rdet bench --backends all --batch 1 16 --output gpu.md         # the full matrix on a GPU

Published models use random weights (speed does not depend on them); --model times your file, at its training
size (checkpoint) or its fixed input size (ONNX/TensorRT) unless --inputs is given. The harness and the meaning of
every column: rdet.bench.fps.
"""

from __future__ import annotations

import argparse
import sys

from rdet.commands.common import Parser, add, doc_parts, run_command

# Kept in step with rdet.bench.models and rdet.bench.fps (tests/test_commands.py checks); listed here so --help
# imports no torch.
MODELS = (
    "r3det-r50",
    "r3det-tiny-r50",
    "retinanet-r18",
    "retinanet-r18-ld",
    "retinanet-r18-narrow",
    "retinanet-r34",
    "retinanet-r50",
    "tiny",
)
DEFAULT_MODELS = ("retinanet-r18", "retinanet-r34", "retinanet-r50", "r3det-r50", "r3det-tiny-r50")
BACKENDS = ("eager", "channels_last", "bf16", "fp16", "compile", "cudagraphs", "onnx", "trt", "trt-fp16")
MIN_ITERS = 50


def parser() -> Parser:
    p = Parser("rdet bench", *doc_parts(__doc__))
    p.add_argument(
        "--model",
        action="append",
        default=None,
        metavar="PATH",
        help="your own checkpoint (.pt), zoo name, ONNX file or TensorRT engine (repeatable; default: none)",
    )
    p.add_argument(
        "--models",
        nargs="+",
        default=None,
        metavar="NAME",
        help=f"published settings: {', '.join(MODELS)} (default: {' '.join(DEFAULT_MODELS)}; none with --model)",
    )
    p.add_argument(
        "--inputs",
        nargs="+",
        default=None,
        help="dota (1024x1024), hrsc (800x512) or WIDTHxHEIGHT (default: dota hrsc; --model: the model's size)",
    )
    p.add_argument("--batch", nargs="+", type=int, default=None, help="batch sizes (default: 1 16 on CUDA, 1 on CPU)")
    p.add_argument(
        "--backends",
        nargs="+",
        default=None,
        help=f"{', '.join(BACKENDS)} or 'all' "
        "(default: eager channels_last fp16 bf16 cudagraphs onnx trt-fp16 on CUDA; eager onnx on CPU)",
    )
    p.add_argument("--nms", choices=("both", "yes", "no"), default="both", help="time with NMS, without, or both")
    p.add_argument(
        "--nms-load", choices=("cap", "config"), default="cap", help="cap: score_thr 0 (worst case); config: as set"
    )
    p.add_argument("--iters", type=int, default=MIN_ITERS, help="timed iterations")
    p.add_argument("--warmup", type=int, default=None, help="warm-up iterations (default: 10 on CUDA, 1 on CPU)")
    p.add_argument("--allow-few-iters", action="store_true", help=f"allow --iters < {MIN_ITERS} (slow CPUs)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads on a CPU (default: torch's)")
    p.add_argument(
        "--peak-tflops", type=float, default=None, help="peak FLOP/s of the device (default: the datasheet table)"
    )
    p.add_argument("--workdir", default=None, help="where ONNX files / engines go (default: a temporary folder)")
    add(
        p,
        "--output",
        deprecated=["--out"],
        default=None,
        metavar="PATH",
        help="also write the markdown report here (default: printed only)",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: tiny model, 128x128, batch 1 and 2, eager/channels_last/onnx, 3 iterations",
    )
    return p


def run(args: argparse.Namespace, argv: list[str]) -> int:
    from rdet.bench import fps

    fps.finalize_args(args, parser().error)
    return fps.main(args, "rdet bench " + " ".join(argv))


def cli(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    return run_command(parser(), lambda args: run(args, argv), argv, {"model=": "--model "})
