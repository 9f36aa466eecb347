"""``rdet`` command line: ``rdet train|distill|eval|split|convert|predict|export|bench|serve|demo ...``.

Each sub-command lives with the code it drives and exposes ``cli(argv: list[str]) -> int`` with its own
argparse, so ``rdet <sub> --help`` is documented where the behaviour is. Heavy modules are imported only
for the sub-command that runs.
"""

from __future__ import annotations

import importlib
import sys

COMMANDS = {
    "train": ("rdet.engine.train", "train a detector from a config"),
    "distill": ("rdet.engine.distill", "distill a student from a teacher"),
    "eval": ("rdet.eval.cli", "evaluate with the official DOTA metric"),
    "split": ("rdet.data.split", "split large images into training tiles"),
    "convert": ("rdet.data.formats", "convert label formats"),
    "predict": ("rdet.inference.predict", "tiled inference on scenes of any size"),
    "export": ("rdet.export.cli", "export to ONNX / TensorRT"),
    "bench": ("rdet.bench.fps", "inference speed benchmark"),
    "serve": ("rdet.serve.app", "Gradio demo"),
    "demo": ("rdet.demo", "the whole pipeline on the bundled samples"),
    "zoo": ("rdet.zoo", "published models: list, download (use one with --model NAME)"),
}


def usage() -> str:
    rows = "\n".join(f"  {name:<9} {help_}" for name, (_, help_) in COMMANDS.items())
    return f"usage: rdet <command> [args]\n\ncommands:\n{rows}\n\n'rdet <command> --help' for details."


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"rdet: unknown command {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    return int(module.cli(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
