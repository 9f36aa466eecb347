"""Checkpoints: files that can never run code, atomic writes, the config inside, exact resume.

Reading (:func:`read_checkpoint`) never executes anything: files are opened by :mod:`rdet.safe_load`
(``torch.load(weights_only=True)`` with an exact allow-list for older rdet and MMRotate files, or safetensors);
rdet writes only tensors and plain Python data (the RNG states as tensors and lists). A config stored in a
checkpoint is a dict that is type-checked against the config dataclasses (:func:`check_config_types`) and never
executed.

Writing is atomic (a temp file renamed over the target, removed on any failure); a full disk raises
:class:`DiskFullError` naming the path. :func:`save_weights` writes what serving needs (weights, config, class
names, version), as ``.pt`` or, with the ``weights`` extra, ``.safetensors`` (config in the metadata).
"""

from __future__ import annotations

import errno
import json
import os
import random
import shutil
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

import rdet
from rdet.config import Config, from_dict, to_dict
from rdet.config_schema import check_config_types
from rdet.safe_load import CheckpointError, load_file, one_line

WEIGHTS_FORMAT = "rdet-weights-1"  # the ``format`` entry of a save_weights file


class DiskFullError(OSError, CheckpointError):
    """A checkpoint could not be written because the disk (or quota) is full; names the path (``errno`` ENOSPC)."""

    def __str__(self) -> str:
        return str(self.strerror)


# --------------------------------------------------------------------------------------- writing
def _plain(obj, where: str):
    """``obj`` as tensors and plain Python data (numpy arrays/scalars converted); TypeError naming ``where``."""
    if isinstance(obj, np.generic):  # before float: np.float64 subclasses float but pickles as a numpy scalar
        return obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str, bytes, torch.Tensor, torch.dtype, torch.Size)):
        return obj
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(obj))
    if isinstance(obj, dict):
        out: Any = OrderedDict() if isinstance(obj, OrderedDict) else {}
        for k, v in obj.items():
            out[k] = _plain(v, f"{where}.{k}")
        if hasattr(obj, "_metadata"):  # a state dict's per-module versions (plain dicts of ints)
            out._metadata = _plain(obj._metadata, f"{where}._metadata")
        return out
    if isinstance(obj, (list, tuple)):
        items = [_plain(v, f"{where}[{i}]") for i, v in enumerate(obj)]
        return items if isinstance(obj, list) else tuple(items)
    raise TypeError(
        f"checkpoint entry {where} is a {type(obj).__module__}.{type(obj).__qualname__}; rdet checkpoints hold "
        "only tensors and plain data (loading anything else would need code execution)"
    )


def _open_tmp(tmp: Path):
    return open(tmp, "wb")


def _disk_full(e: BaseException | None) -> bool:
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
            return True
        if "No space left on device" in str(e) or "Disk quota exceeded" in str(e):
            return True
        e = e.__cause__ or e.__context__
    return False


def _atomic_write(path: Path, write: Callable) -> Path:
    """Run ``write(file)`` into ``path.tmp`` then rename it over ``path``; the temp file never survives a failure."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with _open_tmp(tmp) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:  # noqa: BLE001 - also KeyboardInterrupt: never leave a torn .tmp behind
        tmp.unlink(missing_ok=True)
        if isinstance(e, Exception) and _disk_full(e):
            try:
                free = f"{shutil.disk_usage(path.parent).free / 2**20:.0f} MiB free"
            except OSError:
                free = "free space unknown"
            msg = f"{path}: disk full, the checkpoint was not written ({free}); free some space"
            raise DiskFullError(errno.ENOSPC, msg, str(path)) from e
        raise
    return path


def rng_state() -> dict:
    """The torch (CPU and CUDA), numpy and Python RNG states as tensors and lists (loadable with weights_only)."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "bit_generator": name,
            "state": torch.from_numpy(np.asarray(keys).astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "python": [version, list(internal), gauss_next],
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore :func:`rng_state` (also the older layout that pickled ``np.random.get_state()`` as is)."""
    if "torch" in state:
        torch.set_rng_state(state["torch"])
    n = state.get("numpy")
    if isinstance(n, dict):
        keys = n["state"].numpy().astype(np.uint32)
        np.random.set_state((n["bit_generator"], keys, n["pos"], n["has_gauss"], n["cached_gaussian"]))
    elif n is not None:
        np.random.set_state(n)
    if "python" in state:
        version, internal, gauss_next = state["python"]
        random.setstate((version, tuple(internal), gauss_next))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _unwrap(model: nn.Module) -> nn.Module:
    module = getattr(model, "module", model)  # DistributedDataParallel wraps the model
    return module if isinstance(module, nn.Module) else model


def save_checkpoint(
    path: str | Path,
    model: nn.Module,
    config: Config,
    *,
    optimizer=None,
    epoch: int = 0,
    iteration: int = 0,
    extra: dict | None = None,
) -> Path:
    """Write a training checkpoint atomically (temp file + rename: an interruption never leaves a torn file).

    Contents: ``model`` (state dict, MMRotate-compatible keys), ``config`` (dict), ``class_names``,
    ``epoch``/``iteration`` completed, ``optimizer`` state, ``rng`` (:func:`rng_state`), ``rdet_version`` and
    the ``extra`` entries; only tensors and plain data (numpy values are converted, other objects refused).

    Raises:
        DiskFullError: the disk is full (the message names ``path``); nothing is left behind.
        TypeError: an ``extra`` entry is not plain data.
    """
    path = Path(path)
    module = _unwrap(model)
    state = {
        "model": module.state_dict(),
        "config": to_dict(config),
        "class_names": list(getattr(module, "class_names", [])),
        "epoch": epoch,
        "iteration": iteration,
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "rng": rng_state(),
        "rdet_version": rdet.__version__,
        **(extra or {}),
    }
    state = _plain(state, "checkpoint")
    return _atomic_write(path, lambda f: torch.save(state, f))


def save_weights(path: str | Path, model: nn.Module, config: Config, *, format: str | None = None) -> Path:
    """Write a weights-only file for serving: state dict + config + class names + version (no optimizer/RNG).

    Args:
        path: output file; ``.safetensors`` selects that format unless ``format`` is given.
        format: ``'pt'`` (torch zip file) or ``'safetensors'`` (needs ``pip install 'rdet[weights]'``; the
            config, class names and version go into its string metadata as JSON).

    Returns:
        ``path``. Loads with :func:`load_checkpoint` / ``rdet predict --model`` like any checkpoint.
    """
    path = Path(path)
    fmt = format or ("safetensors" if path.suffix.lower() == ".safetensors" else "pt")
    if fmt not in ("pt", "safetensors"):
        raise ValueError(f"format must be 'pt' or 'safetensors', got {format!r}")
    module = _unwrap(model)
    weights = {k: v.detach().cpu() for k, v in module.state_dict().items()}
    names = list(getattr(module, "class_names", []))
    if fmt == "pt":
        state = _plain(
            {
                "format": WEIGHTS_FORMAT,
                "model": weights,
                "config": to_dict(config),
                "class_names": names,
                "rdet_version": rdet.__version__,
            },
            "weights",
        )
        return _atomic_write(path, lambda f: torch.save(state, f))
    try:
        from safetensors.torch import save as st_save
    except ImportError as e:
        raise CheckpointError(f"{path}: writing .safetensors needs the package: pip install 'rdet[weights]'") from e
    metadata = {
        "format": WEIGHTS_FORMAT,
        "rdet_config": json.dumps(to_dict(config)),
        "class_names": json.dumps(names),
        "rdet_version": rdet.__version__,
    }
    # safetensors refuses tensors that share memory; copies are cheap next to a file write
    blob = st_save({k: v.clone().contiguous() for k, v in weights.items()}, metadata=metadata)
    return _atomic_write(path, lambda f: f.write(blob))


# --------------------------------------------------------------------------------------- reading
def model_state(ckpt: dict, path: str | Path = "<checkpoint>") -> dict:
    """The weights of a checkpoint dict: rdet's ``model``, MMRotate's ``state_dict``, or a bare state dict."""
    for key in ("model", "state_dict"):
        if isinstance(ckpt.get(key), dict):
            return ckpt[key]
    if ckpt and all(isinstance(v, torch.Tensor) for v in ckpt.values()):
        return ckpt
    raise CheckpointError(f"{path}: has no weights (no 'model' or 'state_dict' entry); keys: {sorted(ckpt)[:8]}")


def check_weights(state: dict, path: str | Path = "<checkpoint>") -> None:
    """Refuse weights that are not named tensors, or that hold NaN/Inf (a diverged run), naming the tensor."""
    for k, v in state.items():
        if not isinstance(k, str) or not isinstance(v, torch.Tensor):
            raise CheckpointError(f"{path}: weight entry {k!r} is a {type(v).__name__}, not a tensor")
        if v.is_floating_point() or v.is_complex():
            bad = int((~torch.isfinite(v)).sum())
            if bad:
                raise CheckpointError(
                    f"{path}: weight {k!r} holds {bad} non-finite value(s) (NaN/Inf) of {v.numel()}: the file is "
                    "corrupt or its training diverged"
                )


def read_checkpoint(path: str | Path) -> dict:
    """Load a checkpoint dict on CPU without executing anything; its weights are checked (tensors, finite).

    Accepts rdet checkpoints and weights files (``.pt``/``.pth``, ``.safetensors``), older rdet files and MMRotate
    0.x/1.x files (see the module docstring). Returns the dict as stored (a ``.safetensors`` file gives
    ``{'model', 'config', 'class_names', ...}``).

    Raises:
        FileNotFoundError: no such file.
        CheckpointError: unreadable, refused type, not a dict, no weights or non-finite weights (one line, names
            the file).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    ckpt = load_file(path)
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"{path}: not a checkpoint: it holds a {type(ckpt).__name__}, not a dict of weights")
    check_weights(model_state(ckpt, path), path)
    return ckpt


def config_from_checkpoint(ckpt: dict, path: str | Path = "<checkpoint>") -> Config:
    """Rebuild, type-check and validate the config stored in a checkpoint (never executed)."""
    if "config" not in ckpt:
        raise CheckpointError(
            f"{path}: has no 'config' entry; it was not written by rdet (MMRotate checkpoints "
            f"need a config: rdet.load_checkpoint(path, config=...))"
        )
    try:
        check_config_types(Config, ckpt["config"])
        return from_dict(Config, ckpt["config"])  # validated by from_dict
    except (ValueError, TypeError) as e:
        raise CheckpointError(f"{path}: its stored config is invalid: {one_line(e)}") from None


def load_state(model: nn.Module, state: dict, path: str | Path = "<checkpoint>", config_name: str = "") -> None:
    """``model.load_state_dict(state)`` with one-line errors naming the file (and the config the model was built
    from), and the first mismatch."""
    expected = model.state_dict()
    target = f"the model of config {config_name!r}" if config_name else "the model"
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        raise CheckpointError(
            f"{path}: weights do not fit {target}: {len(missing)} missing {missing[:3]}, "
            f"{len(unexpected)} unexpected {unexpected[:3]}"
        )
    wrong = [k for k, v in expected.items() if tuple(state[k].shape) != tuple(v.shape)]
    if wrong:
        k = wrong[0]
        raise CheckpointError(
            f"{path}: weight {k!r} has shape {list(state[k].shape)} but {target} expects "
            f"{list(expected[k].shape)} ({len(wrong)} tensor(s) differ; another config?)"
        )
    model.load_state_dict(state, strict=True)


def load_checkpoint(
    path: str | Path,
    config: Config | str | Path | None = None,
    device: str = "cpu",
    mmrotate_version: str | None = None,
) -> nn.Module:
    """Build the model stored in a checkpoint and load its weights (eval mode). Never executes file content.

    Args:
        path: an rdet checkpoint or weights file (``.pt``, ``.safetensors``); an MMRotate one (0.x or 1.x,
            ``state_dict`` + ``meta``) together with ``config``; or the name of a published model (``rdet zoo``
            lists them), downloaded once into the cache and built with its own config.
        config: overrides the stored config (a Config or a config file path).
        mmrotate_version: MMRotate files: ``'0.x'``/``'1.x'``, the anchors the weights were trained with
            (``model.anchors.mmrotate_version``); default: the metadata's (refused if it does not say).

    Raises:
        FileNotFoundError, CheckpointError (one line naming the file: unreadable, refused, wrong shapes,
        non-finite weights, invalid stored config).
    """
    from rdet import mmrotate
    from rdet.config import load_config
    from rdet.models.build import build_model

    if not Path(path).exists():
        from rdet import zoo

        if zoo.is_name(path):  # a published model: its cached file and its config
            name = str(path)
            path = zoo.resolve(name)
            config = zoo.config(name) if config is None else config
            mmrotate_version = mmrotate_version or zoo.get(name).mmrotate
    ckpt = read_checkpoint(path)
    if config is None:
        cfg = config_from_checkpoint(ckpt, path)
    else:
        cfg = config if isinstance(config, Config) else load_config(config)
    cfg.model.backbone.weights = None  # the checkpoint holds the backbone too
    state = model_state(ckpt, path)
    if mmrotate.is_mmrotate_checkpoint(ckpt):  # MMRotate 0.x/1.x names, float16 -> float32; classes, anchors
        try:
            state = mmrotate.import_checkpoint(ckpt, cfg, mmrotate_version)
        except ValueError as e:
            raise CheckpointError(f"{path}: {e}") from None
    model = build_model(cfg)
    load_state(model, state, path, cfg.name)
    model.config = cfg
    return model.to(device).eval()
