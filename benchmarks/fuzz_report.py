"""The fuzz campaign of issue 18 at a large budget: every target of ``tests/fuzz`` with its outcome table.

For each target, ``--examples`` inputs are drawn (hypothesis, fixed seed) and each run is sorted into
accepted / clear error / crash / hang / silently wrong (definitions in ``tests/fuzz/__init__.py``); a run past
``--time-limit`` seconds is a hang. Prints a Markdown table (for BENCHMARKS.md) and the first bad example of each
target; exits 1 when any crash, hang or silently wrong result was found.

    python -m benchmarks.fuzz_report [--examples 2000] [--seed 0] [--time-limit 10] [--only labels]
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from tests.fuzz.registry import OUTCOMES, load, run  # noqa: E402 - run as `python -m benchmarks.fuzz_report`


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--examples", type=int, default=2000, help="inputs per target (default 2000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--time-limit", type=float, default=10.0, help="seconds per input before it counts as a hang")
    p.add_argument("--only", default=None, help="run the targets whose name contains this text")
    a = p.parse_args(argv)
    import torch

    from rdet import ops

    torch.set_num_threads(1)
    targets = {k: v for k, v in sorted(load().items()) if a.only is None or a.only in k}
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    print(f"# fuzz report: {a.examples} inputs per target, seed {a.seed}, time limit {a.time_limit} s")
    print(
        f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
        f"compiled ops: {ops.has_compiled()}, commit {commit}, {time.strftime('%Y-%m-%d')}\n"
    )
    rows, firsts, bad = [], [], 0
    for name, t in targets.items():
        c = run(t, a.examples, a.seed, a.time_limit)
        tried = sum(c[o] for o in OUTCOMES)
        rows.append(
            f"| {name} | {tried} | {c['accepted']} | {c['clear error']} | {c['crash']} | {c['hang']} | "
            f"{c['silently wrong']} | {c['seconds']:.0f} |"
        )
        bad += c["crash"] + c["hang"] + c["silently wrong"]
        firsts += [f"- {name}: {k}: {v}" for k, v in c["examples"].items()]
        print(rows[-1].replace("| ", "").replace(" |", ","), file=sys.stderr, flush=True)
    print("| target | inputs tried | accepted | clear error | crash | hang | silently wrong | seconds |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    print("\n".join(rows))
    if firsts:
        print("\nfirst bad input of each kind:\n" + "\n".join(firsts))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
