"""``rdet distill``: train a student detector with localization distillation (LD + KD) from a trained teacher.

    rdet train configs/quickstart/ld_r34_teacher_synthetic.py        # the teacher first (writes its last.pt)
    rdet distill configs/quickstart/ld_r18_r34_synthetic.py
    rdet distill STUDENT_CONFIG --teacher TEACHER_CONFIG --teacher-weights work_dirs/t/last.pt

The teacher comes from the student config's distill section (distill.teacher, distill.teacher_weights) unless
--teacher/--teacher-weights are given.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rdet.commands.common import Parser, UserError, doc_parts, run_command
from rdet.commands.train import KEYWORDS, add_config_arguments, load


def parser() -> Parser:
    p = Parser("rdet distill", *doc_parts(__doc__))
    add_config_arguments(p, "student config file with a distill section (configs/ld/...) or its name")
    p.add_argument("--teacher", default=None, help="teacher config file (default: the config's distill.teacher)")
    p.add_argument(
        "--teacher-weights", default=None, help="teacher checkpoint (default: the config's distill.teacher_weights)"
    )
    return p


def run(args: argparse.Namespace) -> int:
    config = load(args)
    if config is None:
        return 0
    from rdet.engine.distill import distill

    try:
        result = distill(config, teacher=args.teacher, teacher_weights=args.teacher_weights, resume=args.resume)
    except FileNotFoundError as e:
        if "teacher" not in str(e) or args.teacher_weights:
            raise
        teacher = args.teacher or (config.distill.teacher if config.distill else "")
        if teacher and config.source and not Path(teacher).is_absolute():
            teacher = str(Path(config.source).parent / teacher)
        raise UserError(f"{e}; train the teacher first (rdet train {teacher}) or pass --teacher-weights") from e
    if result["cache_hits"] or result["cache_misses"]:
        n = result["cache_hits"] + result["cache_misses"]
        print(f"teacher cache: {result['cache_hits']}/{n} images served from disk")
    print(json.dumps(result, indent=2))
    return 0


def cli(argv: list[str] | None = None) -> int:
    return run_command(parser(), run, argv, {**KEYWORDS, "teacher=": "--teacher "})
