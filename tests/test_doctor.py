"""``rdet doctor``: every row a bug report needs, the compiled-ops state told truthfully, a light --help."""

import os
import subprocess
import sys

from rdet import doctor, ops
from rdet.cli import COMMANDS, main

ROWS = (
    "rdet", "python", "torch", "numpy", "onnx", "onnxruntime", "ORT providers", "gradio", "tensorrt",
    "compiled CPU ops", "compiled CUDA ops", "build tools", "ops cache", "CUDA device",
)  # fmt: skip


def test_report_has_every_row_and_tells_where_the_ops_come_from(capsys):
    assert COMMANDS["doctor"][0] == "rdet.commands.doctor"
    assert main(["doctor"]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = {line[:17].strip(): line[17:].strip() for line in lines}
    assert set(ROWS) <= set(rows), sorted(rows)
    cpu = rows["compiled CPU ops"]
    assert cpu.startswith("yes (") if ops.has_compiled() else cpu.startswith("no (")
    assert any(w in cpu for w in ("built at install time", "JIT", "fallback", "disabled"))
    import torch

    assert rows["torch"].startswith(torch.__version__)
    if torch.version.cuda is None:
        assert rows["compiled CUDA ops"] == "no (this torch has no CUDA)"


def test_disabled_ops_are_reported():
    env = {**os.environ, "RDET_NO_EXT": "1"}
    out = subprocess.run([sys.executable, "-m", "rdet.cli", "doctor"], env=env, capture_output=True, text=True)
    assert out.returncode == 0 and "compiled CPU ops   no (disabled: RDET_NO_EXT=1)" in out.stdout


def test_help_imports_nothing_heavy():
    code = (
        "import sys\nfrom rdet.cli import main\n"
        "try:\n    main(['doctor', '--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('torch', 'onnxruntime', 'gradio', 'tensorrt') if m in sys.modules]\n"
        "assert not heavy, heavy"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0 and "rdet doctor" in out.stdout, out.stderr
    assert "torch" not in doctor.__dict__
