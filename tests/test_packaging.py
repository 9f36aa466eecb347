"""The wheel as a user gets it: built, installed non-editable into a fresh virtualenv, used from another folder.

Two wheels are built from a copy of the checkout:

* ``ext``: ``pip wheel --no-build-isolation`` with torch importable, so ``rdet._C`` is inside (checked: the ops
  come from it, ``rdet doctor`` says so, ``rdet predict`` runs, nothing is compiled at run time);
* ``noext``: the same, but torch is unimportable while building (exactly what pip's default build isolation
  does: setup.py's ``import torch`` fails), so the wheel holds the C++ sources only and ``rdet.ops`` must compile
  them on first use into ``RDET_HOME`` (measured here: ~50-80 s on 2 busy cores, once per test session).

Each wheel goes into its own virtualenv that sees the test environment's packages (torch, onnxruntime, gradio)
through a ``.pth`` line, installed with ``pip install --no-deps --no-index``: no network. Then, from a temporary
folder, the README's commands run against the ``noext`` one (what ``pip install`` gives by default), after its
first-use compile: ``rdet doctor``, ``rdet export`` (ONNX), ``rdet predict`` on the ``.onnx``, ``rdet serve`` (HTTP
200 on 127.0.0.1), ``rdet bench --quick``, ``rdet demo --help`` and the README's Python imports.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import time
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
from local_http import free_port, wait_for_http

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow

OPS_CHECK = """
import sys, torch, rdet, rdet.ops
from rdet.ops import _build
boxes = torch.tensor([[10., 10., 8., 4., 0.3], [10.5, 10., 8., 4., 0.3], [40., 40., 6., 6., 0.]])
keep = rdet.ops.nms_rotated(boxes, torch.tensor([0.9, 0.8, 0.7]), 0.5)
assert keep.tolist() == [0, 2], keep
i = _build.info()
print("RDET", rdet.__file__)
print("SOURCE", i.source)
print("PATH", i.path)
print("COMPILED", rdet.ops.has_compiled())
"""


def _sources(dest: Path) -> Path:
    """A clean copy of the checkout (what a fresh clone holds: tracked and untracked-but-not-ignored files)."""
    try:
        out = subprocess.run(
            ["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, capture_output=True, check=True
        ).stdout
        files = [f for f in out.decode().split("\0") if f]
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("needs a git checkout to know which files a clone holds")
    for f in files:
        if (ROOT / f).is_file():
            (dest / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / f, dest / f)
    return dest


class WheelBuild:
    """``pip wheel --no-build-isolation`` of a clean copy, running in the background until ``wheel()`` is asked."""

    def __init__(self, tmp: Path, with_torch: bool):
        self.dist = tmp / "dist"
        src = _sources(tmp / "src")
        env = {**os.environ, "PIP_NO_INDEX": "1"}
        if not with_torch:  # what build isolation does to setup.py: `import torch` fails
            hide = tmp / "hide_torch" / "torch"
            hide.mkdir(parents=True)
            (hide / "__init__.py").write_text("raise ImportError('torch is not installed in this build environment')\n")
            env["PYTHONPATH"] = str(hide.parent)
        self.log = open(tmp / "pip.log", "w+")
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(self.dist),
            str(src),
        ]
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, env=env)

    def wheel(self) -> Path:
        code = self.proc.wait(timeout=1800)
        self.log.seek(0)
        assert code == 0, self.log.read()[-5000:]
        (wheel,) = self.dist.glob("rdet-*.whl")
        return wheel


def _venv(tmp: Path, wheel: Path) -> Path:
    """A fresh virtualenv that reuses this environment's packages (a .pth line) and holds the wheel's rdet."""
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    py = venv / "bin" / "python"
    site = subprocess.run(
        [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    # .pth lines only append folders: the editable install's own .pth/finder there is not activated
    Path(site, "_reuse_test_env.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
        check=True,
        env={**os.environ, "PIP_NO_INDEX": "1"},
    )
    return venv


class Installed:
    """A wheel installed in a fresh virtualenv; ``run`` works from a folder outside the checkout."""

    def __init__(self, tmp: Path, wheel: Path, home: Path):
        self.tmp, self.wheel, self.home = tmp, wheel, home
        self.venv = _venv(tmp, wheel)
        self.cwd = tmp / "work"
        self.cwd.mkdir()
        self.timings: list[tuple[str, float]] = []  # printed by the tests (pytest -s) to keep the budget honest

    def env(self, **extra) -> dict:
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "RDET_NO_EXT", "RDET_NO_JIT")}
        env.update(PATH=f"{self.venv / 'bin'}{os.pathsep}{env.get('PATH', '')}", RDET_HOME=str(self.home))
        env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        env.update(extra)
        return env

    def run(self, *args: str, timeout: float = 600, check: bool = True, **env) -> subprocess.CompletedProcess:
        t0 = time.monotonic()
        proc = subprocess.run(
            list(args), cwd=self.cwd, capture_output=True, text=True, env=self.env(**env), timeout=timeout
        )
        self.timings.append((" ".join(Path(a).name if "/" in a else a for a in args[:3])[:60], time.monotonic() - t0))
        if check:
            assert proc.returncode == 0, f"{args}: exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        return proc

    def python(self, code: str, **kw) -> subprocess.CompletedProcess:
        return self.run(str(self.venv / "bin" / "python"), "-c", code, **kw)

    def rdet(self, *args: str, **kw) -> subprocess.CompletedProcess:
        return self.run(str(self.venv / "bin" / "rdet"), *args, **kw)


def _report(out: str) -> dict:
    return {k: v for k, _, v in (line.partition(" ") for line in out.splitlines() if line[:1].isupper())}


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory, tiny_config):
    import torch

    from rdet.checkpoint import save_checkpoint
    from rdet.models.build import build_model

    torch.manual_seed(0)
    cfg = tiny_config()
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    save_checkpoint(path, build_model(cfg), cfg)
    rng = np.random.default_rng(0)
    scene = path.parent / "scene.png"
    cv2.imwrite(str(scene), rng.integers(0, 255, (300, 400, 3), dtype=np.uint8))
    return path, scene


def check_readme_commands(inst: Installed, ckpt: Path, scene: Path) -> None:
    """Every command of the README, from a folder that is not the checkout."""
    onnx = inst.cwd / "tiny.onnx"
    inst.rdet("export", str(ckpt), "--output", str(onnx), "--imgsz", "128")
    assert onnx.stat().st_size > 10_000
    out = inst.cwd / "pred"
    inst.rdet("predict", str(scene), "--model", str(onnx), "--out", str(out), "--tile", "128", "--overlap", "0")
    assert (out / "scene.json").is_file() and (out / "scene.png").is_file()

    port = free_port()
    serve = subprocess.Popen(
        [str(inst.venv / "bin" / "rdet"), "serve", "--model", str(ckpt), "--port", str(port)],
        cwd=inst.cwd,
        env=inst.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        start = time.monotonic()
        status = wait_for_http(f"http://127.0.0.1:{port}/", serve, 180)
        assert status == 200, f"rdet serve did not answer: exit {serve.poll()}"
        inst.timings.append(("rdet serve (until HTTP 200)", time.monotonic() - start))
    finally:
        serve.terminate()
        try:
            log = serve.communicate(timeout=30)[0]
        except subprocess.TimeoutExpired:
            serve.kill()
            log = serve.communicate()[0]
    assert serve.returncode is not None, log

    bench = inst.rdet("bench", "--quick", "--workdir", str(inst.cwd / "bench"))
    assert "eager" in bench.stdout and "onnx" in bench.stdout
    assert "usage:" in inst.rdet("demo", "--help").stdout
    api = inst.python(
        "import rdet, rdet.config\n"
        "from rdet.export import export_onnx, Runner\n"
        "from rdet.resources import configs_dir, samples_dir\n"
        "name = 'rotated-retinanet-rbox-le90_r50_fpn_kld-stable_1x_dota'\n"
        "print(rdet.config.find_config(name)); print(configs_dir()); print(samples_dir())\n"
        "assert any(samples_dir().iterdir())\n"
    )
    for line in api.stdout.split():
        assert line.startswith(str(inst.venv)), line  # found in the installed package, not the checkout


@pytest.fixture(scope="module")
def builds(tmp_path_factory):
    """Both wheels; the one with the extension compiles in the background meanwhile (the two ~1 min compiles, this
    one and the first-use build of the other wheel's ops, then share the 2 cores instead of running one after
    the other)."""
    noext = WheelBuild(tmp_path_factory.mktemp("wheel_noext"), with_torch=False)
    wheel = noext.wheel()
    ext = WheelBuild(tmp_path_factory.mktemp("wheel_ext"), with_torch=True)
    yield wheel, ext
    if ext.proc.poll() is None:  # a test failed before waiting for it
        ext.proc.kill()
        ext.proc.wait()


def test_wheel_without_extension_compiles_ops_on_first_use(builds, tiny_checkpoint, tmp_path):
    wheel_noext = builds[0]
    names = zipfile.ZipFile(wheel_noext).namelist()
    assert not any(n.startswith("rdet/_C") for n in names)
    assert {f"rdet/ops/csrc/{f}" for f in ("cpu.cpp", "bindings.cpp", "geometry.h", "cuda.cu")} <= set(names)
    home = tmp_path / "home"
    inst = Installed(tmp_path, wheel_noext, home)

    # two processes start together on an empty cache: one compiles (one line on stderr), the other waits
    t0 = time.monotonic()
    procs = [
        subprocess.Popen(
            [str(inst.venv / "bin" / "python"), "-c", OPS_CHECK],
            cwd=inst.cwd,
            env=inst.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    results = [p.communicate(timeout=900) + (p.returncode,) for p in procs]
    compile_s = time.monotonic() - t0
    for _, err, code in results:
        assert code == 0, err[-3000:]
    sources = sorted(_report(out)["SOURCE"] for out, _, _ in results)
    assert sources == ["jit-built", "jit-cache"], results
    compiling = [ln for _, err, _ in results for ln in err.splitlines() if "compiling" in ln]
    assert len(compiling) == 1 and str(home) in compiling[0], compiling
    assert all("SlowOpsWarning" not in err for _, err, _ in results)
    print(f"JIT compile of the CPU ops (beside the other wheel's compile): {compile_s:.0f} s")

    # later processes load the cached build, silently
    again = inst.python(OPS_CHECK)
    assert _report(again.stdout)["SOURCE"] == "jit-cache" and "compiling" not in again.stderr
    assert _report(again.stdout)["PATH"].startswith(str(home))
    assert "compiled CPU ops   yes (JIT cache" in inst.rdet("doctor").stdout

    # (the fallback without a compiler and the opt-outs are tested in tests/test_build.py)
    check_readme_commands(inst, *tiny_checkpoint)
    print("\n".join(f"{t:7.1f} s  {cmd}" for cmd, t in inst.timings))


def test_wheel_built_without_isolation_has_compiled_ops(builds, tiny_checkpoint, tmp_path):
    wheel_ext = builds[1].wheel()
    names = zipfile.ZipFile(wheel_ext).namelist()
    assert any(n.startswith("rdet/_C") and n.endswith((".so", ".pyd")) for n in names)
    assert "rdet/_C_build.json" in names and "rdet/ops/csrc/geometry.h" in names
    inst = Installed(tmp_path, wheel_ext, tmp_path / "home")
    r = _report(inst.python(OPS_CHECK).stdout)
    assert r["RDET"].startswith(str(inst.venv)) and r["SOURCE"] == "installed" and r["COMPILED"] == "True"
    assert r["PATH"].startswith(str(inst.venv))
    doctor = inst.rdet("doctor").stdout
    assert "compiled CPU ops   yes (built at install" in doctor, doctor
    # a command whose NMS runs in the wheel's extension (the whole README list runs on the other wheel: budget)
    ckpt, scene = tiny_checkpoint
    out = inst.cwd / "pred"
    inst.rdet("predict", str(scene), "--model", str(ckpt), "--out", str(out), "--tile", "128", "--overlap", "0")
    assert (out / "scene.json").is_file()
    assert not (tmp_path / "home").exists()  # nothing compiled at run time
    print("\n".join(f"{t:7.1f} s  {cmd}" for cmd, t in inst.timings))
