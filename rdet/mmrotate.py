"""MMRotate checkpoints: which MMRotate wrote them, and their weights under rdet's parameter names.

rdet's parameter names are MMRotate dev-1.x's (``backbone.*``, ``neck.*``, ``bbox_head.*`` for Rotated
RetinaNet; ``bbox_head_init.*``, ``bbox_head_refine.{i}.*`` for R3Det), so dev-1.x checkpoints load as they
are. MMRotate 0.x, which trained every published checkpoint of the model zoo, names R3Det differently:

=========================================  ==============================================
0.x (``R3Det``)                            rdet / dev-1.x (``RefineSingleStageDetector``)
=========================================  ==============================================
``bbox_head.*``                            ``bbox_head_init.*``
``refine_head.{i}.*``                      ``bbox_head_refine.{i}.*``
``feat_refine_module.{i}.*``               ``bbox_head_refine.{i}.feat_refine_module.*``
=========================================  ==============================================

(Rotated RetinaNet's names are the same in both.) Checkpoint layouts:

* 0.x (mmcv runner): ``{'meta': {'mmcv_version', 'CLASSES', 'config', 'mmrotate_version', ...},
  'state_dict': ..., 'optimizer': ...}``;
* 1.x (MMEngine): ``{'meta': {'mmengine_version', 'dataset_meta': {'classes'}, 'cfg', ...},
  'state_dict': ..., 'message_hub': ..., 'optimizer': ...}``.

Floating tensors are cast to float32 (published files and the parity fixtures store float16), as MMEngine's
``load_checkpoint`` does when it copies them into a float32 model. Reading the file is
``rdet.checkpoint.read_checkpoint``'s job; this module only maps what it returns.
"""

from __future__ import annotations

import re

import torch
from torch import Tensor

VERSIONS = ("0.x", "1.x")


def is_mmrotate_checkpoint(ckpt: dict) -> bool:
    """True for an MMRotate/MMEngine checkpoint (``state_dict`` entry, no rdet ``model`` entry)."""
    return isinstance(ckpt, dict) and "state_dict" in ckpt and "model" not in ckpt


def detect_version(ckpt: dict) -> str | None:
    """``'0.x'`` or ``'1.x'`` from the checkpoint's metadata, or None if it does not say.

    In order: ``meta.mmrotate_version``; MMEngine's marks (``meta.mmengine_version``, ``meta.dataset_meta``,
    a top-level ``message_hub``) mean 1.x; mmcv-runner marks (``meta.mmcv_version`` 1.*, ``meta.CLASSES``,
    ``meta.config``) mean 0.x.
    """
    meta: dict = ckpt["meta"] if isinstance(ckpt.get("meta"), dict) else {}
    version = str(meta.get("mmrotate_version", ""))
    if re.match(r"v?0\.", version):
        return "0.x"
    if re.match(r"v?1\.", version):
        return "1.x"
    if "mmengine_version" in meta or "dataset_meta" in meta or "message_hub" in ckpt:
        return "1.x"
    if str(meta.get("mmcv_version", "")).startswith("1.") or "CLASSES" in meta or "config" in meta:
        return "0.x"
    return None


def _anchor_generator_text(text: str) -> str | None:
    """The ``anchor_generator=dict(...)`` of a config text (MMEngine/mmcv ``pretty_text``), or None."""
    start = text.find("anchor_generator")
    if start < 0:
        return None
    open_ = text.find("(", start)
    if open_ < 0:
        return None
    depth = 0
    for i in range(open_, len(text)):
        depth += {"(": 1, ")": -1}.get(text[i], 0)
        if depth == 0:
            return text[open_ : i + 1]
    return None


def anchor_version(ckpt: dict) -> str | None:
    """Which anchor convention (``model.anchors.mmrotate_version``) an MMRotate checkpoint was trained with, from
    its metadata, or None if the metadata does not say.

    The config text the file stores (``meta.cfg``, 1.x; ``meta.config``, 0.x) decides when it has an anchor
    generator: 0.x's ``RotatedAnchorGenerator``, or dev-1.x's ``FakeRotatedAnchorGenerator`` with
    ``angle_version=None`` (or none given), lay out 0.x's angle-0 anchors; ``FakeRotatedAnchorGenerator`` with an
    angle version lays out dev-1.x's. Otherwise the MMRotate version of :func:`detect_version`.
    """
    meta: dict = ckpt["meta"] if isinstance(ckpt.get("meta"), dict) else {}
    for key in ("cfg", "config"):
        text = meta.get(key)
        gen = _anchor_generator_text(text) if isinstance(text, str) else None
        if gen is None:
            continue
        if "FakeRotatedAnchorGenerator" in gen:
            m = re.search(r"angle_version\s*=\s*(None|'\w+'|\"\w+\")", gen)
            return "0.x" if m is None or m.group(1) == "None" else "1.x"
        if "RotatedAnchorGenerator" in gen:
            return "0.x"
    return detect_version(ckpt)


def class_names(ckpt: dict) -> list[str] | None:
    """The class names an MMRotate checkpoint records (0.x ``meta.CLASSES``, 1.x ``meta.dataset_meta.classes``)."""
    meta: dict = ckpt["meta"] if isinstance(ckpt.get("meta"), dict) else {}
    names = meta.get("CLASSES")
    if names is None and isinstance(meta.get("dataset_meta"), dict):
        names = meta["dataset_meta"].get("classes")
    return [str(n) for n in names] if isinstance(names, (list, tuple)) and names else None


def r3det_0x_to_rdet(key: str) -> str:
    """One MMRotate 0.x R3Det parameter name under rdet's (dev-1.x) name; other names pass unchanged."""
    if key.startswith("bbox_head."):
        return "bbox_head_init." + key[len("bbox_head.") :]
    if key.startswith("refine_head."):
        return "bbox_head_refine." + key[len("refine_head.") :]
    if key.startswith("feat_refine_module."):
        stage, rest = key[len("feat_refine_module.") :].split(".", 1)
        return f"bbox_head_refine.{stage}.feat_refine_module.{rest}"
    return key


def rdet_to_r3det_0x(key: str) -> str:
    """Inverse of :func:`r3det_0x_to_rdet` (rdet / dev-1.x R3Det name -> MMRotate 0.x name)."""
    m = re.match(r"^bbox_head_refine\.(\d+)\.feat_refine_module\.(.*)$", key)
    if m:
        return f"feat_refine_module.{m.group(1)}.{m.group(2)}"
    if key.startswith("bbox_head_refine."):
        return "refine_head." + key[len("bbox_head_refine.") :]
    if key.startswith("bbox_head_init."):
        return "bbox_head." + key[len("bbox_head_init.") :]
    return key


def convert_state_dict(state: dict[str, Tensor], model_type: str, version: str | None = None) -> dict[str, Tensor]:
    """MMRotate weights under rdet's parameter names, floating tensors as float32.

    Args:
        state: the checkpoint's ``state_dict`` (a ``module.`` prefix from DataParallel is dropped).
        model_type: ``config.model.type``, ``'rotated_retinanet'`` or ``'r3det'``.
        version: ``'0.x'``, ``'1.x'`` or None (:func:`detect_version`). The names themselves tell the layout
            (0.x R3Det has ``refine_head.*``; the map leaves dev-1.x names alone), so the names decide: a file
            re-keyed by hand keeps loading whatever its metadata says. (The version matters elsewhere:
            dev-1.x anchors differ from 0.x's.)

    Returns:
        dict[str, Tensor]: the same tensors (float16/bfloat16/float64 ones cast to float32).
    """
    if version is not None and version not in VERSIONS:
        raise ValueError(f"MMRotate version must be one of {VERSIONS} or None, got {version!r}")
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    if model_type == "r3det":
        state = {r3det_0x_to_rdet(k): v for k, v in state.items()}  # dev-1.x names pass unchanged
    return {k: v.float() if torch.is_tensor(v) and v.is_floating_point() else v for k, v in state.items()}


def import_checkpoint(ckpt: dict, cfg, mmrotate_version: str | None = None) -> dict[str, Tensor]:
    """An MMRotate checkpoint's weights under rdet's names, with ``cfg`` (a ``rdet.config.Config``) updated to
    what the file says: its class names (when their number fits) and its anchor convention.

    Args:
        mmrotate_version: ``'0.x'``/``'1.x'`` (``model.anchors.mmrotate_version``); None: :func:`anchor_version`.

    Raises:
        ValueError: the metadata does not reveal the anchor convention and ``mmrotate_version`` is None (one line
            naming the option), or ``mmrotate_version`` is not a version.
    """
    names = class_names(ckpt)
    if names is not None and len(names) == cfg.model.head.num_classes:
        cfg.data.classes = tuple(names)  # what the weights detect, in their order
    version = mmrotate_version or anchor_version(ckpt)
    if version is None:
        raise ValueError(
            "MMRotate checkpoint whose metadata does not say which MMRotate (so which anchors) trained it: state "
            "it, rdet.load_checkpoint(..., mmrotate_version='0.x' or '1.x') (config field "
            "model.anchors.mmrotate_version; 0.x: angle-0 anchors, 1.x: dev-1.x's regularised anchors)"
        )
    if version not in VERSIONS:
        raise ValueError(f"mmrotate_version must be one of {VERSIONS}, got {version!r}")
    cfg.model.anchors.mmrotate_version = version
    return convert_state_dict(ckpt["state_dict"], cfg.model.type, detect_version(ckpt))
