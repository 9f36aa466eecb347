"""Checkpoints: nothing in a file can run code; older rdet and MMRotate/MMEngine files still load; atomic writes;
one-line errors naming the file (not a dict, wrong shapes, non-finite weights, ill-typed stored config)."""

import errno
import os
import pickle
import random
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

import rdet
from rdet import checkpoint as ck
from rdet import safe_load
from rdet.checkpoint import (
    CheckpointError,
    DiskFullError,
    load_checkpoint,
    read_checkpoint,
    save_checkpoint,
    save_weights,
)
from rdet.config import Config, to_dict
from rdet.config_schema import check_config_types
from rdet.models.build import build_model


@pytest.fixture(scope="module")
def tiny(tiny_config):
    torch.manual_seed(0)
    cfg = tiny_config()
    return build_model(cfg).eval(), cfg


def _outputs(model):
    torch.manual_seed(1)
    x = torch.rand(1, 3, 64, 64) * 255
    with torch.no_grad():
        return model.decode(x) if hasattr(model, "decode") else model(x)


def _same(a, b):
    fa, fb = torch.utils._pytree.tree_flatten(a)[0], torch.utils._pytree.tree_flatten(b)[0]
    return len(fa) == len(fb) and all(torch.equal(x, y) for x, y in zip(fa, fb) if isinstance(x, torch.Tensor))


class Evil:
    """Unpickling it would run ``touch marker`` (os.system) or write the marker (builtins.exec)."""

    def __init__(self, marker, how="system"):
        self.marker, self.how = str(marker), how

    def __reduce__(self):
        if self.how == "system":
            return (os.system, (f"touch {self.marker}",))
        return (exec, (f"open({self.marker!r}, 'w').write('pwned')",))


def evil_checkpoint(path, marker, how="system", model=None, cfg=None):
    """A real-looking rdet checkpoint with one poisoned entry."""
    state = {"model": model.state_dict() if model is not None else {}, "config": to_dict(cfg or Config())}
    state["extra"] = Evil(marker, how)
    torch.save(state, path)
    return path


# ------------------------------------------------------------------------------------ round trips
def test_checkpoint_holds_only_plain_data(tmp_path, tiny):
    model, cfg = tiny
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    p = save_checkpoint(tmp_path / "a.pt", model, cfg, optimizer=opt, epoch=2, iteration=7, extra={"m": np.float64(1)})
    assert torch.serialization.get_unsafe_globals_in_checkpoint(p) == []  # nothing beyond torch's own allow-list
    c = read_checkpoint(p)
    assert c["epoch"] == 2 and c["iteration"] == 7 and c["m"] == 1.0 and type(c["m"]) is float
    assert c["rdet_version"] == rdet.__version__
    assert not (tmp_path / "a.pt.tmp").exists()
    assert _same(_outputs(load_checkpoint(p)), _outputs(model))


def test_rng_state_round_trip(tmp_path, tiny):
    model, cfg = tiny
    p = save_checkpoint(tmp_path / "r.pt", model, cfg)
    want = (torch.rand(3), np.random.rand(3), random.random())
    ck.set_rng_state(read_checkpoint(p)["rng"])
    got = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(want[0], got[0]) and np.array_equal(want[1], got[1]) and want[2] == got[2]


def test_extra_entries_must_be_plain(tmp_path, tiny):
    model, cfg = tiny
    with pytest.raises(TypeError, match=r"checkpoint.bad is a .*Evil"):
        save_checkpoint(tmp_path / "x.pt", model, cfg, extra={"bad": Evil(tmp_path / "m")})
    assert list(tmp_path.iterdir()) == []


def test_checkpoint_written_before_this_format_still_loads(tmp_path, tiny):
    """Older rdet files pickled np.random.get_state(): exactly numpy's array types are allowed for them."""
    model, cfg = tiny
    old = {
        "model": model.state_dict(),
        "config": to_dict(cfg),
        "class_names": ["plane", "ship"],
        "epoch": 1,
        "iteration": 3,
        "optimizer": None,
        "rng": {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()},
        "rdet_version": "0.1.0",
    }
    torch.save(old, tmp_path / "old.pt")
    allowed_before = set(torch.serialization.get_safe_globals())
    needed = torch.serialization.get_unsafe_globals_in_checkpoint(tmp_path / "old.pt")
    assert needed and set(needed) <= set(safe_load.RDET_LEGACY_GLOBALS)
    with pytest.raises(pickle.UnpicklingError):  # plain weights_only refuses it ...
        torch.load(tmp_path / "old.pt", weights_only=True)
    c = read_checkpoint(tmp_path / "old.pt")  # ... rdet allows just those names
    assert c["rng"]["numpy"][0] == "MT19937" and c["rng"]["numpy"][1].dtype == np.uint32
    want = np.random.rand(2)
    ck.set_rng_state(c["rng"])
    assert np.array_equal(np.random.rand(2), want)
    assert _same(_outputs(load_checkpoint(tmp_path / "old.pt")), _outputs(model))
    assert set(torch.serialization.get_safe_globals()) == allowed_before  # the allowance does not outlive the call


# ----------------------------------------------------------------------------------- malicious
@pytest.mark.parametrize("how", ["system", "exec"])
def test_malicious_pickle_runs_nothing(tmp_path, tiny, how):
    model, cfg = tiny
    marker = tmp_path / "PWNED"
    p = evil_checkpoint(tmp_path / "evil.pt", marker, how, model, cfg)
    for load in (read_checkpoint, load_checkpoint, rdet.load_checkpoint):
        with pytest.raises(CheckpointError) as e:
            load(p)
        msg = str(e.value)
        assert str(p) in msg and "\n" not in msg
        assert ("system" if how == "system" else "builtins.exec") in msg
    assert not marker.exists()


def test_allowed_names_cannot_be_abused(tmp_path):
    """builtins.getattr is allowed only as MMEngine's HistoryBuffer method lookup; object arrays cannot smuggle."""
    marker = tmp_path / "PWNED"

    class GetattrAbuse:
        def __reduce__(self):  # getattr(ndarray, 'tofile') would be a step towards writing files
            return (getattr, (np.ndarray, "tofile"))

    torch.save({"model": {}, "x": GetattrAbuse()}, tmp_path / "g.pt")
    with pytest.raises(CheckpointError, match="g.pt"):
        read_checkpoint(tmp_path / "g.pt")
    arr = np.array([Evil(marker)], dtype=object)
    torch.save({"model": {}, "x": arr}, tmp_path / "o.pt")
    with pytest.raises(CheckpointError, match="o.pt.*system"):
        read_checkpoint(tmp_path / "o.pt")
    assert not marker.exists()


# ----------------------------------------------------------------------------- MMRotate files
FAKE_HISTORY_BUFFER = """
import numpy as np


class HistoryBuffer:  # the pickled layout of mmengine.logging.history_buffer.HistoryBuffer
    _statistics_methods: dict = dict()

    def __init__(self, log_history=(), count_history=(), max_length=1000000):
        self.max_length = max_length
        self._statistics_methods.setdefault("min", HistoryBuffer.min)
        self._statistics_methods.setdefault("mean", HistoryBuffer.mean)
        self._log_history = np.array(log_history)
        self._count_history = np.array(count_history)

    def min(self):
        return self._log_history.min()

    def mean(self):
        return self._log_history.mean()

    def __getstate__(self):
        self.__dict__.update(statistics_methods=self._statistics_methods)
        return self.__dict__
"""

WRITE_MMROTATE = """
import sys, torch, numpy as np
from collections import OrderedDict
from mmengine.logging.history_buffer import HistoryBuffer
sd = OrderedDict([("backbone.conv1.weight", torch.ones(4, 3, 3, 3)), ("bbox_head.retina_cls.bias", torch.zeros(15))])
opt = {"state": {0: {"momentum_buffer": torch.zeros(4, 3, 3, 3)}}, "param_groups": [{"lr": 0.0025, "params": [0]}]}
v1 = {
    "meta": {"epoch": 12, "iter": 38400, "cfg": "model = dict(type='RotatedRetinaNet')", "seed": 42,
             "experiment_name": "x", "time": "20230101_000000", "mmengine_version": "0.7.4",
             "dataset_meta": {"classes": ("plane", "ship"), "palette": [(165, 42, 42), (189, 183, 107)]}},
    "state_dict": sd,
    "message_hub": {
        "log_scalars": OrderedDict([("train/loss", HistoryBuffer([1.5, 1.2], [1, 1])),
                                    ("train/lr", HistoryBuffer([0.0025], [1]))]),
        "runtime_info": OrderedDict([("epoch", 12), ("iter", 38400), ("dota/mAP", np.float64(0.7)),
                                     ("dataset_meta", {"classes": ("plane", "ship")})]),
        "resumed_keys": OrderedDict([("train/loss", True), ("epoch", True)]),
    },
    "optimizer": opt,
    "param_schedulers": [{"base_lrs": [0.0025], "last_epoch": 12}],
}
torch.save(v1, sys.argv[1] + "/mmrotate_1x.pth")
v0 = {
    "meta": {"mmcv_version": "1.6.0", "time": "Sat Jan  1 00:00:00 2022", "config": "model = dict()",
             "seed": np.int64(42), "exp_name": "x.py", "epoch": 12, "iter": 38400,
             "CLASSES": ("plane", "ship"), "hook_msgs": {"last_ckpt": "work_dirs/epoch_12.pth",
                                                        "best_score": np.float32(0.71)}},
    "state_dict": sd,
    "optimizer": opt,
}
torch.save(v0, sys.argv[1] + "/mmrotate_0x.pth")
"""


@pytest.fixture(scope="module")
def mmrotate_files(tmp_path_factory):
    """Checkpoints pickled exactly as MMRotate 0.x (MMCV runner) and 1.x (MMEngine runner) write them; the
    writer sees a stand-in ``mmengine`` package with HistoryBuffer's pickled layout, the reader none."""
    root = tmp_path_factory.mktemp("mm")
    pkg = root / "fake" / "mmengine" / "logging"
    pkg.mkdir(parents=True)
    (root / "fake" / "mmengine" / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "history_buffer.py").write_text(FAKE_HISTORY_BUFFER)
    env = {**os.environ, "PYTHONPATH": str(root / "fake")}
    subprocess.run([sys.executable, "-c", WRITE_MMROTATE, str(root)], check=True, env=env)
    return root


def test_mmrotate_1x_checkpoint_loads_without_mmengine(mmrotate_files):
    p = mmrotate_files / "mmrotate_1x.pth"
    names = set(torch.serialization.get_unsafe_globals_in_checkpoint(p))
    assert "mmengine.logging.history_buffer.HistoryBuffer" in names and "builtins.getattr" in names
    c = read_checkpoint(p)
    assert "mmengine" not in sys.modules
    assert torch.equal(c["state_dict"]["backbone.conv1.weight"], torch.ones(4, 3, 3, 3))
    assert c["meta"]["dataset_meta"]["classes"] == ("plane", "ship")
    buf = c["message_hub"]["log_scalars"]["train/loss"]
    assert isinstance(buf, safe_load._HistoryBuffer) and buf._log_history.tolist() == [1.5, 1.2]
    assert buf.statistics_methods["min"] == "HistoryBuffer.min"  # a string, not a callable
    assert c["message_hub"]["runtime_info"]["dota/mAP"] == pytest.approx(0.7)
    assert ck.model_state(c, p) is c["state_dict"]


def test_mmrotate_0x_checkpoint_loads(mmrotate_files):
    c = read_checkpoint(mmrotate_files / "mmrotate_0x.pth")
    assert c["meta"]["CLASSES"] == ("plane", "ship") and int(c["meta"]["seed"]) == 42
    assert set(c["state_dict"]) == {"backbone.conv1.weight", "bbox_head.retina_cls.bias"}


# ----------------------------------------------------------------------------- bad checkpoints
@pytest.mark.parametrize(
    "content,match",
    [
        (torch.zeros(3), "holds a Tensor, not a dict"),
        ([1, 2], "holds a list, not a dict"),
        ({"epoch": 3}, "has no weights"),
        ({"model": {"w": 3}}, "weight entry 'w' is a int"),
    ],
)
def test_not_a_checkpoint_is_one_line(tmp_path, content, match):
    torch.save(content, tmp_path / "c.pt")
    with pytest.raises(CheckpointError, match=match) as e:
        read_checkpoint(tmp_path / "c.pt")
    assert str(tmp_path / "c.pt") in str(e.value) and "\n" not in str(e.value)


def test_unreadable_files_are_one_line(tmp_path, tiny):
    model, cfg = tiny
    png = tmp_path / "image.pt"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    good = save_checkpoint(tmp_path / "good.pt", model, cfg)
    cut = tmp_path / "cut.pt"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    for p in (png, cut):
        with pytest.raises(CheckpointError, match="not a readable PyTorch checkpoint") as e:
            read_checkpoint(p)
        assert str(p) in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        read_checkpoint(tmp_path / "missing.pt")


def test_wrong_shape_names_the_file_and_tensor(tmp_path, tiny):
    model, cfg = tiny
    state = {k: v.clone() for k, v in model.state_dict().items()}
    key = next(k for k in state if k.endswith("cls.weight"))
    state[key] = torch.zeros(7, *state[key].shape[1:])
    torch.save({"model": state, "config": to_dict(cfg)}, tmp_path / "shape.pt")
    with pytest.raises(CheckpointError, match=rf"shape.pt: weight '{key}' has shape \[7,") as e:
        load_checkpoint(tmp_path / "shape.pt")
    assert "\n" not in str(e.value)
    del state[key]
    torch.save({"model": state, "config": to_dict(cfg)}, tmp_path / "missing.pt")
    with pytest.raises(CheckpointError, match="missing.pt: weights do not fit the model of config .*: 1 missing"):
        load_checkpoint(tmp_path / "missing.pt")


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_weights_are_refused(tmp_path, tiny, value):
    model, cfg = tiny
    state = {k: v.clone() for k, v in model.state_dict().items()}
    key = next(k for k in state if k.endswith("reg.bias"))
    state[key].fill_(value)
    torch.save({"model": state, "config": to_dict(cfg)}, tmp_path / "nan.pt")
    with pytest.raises(CheckpointError, match=rf"nan.pt: weight '{key}' holds \d+ non-finite"):
        load_checkpoint(tmp_path / "nan.pt")


@pytest.mark.parametrize(
    "field,value,match",
    [
        (("model", "test", "score_thr"), "high", r"model.test.score_thr: expected float, got 'high'"),
        (("model", "test", "score_thr"), float("nan"), r"model.test.score_thr: expected float"),
        (("model", "backbone", "depth"), 18.5, r"model.backbone.depth: expected int"),
        (("model", "head", "reg_decoded_bbox"), 1, r"model.head.reg_decoded_bbox: expected bool, got 1"),
        (("data", "img_size"), [64], r"data.img_size: expected 2 values"),
        (("model", "anchors", "strides"), [8, "16"], r"model.anchors.strides\[1\]: expected int"),
        (("model", "head"), "x", r"model.head: expected a mapping"),
        (("distill",), 3, r"distill: expected DistillConfig \| None"),
    ],
)
def test_stored_config_of_the_wrong_type_is_refused(tmp_path, tiny, field, value, match):
    model, cfg = tiny
    d = to_dict(cfg)
    node = d
    for k in field[:-1]:
        node = node[k]
    node[field[-1]] = value
    torch.save({"model": model.state_dict(), "config": d}, tmp_path / "cfg.pt")
    with pytest.raises(CheckpointError, match="cfg.pt: its stored config is invalid: config field " + match) as e:
        load_checkpoint(tmp_path / "cfg.pt")
    assert "\n" not in str(e.value)


def test_config_type_check_accepts_every_shipped_config():
    from rdet.config import config_names, load_config

    for path in config_names().values():
        check_config_types(Config, to_dict(load_config(path)))


# ------------------------------------------------------------------------------------ writing
class FullDisk:
    """A file that accepts ``room`` bytes, then fails like a full disk."""

    def __init__(self, path, room):
        self.f, self.room = open(path, "wb"), room

    def write(self, b):
        if self.room < len(b):
            raise OSError(errno.ENOSPC, "No space left on device")
        self.room -= len(b)
        return self.f.write(b)

    def __getattr__(self, name):
        return getattr(self.f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()


@pytest.mark.parametrize("room", [0, 5000])
def test_full_disk_says_so_and_leaves_nothing(tmp_path, tiny, monkeypatch, room):
    model, cfg = tiny
    target = save_checkpoint(tmp_path / "last.pt", model, cfg, iteration=1)
    before = target.read_bytes()
    monkeypatch.setattr(ck, "_open_tmp", lambda tmp: FullDisk(tmp, room))
    with pytest.raises(DiskFullError, match=r"last.pt: disk full") as e:
        save_checkpoint(target, model, cfg, iteration=2)
    assert e.value.errno == errno.ENOSPC and isinstance(e.value, ValueError) and isinstance(e.value, OSError)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"] and target.read_bytes() == before


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_full_disk_through_torch_save(tmp_path, tiny, monkeypatch):
    """torch.save itself reports a full disk as 'unexpected pos'; the error must still say disk full."""
    model, cfg = tiny
    monkeypatch.setattr(ck, "_open_tmp", lambda tmp: open("/dev/full", "wb"))
    with pytest.raises(DiskFullError, match="disk full"):
        save_weights(tmp_path / "w.pt", model, cfg)


def test_interrupted_write_leaves_the_old_file(tmp_path, tiny, monkeypatch):
    model, cfg = tiny
    target = save_checkpoint(tmp_path / "last.pt", model, cfg, iteration=1)

    def interrupt(obj, f):
        f.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(ck.torch, "save", interrupt)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(target, model, cfg, iteration=2)
    monkeypatch.undo()
    assert read_checkpoint(target)["iteration"] == 1
    assert not (tmp_path / "last.pt.tmp").exists()


def test_save_weights_is_weights_only(tmp_path, tiny):
    model, cfg = tiny
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for p in model.parameters():
        opt.state[p]["momentum_buffer"] = torch.zeros_like(p)
    full = save_checkpoint(tmp_path / "full.pt", model, cfg, optimizer=opt)
    w = save_weights(tmp_path / "model.pt", model, cfg)
    c = read_checkpoint(w)
    assert set(c) == {"format", "model", "config", "class_names", "rdet_version"}
    assert w.stat().st_size < 0.6 * full.stat().st_size
    assert _same(_outputs(load_checkpoint(w)), _outputs(model))


def test_safetensors_weights_round_trip(tmp_path, tiny):
    pytest.importorskip("safetensors")
    model, cfg = tiny
    w = save_weights(tmp_path / "model.safetensors", model, cfg)
    assert w.read_bytes()[8:9] == b"{"
    c = read_checkpoint(w)
    assert to_dict(ck.config_from_checkpoint(c, w)) == to_dict(cfg)  # the config travels in the metadata
    assert _same(_outputs(load_checkpoint(w)), _outputs(model))
    # a renamed file is recognised by content, not by its suffix
    (tmp_path / "renamed.pt").write_bytes(w.read_bytes())
    assert _same(_outputs(load_checkpoint(tmp_path / "renamed.pt")), _outputs(model))


def test_safetensors_without_the_package_names_the_fix(tmp_path, tiny, monkeypatch):
    model, cfg = tiny
    monkeypatch.setitem(sys.modules, "safetensors", None)
    monkeypatch.setitem(sys.modules, "safetensors.torch", None)
    with pytest.raises(CheckpointError, match=r"pip install 'rdet\[weights\]'"):
        save_weights(tmp_path / "m.safetensors", model, cfg)
    header = b'{"__metadata__":{}}'
    (tmp_path / "x.safetensors").write_bytes(len(header).to_bytes(8, "little") + header)
    with pytest.raises(CheckpointError, match=r"x.safetensors: reading .safetensors needs"):
        read_checkpoint(tmp_path / "x.safetensors")


def test_no_torch_load_without_weights_only_anywhere():
    """Every torch.load in the repository passes weights_only=True (library, export, tests, benchmarks)."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    offenders = []
    for f in root.rglob("*.py"):
        if any(part in {".venv", "build", ".git"} for part in f.relative_to(root).parts):
            continue
        for i, line in enumerate(f.read_text().splitlines(), 1):
            if "torch.load(" in line and "weights_only=True" not in line and "torch.load(..." not in line:
                offenders.append(f"{f.relative_to(root)}:{i}: {line.strip()}")
    assert offenders == [], textwrap.indent("\n".join(offenders), "  ")
