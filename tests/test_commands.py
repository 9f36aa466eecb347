"""The ``rdet`` command layer (rdet/cli.py, rdet/commands): fast help, one vocabulary, one-line user errors."""

from __future__ import annotations

import argparse
import importlib
import subprocess
import sys
import types
from pathlib import Path

import pytest

from rdet import cli as rdet_cli
from rdet.commands import bench, common, convert, export, predict, serve, split

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "numpy", "cv2", "gradio", "onnx", "onnxruntime", "tensorrt")


def _parsers() -> dict[str, argparse.ArgumentParser]:
    """The parsers of rdet's own commands (rdet.commands); other modules listed in COMMANDS (``rdet zoo``) only
    have to answer --help without heavy imports."""
    return {
        name: importlib.import_module(mod).parser()
        for name, (mod, _) in rdet_cli.COMMANDS.items()
        if mod.startswith("rdet.commands.")
    }


def _run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rdet.cli", *args], capture_output=True, text=True, cwd=cwd)


def test_help_of_every_command_imports_nothing_heavy():
    # sys.modules, not a stopwatch: `rdet <cmd> --help` must not import torch & co. before argparse answers
    code = (
        "import sys\n"
        "from rdet.cli import COMMANDS, main\n"
        "for name in COMMANDS:\n"
        "    try:\n"
        "        main([name, '--help'])\n"
        "    except SystemExit as e:\n"
        "        assert e.code == 0, (name, e.code)\n"
        f"    heavy = [m for m in {HEAVY!r} if m in sys.modules]\n"
        "    assert not heavy, (name, heavy)\n"
        "print('ok', len(COMMANDS))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[-1] == str(len(rdet_cli.COMMANDS))


def test_help_states_the_default_of_every_flag():
    for name, p in _parsers().items():
        text = p.format_help()
        assert "--debug" in text, name
        for action in p._actions:
            if not action.option_strings or action.help == argparse.SUPPRESS:
                continue
            if isinstance(action, (argparse._HelpAction, argparse._StoreTrueAction)):
                continue
            shown = p._get_formatter()._expand_help(action) if action.help else ""
            assert "default" in shown or action.required or "required" in shown, (name, action.option_strings)


def test_one_vocabulary_across_commands():
    parsers = _parsers()
    flags = {name: {o for a in p._actions for o in a.option_strings} for name, p in parsers.items()}
    for name in ("predict", "split", "convert", "export", "eval", "train", "distill", "bench", "demo", "synth"):
        assert "--output" in flags[name], name
    for name in ("predict", "export", "eval", "serve", "bench"):
        assert "--model" in flags[name], name
    for name in ("predict", "split"):
        assert {"--tile", "--overlap", "--classes", "--max-pixels"} <= flags[name], name
    # the old spellings parse but stay out of the help
    for name, p in parsers.items():
        text = p.format_help()
        for old in ("--out ", "--size", "--gap", "--names", "--checkpoint", "--json"):
            assert old not in text, (name, old)


def test_old_spellings_work_with_one_note_each(capsys):
    p = split.parser()
    args = p.parse_args(["--images", "i", "--out", "o", "--size", "128", "--gap", "28"])
    assert (args.output, args.tile, args.overlap) == ("o", 128, 28)
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "rdet split: note: --out is deprecated; use --output",
        "rdet split: note: --size is deprecated; use --tile",
        "rdet split: note: --gap is deprecated; use --overlap",
    ]
    p = convert.parser()
    args = p.parse_args(["labels", "out", "--to", "dota", "--names", "c.yaml"])
    common.take_positional(p, args, "dst", "--output")
    assert (args.output, args.classes) == ("out", "c.yaml")
    assert capsys.readouterr().err.splitlines() == [
        "rdet convert: note: --names is deprecated; use --classes",
        "rdet convert: note: a positional DST is deprecated; use --output out",
    ]
    p = export.parser()
    args = p.parse_args(["model.pt", "--output", "m.onnx"])
    common.take_positional(p, args, "checkpoint", "--model")
    assert args.model == "model.pt"


def test_parser_constants_match_the_library():
    from rdet.bench import fps
    from rdet.bench import models as bench_models
    from rdet.data import formats
    from rdet.data import split as library_split
    from rdet.export import runtime
    from rdet.inference import io

    library_predict = importlib.import_module("rdet.inference.predict")

    assert predict.BACKENDS == library_predict.BACKENDS == serve.BACKENDS == tuple(library_predict.SUFFIXES)
    assert set(predict.IMAGE_SUFFIXES) == set(io.SUPPORTED)
    from rdet.data import images

    assert split.STYLES == library_split.STYLES and split.DEPTHS == library_split.DEPTHS
    assert (
        convert.FORMATS == formats.FORMATS and convert.TARGETS == importlib.import_module("rdet.data.convert").TARGETS
    )
    assert common.DEFAULT_MAX_PIXELS == images.DEFAULT_MAX_PIXELS == io.DEFAULT_MAX_PIXELS
    assert export.ENGINE_SUFFIXES == runtime.ENGINE_SUFFIXES
    assert bench.MODELS == tuple(sorted(bench_models.MODELS)) and bench.DEFAULT_MODELS == bench_models.DEFAULT_MODELS
    assert bench.BACKENDS == fps.BACKENDS and bench.MIN_ITERS == fps.MIN_ITERS


@pytest.mark.parametrize(
    "argv, names",
    [
        (["predict", "nope.png", "--model", "x.pt", "--output", "o"], "nope.png"),
        (["predict", "--model", "x.pt", "img.png"], "--output"),
        (["train", "configs/nope.py"], "nope"),
        (["split", "--images", "nowhere", "--output", "o"], "nowhere"),
        (["eval", "--results", "nowhere"], "--labels"),
        (["export", "--model", "x.pt", "--output", "m.txt"], "--output"),
        (["bench", "--models", "resnet-999"], "--models"),
        (["predict", "a.png", "--model", "m.pt", "--output", "o", "--tile", "zero"], "--tile"),
    ],
)
def test_user_errors_are_one_line_exit_2_no_traceback(argv, names, tmp_path):
    out = _run(*argv, cwd=ROOT)
    err = out.stderr.strip().splitlines()
    assert out.returncode == 2, out.stderr
    assert len(err) == 1 and err[0].startswith(f"rdet {argv[0]}: error: ") and names in err[0], err
    assert "Traceback" not in out.stderr


def test_missing_imagenet_weights_and_teacher_are_one_line(tmp_path):
    cfg = "configs/quickstart/rotated-retinanet-rbox-le90_r18_fpn_kld-stable_synthetic.py"
    out = _run("train", cfg, "--set", f"model.backbone.weights={tmp_path / 'r18.pth'}", "--output", str(tmp_path))
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert "r18.pth" in out.stderr or "synthetic" in out.stderr  # the weights, or the data that is not there
    student = "configs/quickstart/ld_r18_r34_synthetic.py"
    out = _run("distill", student, "--teacher-weights", str(tmp_path / "teacher.pt"), "--output", str(tmp_path))
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert "Traceback" not in out.stderr


def test_debug_shows_the_traceback(tmp_path):
    out = _run("predict", "nope.png", "--model", "x.pt", "--output", str(tmp_path), "--debug")
    assert out.returncode != 0 and "Traceback" in out.stderr and "FileNotFoundError" in out.stderr


def test_library_keywords_become_flags(capsys):
    p = common.Parser("rdet x", "test")

    def run(args):
        raise ValueError("Task1_a.txt: unknown class (pass classes=)\nsecond line")

    assert common.run_command(p, run, [], {"classes=": "--classes"}) == 2
    assert capsys.readouterr().err == "rdet x: error: Task1_a.txt: unknown class (pass --classes); second line\n"


def test_dispatcher_accepts_other_modules_with_cli(monkeypatch, capsys):
    module = types.ModuleType("fake_doctor")
    module.cli = lambda argv: print("doctor", argv) or 0
    monkeypatch.setitem(sys.modules, "fake_doctor", module)
    monkeypatch.setitem(rdet_cli.COMMANDS, "doctor", ("fake_doctor", "check the installation"))
    assert rdet_cli.main(["doctor", "--x"]) == 0
    assert capsys.readouterr().out == "doctor ['--x']\n"
    assert rdet_cli.main([]) == 0 and "doctor" in capsys.readouterr().out
    assert rdet_cli.main(["trian"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"rdet: error: unknown command 'trian' (did you mean 'train'?); commands: {', '.join(rdet_cli.COMMANDS)}"
    )


def test_synth_writes_the_quickstart_layout(tmp_path):
    from rdet.commands.synth import cli

    assert cli(["--output", str(tmp_path), "--train", "3", "--val", "2", "--image-size", "64"]) == 0
    assert len(list((tmp_path / "train/images").glob("*.png"))) == 3
    assert len(list((tmp_path / "val/labelTxt").glob("*.txt"))) == 2
