"""``rdet serve``: the Gradio demo of tiled oriented object detection, in the browser (needs the ``demo`` extra).

rdet serve --model demo_out/model.pt
rdet serve --model model.onnx --host 0.0.0.0 --port 8080
"""

from __future__ import annotations

import argparse

from rdet.commands.common import Parser, UserError, doc_parts, run_command

BACKENDS = ("torch", "onnx", "trt")  # rdet.inference.predict.SUFFIXES (tests/test_commands.py checks)


def parser() -> Parser:
    from rdet.serve.budget import QUEUE_SIZE, Budget  # dataclasses only: --help stays light

    p = Parser("rdet serve", *doc_parts(__doc__))
    p.add_argument("--model", required=True, help="checkpoint (.pt), zoo name, ONNX file or TensorRT engine")
    p.add_argument("--host", default="127.0.0.1", help="0.0.0.0 to serve on the network")
    p.add_argument("--port", type=int, default=7860, help="TCP port")
    p.add_argument("--backend", choices=BACKENDS, default=None, help="default: from the model file's extension")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 ...")
    p.add_argument("--max-upload-mb", type=float, default=Budget.max_upload_mb, help="largest upload accepted")
    p.add_argument("--max-pixels", type=int, default=Budget.max_pixels, help="largest scene accepted (pixels)")
    p.add_argument("--max-tiles", type=int, default=Budget.max_tiles, help="most tiles one request may run")
    p.add_argument("--time-limit", type=float, default=Budget.time_limit_s, help="model seconds per request")
    p.add_argument("--queue-size", type=int, default=QUEUE_SIZE, help="requests that may wait for the model")
    return p


def run(args: argparse.Namespace) -> int:
    try:
        import gradio  # noqa: F401
    except ImportError:
        raise UserError("needs gradio: pip install 'rdet[demo]' (or pip install gradio)") from None
    from rdet.serve.app import build_app, launch

    app = build_app(
        args.model,
        args.backend,
        args.device,
        max_upload_mb=args.max_upload_mb,
        max_pixels=args.max_pixels,
        max_tiles=args.max_tiles,
        time_limit_s=args.time_limit,
    )
    launch(app, args.host, args.port, args.max_upload_mb, queue_size=args.queue_size)
    return 0


def cli(argv: list[str] | None = None) -> int:
    return run_command(parser(), run, argv)
