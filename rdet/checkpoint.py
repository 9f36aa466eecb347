"""Checkpoints: atomic writes, the config inside, exact resume, and loading a model from a file."""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch
from torch import nn

import rdet
from rdet.config import Config, from_dict, to_dict


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
    """Write a checkpoint atomically (temp file + rename: an interruption never leaves a torn file).

    Contents: ``model`` (state dict, MMRotate-compatible keys), ``config`` (dict), ``class_names``,
    ``epoch``/``iteration`` completed, ``optimizer`` state, RNG states, ``rdet_version``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    module: nn.Module = getattr(model, "module", model)  # unwrap DistributedDataParallel
    state = {
        "model": module.state_dict(),
        "config": to_dict(config),
        "class_names": list(getattr(module, "class_names", [])),
        "epoch": epoch,
        "iteration": iteration,
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "rng": {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()},
        "rdet_version": rdet.__version__,
        **(extra or {}),
    }
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)
    return path


def save_weights(path: str | Path, model: nn.Module, config: Config) -> Path:
    """Write a weights-only file for serving (state dict, config, class names, version; no optimizer or RNG
    state), atomically. ``rdet.load_checkpoint`` reads it like a full checkpoint."""
    path = Path(path)
    module: nn.Module = getattr(model, "module", model)
    state = {
        "model": module.state_dict(),
        "config": to_dict(config),
        "class_names": list(getattr(module, "class_names", [])),
    }
    tmp = path.with_name(path.name + ".tmp")
    torch.save({**state, "rdet_version": rdet.__version__}, tmp)
    os.replace(tmp, path)
    return path


def read_checkpoint(path: str | Path) -> dict:
    """Load a checkpoint dict on CPU; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        # weights_only=False: the file holds numpy RNG state; only load checkpoints you trust.
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # noqa: BLE001 - re-raised with the path
        raise ValueError(f"{path}: not a readable rdet checkpoint ({e})") from e


def config_from_checkpoint(ckpt: dict, path: str | Path = "<checkpoint>") -> Config:
    if "config" not in ckpt:
        raise ValueError(
            f"{path}: has no 'config' entry; it was not written by rdet (MMRotate checkpoints "
            f"need a config: rdet.load_checkpoint(path, config=...)"
        )
    try:
        return from_dict(Config, ckpt["config"])  # validated by from_dict
    except (ValueError, TypeError) as e:
        raise ValueError(f"{path}: its config cannot be rebuilt: {e}") from e


def load_checkpoint(path: str | Path, config: Config | str | Path | None = None, device: str = "cpu") -> nn.Module:
    """Build the model stored in a checkpoint and load its weights (eval mode).

    Args:
        path: an rdet checkpoint; an MMRotate one (0.x or 1.x, ``state_dict`` + ``meta``) together with
            ``config``; or the name of a published model (``rdet zoo`` lists them), downloaded once into the
            cache and built with its own config.
        config: overrides the stored config (a Config or a config file path).
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
    ckpt = read_checkpoint(path)
    if config is None:
        cfg = config_from_checkpoint(ckpt, path)
    else:
        cfg = config if isinstance(config, Config) else load_config(config)
    cfg.model.backbone.weights = None  # the checkpoint holds the backbone too
    state: dict[str, torch.Tensor] | None
    if mmrotate.is_mmrotate_checkpoint(ckpt):  # MMRotate 0.x/1.x names, float16 -> float32
        names = mmrotate.class_names(ckpt)
        if names is not None and len(names) == cfg.model.head.num_classes:
            cfg.data.classes = tuple(names)  # what the weights detect, in their order
        state = mmrotate.convert_state_dict(ckpt["state_dict"], cfg.model.type, mmrotate.detect_version(ckpt))
    else:
        state = ckpt.get("model")
    if state is None:
        raise ValueError(f"{path}: no 'model' or 'state_dict' entry")
    model = build_model(cfg)
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as e:  # a shape mismatch: another architecture
        raise ValueError(f"{path}: weights do not fit the model of config {cfg.name!r}: {e}") from None
    if missing or unexpected:
        raise ValueError(f"{path}: weights do not fit the model: missing {missing[:5]}, unexpected {unexpected[:5]}")
    model.config = cfg
    return model.to(device).eval()
