"""``rdet doctor``: versions, compiled-ops status and devices, to paste into a bug report.

    rdet doctor
    rdet doctor --rebuild        # delete the cached JIT builds of the ops first, then build them again

Resolves the compiled ops as the first op call would, compiling them once if needed (and says so).
"""

from __future__ import annotations

import argparse

from rdet.commands.common import Parser, doc_parts, run_command


def parser() -> Parser:
    p = Parser("rdet doctor", *doc_parts(__doc__))
    p.add_argument(
        "--rebuild", action="store_true", help="delete the cached JIT builds first, then rebuild (default: keep them)"
    )
    return p


def run(args: argparse.Namespace) -> int:
    from rdet.doctor import report

    rows = report(rebuild=args.rebuild)
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    return 0


def cli(argv: list[str] | None = None) -> int:
    return run_command(parser(), run, argv)
