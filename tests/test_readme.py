"""The README's examples are tests: its Python block runs (with fewer iterations), and every ``rdet`` command line it
shows parses with the current flags and no deprecation note."""

from __future__ import annotations

import importlib
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from rdet.cli import COMMANDS

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


def command_lines() -> list[str]:
    """Every ``rdet <command> ...`` line of the README's bash blocks (continuations joined, comments cut)."""
    out = []
    for block in blocks("bash"):
        for line in block.replace("\\\n", " ").splitlines():
            for part in line.split("&&"):
                part = part.split(" #")[0].strip()
                if part.startswith("torchrun"):
                    part = part[part.index("rdet.cli") + len("rdet.cli") :].strip()
                    part = f"rdet {part}"
                if part.startswith("rdet "):
                    out.append(part)
    return out


def test_readme_command_lines_parse_with_the_current_flags(capsys):
    lines = command_lines()
    assert len(lines) >= 12, lines
    for line in lines:
        argv = shlex.split(line)[1:]
        name = argv[0]
        assert name in COMMANDS, line
        parser = importlib.import_module(COMMANDS[name][0]).parser()
        try:
            parser.parse_args(argv[1:])
        except SystemExit as e:  # pragma: no cover - the message says which line
            pytest.fail(f"README line does not parse: {line!r} ({e})")
        assert "deprecated" not in capsys.readouterr().err, line


@pytest.mark.slow
def test_readme_python_example_runs(tmp_path):
    (code,) = [b for b in blocks("python") if "rdet.train(" in b]
    assert code.count("max_iters=300") == 3
    code = code.replace("max_iters=300", "max_iters=2")  # the same calls, fewer iterations
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, env=env, timeout=1500
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "DOTA Task1 AP (%)" in out.stdout and "'mAP':" in out.stdout
    assert sorted(p.name for p in (tmp_path / "results").iterdir())[:1] == ["Task1_plane.txt"]
    assert (tmp_path / "work_dirs/quickstart_ld_r18_r34_synthetic/last.pt").is_file()
