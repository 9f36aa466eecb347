"""Fuzz target: checkpoint files, garbled, hostile or ill-typed, through ``read_checkpoint`` and the stored config.

Inputs: a valid small checkpoint with bytes flipped or cut off; pickles whose objects would call a function when
unpickled (``os.system``, ``eval``, numpy/torch functions, ``getattr`` tricks); well-formed files with non-dict
content, non-tensor or non-finite weights, or a config field replaced by a value of another type. A file must
load with finite weights and a valid config, or fail with a ``CheckpointError``/``FileNotFoundError`` naming it;
a function named in the file must never run (a marker file would appear).
"""

from __future__ import annotations

import atexit
import io
import operator
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch
from hypothesis import strategies as st

from rdet.checkpoint import config_from_checkpoint, model_state, read_checkpoint
from rdet.config import Config, to_dict

from .registry import SilentlyWrong, target

_TMP = Path(tempfile.mkdtemp(prefix="rdet_fuzz_ckpt_"))
atexit.register(shutil.rmtree, _TMP, ignore_errors=True)
MARKER = _TMP / "MARKER"
NAME = "fuzz-ckpt.pt"


def _valid() -> dict:
    g = torch.Generator().manual_seed(0)
    return {"model": {"conv.weight": torch.randn(4, 3, 3, 3, generator=g), "conv.bias": torch.zeros(4)},
            "config": to_dict(Config()), "class_names": ["a", "b"], "epoch": 1}  # fmt: skip


def _save(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


VALID = _save(_valid())


class Call:
    """Unpickling it calls ``func(*args)``: what a crafted checkpoint does."""

    def __init__(self, func, args):
        self.func, self.args = func, args

    def __reduce__(self):
        return (self.func, self.args)


_TOUCH = f"open({str(MARKER)!r}, 'w').close()"
HOSTILE = [
    (os.system, (f"touch {MARKER}",)),
    (eval, (_TOUCH,)),
    (exec, (_TOUCH,)),
    (getattr, (np.ndarray, "tofile")),
    (getattr, (np.zeros(1), "tofile")),
    (operator.attrgetter("tofile"), (np.zeros(1),)),
    (np.save, (str(MARKER), np.zeros(1))),
    (torch.save, ({}, str(MARKER))),
    (open, (str(MARKER), "w")),
    (np.dtype, ("O",)),
    (np.ndarray, ((2,),)),
]
# values a stored config field may hold in a crafted file
ODD = st.one_of(
    st.sampled_from(["high", "", None, [], {}, [1, "x"], True, float("nan"), float("inf"), -1, 10**30]),
    st.floats(allow_nan=True),
    st.integers(),
    st.text(max_size=5),
    st.lists(st.integers(), max_size=4),
)


def _config_paths(d: dict, prefix=()) -> list[tuple]:
    out = []
    for k, v in d.items():
        out.append((*prefix, k))
        if isinstance(v, dict):
            out += _config_paths(v, (*prefix, k))
    return out


CONFIG_PATHS = _config_paths(to_dict(Config()))


@st.composite
def checkpoint_bytes(draw) -> bytes:
    kind = draw(st.sampled_from(["flip", "cut", "hostile", "shape", "config"]))
    if kind == "flip":
        data = bytearray(VALID)
        for _ in range(draw(st.integers(1, 8))):
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
        return bytes(data)
    if kind == "cut":
        return VALID[: draw(st.integers(0, len(VALID) - 1))]
    state = _valid()
    if kind == "hostile":
        func, args = draw(st.sampled_from(HOSTILE))
        where = draw(st.sampled_from(["top", "model", "config", "nested"]))
        evil = Call(func, args)
        if where == "top":
            state = evil
        elif where == "model":
            state["model"]["conv.bias"] = evil
        elif where == "config":
            state["config"]["model"] = evil
        else:
            state["extra"] = {"a": [1, (2, evil)]}
        return _save(state)
    if kind == "shape":
        choice = draw(st.sampled_from(["list", "tensor", "int-weight", "nan", "inf", "no-model", "str-key"]))
        if choice == "list":
            return _save([state])
        if choice == "tensor":
            return _save(torch.zeros(3))
        if choice == "int-weight":
            state["model"]["conv.bias"] = 3
        elif choice in ("nan", "inf"):
            state["model"]["conv.weight"][0, 0, 0, 0] = float(choice)
        elif choice == "no-model":
            del state["model"]
        else:
            state["model"][7] = torch.zeros(1)
        return _save(state)
    path = draw(st.sampled_from(CONFIG_PATHS))
    node = state["config"]
    for k in path[:-1]:
        node = node[k]
    node[path[-1]] = draw(ODD)
    return _save(state)


@target("checkpoints: read_checkpoint + stored config", checkpoint_bytes(), where=lambda ex: [NAME])
def checkpoint(data: bytes) -> None:
    path = _TMP / NAME
    path.write_bytes(data)
    MARKER.unlink(missing_ok=True)
    try:
        ckpt = read_checkpoint(path)
        state = model_state(ckpt, path)
        for k, v in state.items():
            if not isinstance(v, torch.Tensor) or (v.is_floating_point() and not torch.isfinite(v).all()):
                raise SilentlyWrong(f"weight {k!r} accepted: {type(v).__name__}")
        if "config" in ckpt:
            cfg = config_from_checkpoint(ckpt, path)
            if not isinstance(cfg, Config):
                raise SilentlyWrong(f"config_from_checkpoint returned {type(cfg).__name__}")
    finally:
        if MARKER.exists():
            raise SilentlyWrong("a function named in the checkpoint ran (the marker file exists)")
