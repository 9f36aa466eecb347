"""The Runner's input checks (issue 18.6) and loading the TensorRT plugin library once per process."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest
import torch

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")


from rdet.export import runtime
from rdet.export.onnx_export import export_onnx
from rdet.export.runtime import Runner, load_plugin_library, to_nchw
from rdet.models.build import build_model

SIZE = (64, 64)


# ------------------------------------------------------------------------------------- input checks
@pytest.mark.parametrize("dtype", ["uint8", "float32"])
def test_bad_pixel_values_are_refused(dtype):
    img = np.full((1, 3, *SIZE), 100.0, np.float32)
    nan = img.copy()
    nan[0, 1, 5, 5] = np.nan
    with pytest.raises(ValueError, match="1 NaN or Inf"):
        to_nchw(nan, SIZE, dtype)
    inf = img.copy()
    inf[0, 0, 0, :3] = np.inf
    with pytest.raises(ValueError, match="3 NaN or Inf"):
        to_nchw(inf, SIZE, dtype)
    with pytest.raises(ValueError, match="look scaled to 0-1.*multiply by 255"):
        to_nchw(np.random.default_rng(0).random((2, *SIZE, 3)), SIZE, dtype)  # 0-1 floats, HWC
    for bad, shown in ((img * 3, "300"), (img - 101, "-1")):
        with pytest.raises(ValueError, match=f"pixel values in 0-255, got values from .*{shown}"):
            to_nchw(bad, SIZE, dtype)
    with pytest.raises(ValueError, match="dtype bool"):
        to_nchw(np.ones((1, 3, *SIZE), bool), SIZE, dtype)
    with pytest.raises(ValueError, match=r"out-of-range|0-255"):
        to_nchw(np.full((1, 3, *SIZE), 256, np.int32), SIZE, dtype)


def test_good_pixel_values_convert_explicitly():
    img = np.full((1, 3, *SIZE), 127.6, np.float64)
    img[0, 0, 0, 0] = 0.4
    as_u8 = to_nchw(img, SIZE, "uint8")
    assert as_u8.dtype == np.uint8 and as_u8[0, 0, 0, 1] == 128 and as_u8[0, 0, 0, 0] == 0  # rounded
    as_f32 = to_nchw(img, SIZE, "float32")
    assert as_f32.dtype == np.float32 and as_f32[0, 0, 0, 1] == np.float32(127.6)  # unchanged
    assert to_nchw(np.zeros((3, *SIZE), np.float32), SIZE, "uint8").shape == (1, 3, *SIZE)  # black is fine
    ints = to_nchw(torch.full((2, *SIZE, 3), 255, dtype=torch.int64), SIZE, "uint8")
    assert ints.shape == (2, 3, *SIZE) and int(ints.max()) == 255
    assert to_nchw(np.zeros((0, 3, *SIZE), np.uint8), SIZE, "uint8").shape == (0, 3, *SIZE)


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory, tiny_config):
    torch.manual_seed(0)
    model = build_model(tiny_config(("plane", "ship"))).eval()
    return export_onnx(model, tmp_path_factory.mktemp("onnx") / "tiny.onnx", nms="onnx", dynamic_batch=True, imgsz=64)


def test_runner_empty_batch_and_checked_inputs(tiny_onnx):
    runner = Runner(tiny_onnx)
    assert runner.run(np.zeros((0, 3, *SIZE), np.uint8)) == []
    assert runner.run(np.zeros((0, *SIZE, 3), np.float32)) == []
    assert len(runner.run(np.zeros((2, 3, *SIZE), np.uint8))) == 2
    with pytest.raises(ValueError, match="NaN"):
        runner.run(np.full((1, 3, *SIZE), np.nan, np.float32))
    with pytest.raises(ValueError, match="scaled to 0-1"):
        runner.run(np.full((1, 3, *SIZE), 0.5, np.float32))


# ---------------------------------------------------------------------------- plugin library, once
class FakeRegistry:
    """TensorRT's plugin registry as the runtime sees it: a second registration of the creator fails."""

    def __init__(self, registered: bool = False, registers_on_dlopen: bool = False):
        self.creators: set[tuple[str, str, str]] = {("RotatedNMS", "1", "rdet")} if registered else set()
        self.loads: list[str] = []

    def get_creator(self, name, version, namespace):
        return object() if (name, version, namespace) in self.creators else None

    def load_library(self, path):
        self.loads.append(path)
        if ("RotatedNMS", "1", "rdet") in self.creators:
            return None  # "fails if any of the plugins are already registered"
        self.creators.add(("RotatedNMS", "1", "rdet"))
        return object()


class FakeTensorRT:
    __version__ = "10.fake"

    def __init__(self, registry: FakeRegistry):
        self.registry = registry

    def get_plugin_registry(self):
        return self.registry


@pytest.fixture
def shared_library(tmp_path, monkeypatch):
    """A real shared library with no TensorRT in it (dlopen must succeed), and a fresh load cache."""
    cxx = shutil.which("g++") or shutil.which("c++")
    if cxx is None:
        pytest.skip("no C++ compiler to build a shared library")
    (tmp_path / "lib.cpp").write_text('extern "C" int rdet_test_symbol() { return 1; }\n')
    lib = tmp_path / "libfake_plugin.so"
    proc = subprocess.run([cxx, "-shared", "-fPIC", str(tmp_path / "lib.cpp"), "-o", str(lib)], capture_output=True)
    assert proc.returncode == 0, proc.stderr
    monkeypatch.setattr(runtime, "_LOADED_PLUGINS", {})
    return lib


def test_plugin_library_is_loaded_once_per_process(shared_library, tmp_path):
    trt = FakeTensorRT(FakeRegistry())
    assert load_plugin_library(trt, shared_library) == "load_library"
    assert load_plugin_library(trt, shared_library) == "load_library"  # cached: TensorRT is not asked again
    assert load_plugin_library(trt, str(shared_library)) == "load_library"
    assert trt.registry.loads == [str(shared_library.resolve())]
    copy = tmp_path / "copy" / shared_library.name  # another copy of the library: the creator exists already
    copy.parent.mkdir()
    shutil.copy(shared_library, copy)
    assert load_plugin_library(trt, copy) == "already registered"
    assert trt.registry.loads == [str(shared_library.resolve())]
    assert load_plugin_library(trt, None) is None


def test_plugin_library_already_registered_is_not_loaded_again(shared_library):
    trt = FakeTensorRT(FakeRegistry(registered=True))  # e.g. LD_PRELOAD, or Triton's plugins=
    assert load_plugin_library(trt, shared_library) == "already registered"
    assert trt.registry.loads == []


def test_plugin_library_errors(shared_library, tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="plugin library not found"):
        load_plugin_library(FakeTensorRT(FakeRegistry()), tmp_path / "missing.so")
    (tmp_path / "not_a_library.so").write_text("text")
    with pytest.raises(RuntimeError, match="cannot load the plugin library"):
        load_plugin_library(FakeTensorRT(FakeRegistry()), tmp_path / "not_a_library.so")
    registry = FakeRegistry()
    monkeypatch.setattr(registry, "load_library", lambda path: None)  # a library without our creator
    with pytest.raises(RuntimeError, match="could not register the RotatedNMS plugin"):
        load_plugin_library(FakeTensorRT(registry), shared_library)
