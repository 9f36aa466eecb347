"""``rdet`` command line: ``rdet <command> [args]``; ``rdet <command> --help`` for each.

Every command is a module exposing ``cli(argv: list[str]) -> int`` that imports nothing heavy at module level
(no torch, numpy, cv2, gradio, onnx): its argparse parser is built and ``--help`` answered before any heavy
import, which happens inside the command after parsing. rdet's own commands live in :mod:`rdet.commands` (one
module each, sharing :mod:`rdet.commands.common`: the vocabulary, help with defaults, one-line errors with
exit status 2, ``--debug`` for a traceback); other modules with a ``cli(argv)`` may be listed here as well.
"""

from __future__ import annotations

import importlib
import sys

COMMANDS = {
    "train": ("rdet.commands.train", "train a detector from a config"),
    "distill": ("rdet.commands.distill", "distill a student from a teacher"),
    "eval": ("rdet.commands.eval", "evaluate with the official DOTA metric"),
    "split": ("rdet.commands.split", "split large images into training tiles"),
    "convert": ("rdet.commands.convert", "convert label formats"),
    "predict": ("rdet.commands.predict", "tiled inference on images and scenes of any size"),
    "export": ("rdet.commands.export", "export to ONNX / TensorRT"),
    "bench": ("rdet.commands.bench", "inference speed benchmark (published models or your own --model)"),
    "serve": ("rdet.commands.serve", "Gradio demo"),
    "demo": ("rdet.commands.demo", "the whole pipeline on the bundled samples"),
    "synth": ("rdet.commands.synth", "write the synthetic dataset the quickstart configs train on"),
    "zoo": ("rdet.zoo", "published models: list, download (use one with --model NAME)"),
    "doctor": ("rdet.commands.doctor", "versions, compiled ops and devices, for bug reports"),
}


def usage() -> str:
    rows = "\n".join(f"  {name:<9} {help_}" for name, (_, help_) in COMMANDS.items())
    return (
        f"usage: rdet <command> [args]\n\ncommands:\n{rows}\n\n'rdet <command> --help' for details; "
        "'--debug' after a command shows the traceback of an error."
    )


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0
    if argv[0] == "--version":
        from rdet import __version__

        print(f"rdet {__version__}")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        close = [c for c in COMMANDS if sorted(c) == sorted(name) or c.startswith(name[:3])]
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        print(f"rdet: error: unknown command {name!r}{hint}; commands: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    return int(module.cli(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
