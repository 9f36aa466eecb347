"""Typed configs: dataclasses with slots (:mod:`rdet.config_schema`, all importable from here), so a typo in
a config file is an error, never a silent no-op.

A config file is a Python file that defines ``config = Config(...)``; files in ``configs/`` reproduce one
published setting each and are named like the MMRotate config they reproduce. A file may start from
another one with :func:`load_base` and change fields by attribute assignment (``config.train.lr = 1e-4``),
which raises ``AttributeError`` for unknown names because every config class has ``__slots__``.

``load_config(path, overrides)`` runs the file, applies ``--set``-style overrides (``"train.lr=0.01"``),
resolves paths, validates every field (once) and returns the :class:`Config`. Checkpoints store
``to_dict(config)`` and rebuild it with :func:`from_dict`, which also rejects unknown keys (naming the
closest valid one) and validates.

Paths. Every path in a config file is relative to *that config file*: ``data.train_images``,
``data.train_labels``, ``data.val_images``, ``data.val_labels``, ``train.work_dir``,
``model.backbone.weights``, ``distill.teacher``, ``distill.teacher_weights`` and ``distill.cache_dir``
(:data:`PATH_FIELDS`). A base file loaded with :func:`load_base` resolves its own paths against itself.
To mean "relative to the folder rdet runs in" instead, write :func:`from_cwd`::

    data_root = from_cwd("data/split_ss_dota/")       # MMRotate's data_root='data/split_ss_dota/'
    config.data.train_images = data_root + "trainval/images"
    config.train.work_dir = from_cwd("work_dirs/my_run")

The configs shipped with rdet (installed inside the package) do that for their data, ImageNet weights
and work_dirs, so they never write into the package. Paths given as ``--set`` overrides (or keyword
overrides of ``rdet.train``) and paths of a config built in code are relative to the current folder.
``load_config`` makes every path absolute, so error messages and checkpoints show the resolved path.
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import os
import re
import runpy
import sys
import typing
from pathlib import Path
from typing import Literal

from rdet.config_schema import (
    AnchorConfig,
    AngleVersion,
    AssignIoU,
    BackboneConfig,
    CoderConfig,
    Config,
    DataConfig,
    DistillConfig,
    FocalConfig,
    GaussianFun,
    HeadConfig,
    LossConfig,
    LossType,
    ModelConfig,
    ModelType,
    NeckConfig,
    Optimizer,
    RefineConfig,
    TestConfig,
    TrainConfig,
    class_names,
)

__all__ = [
    "ModelType",
    "AngleVersion",
    "LossType",
    "GaussianFun",
    "AssignIoU",
    "Optimizer",
    "BackboneConfig",
    "NeckConfig",
    "AnchorConfig",
    "CoderConfig",
    "LossConfig",
    "FocalConfig",
    "HeadConfig",
    "RefineConfig",
    "TestConfig",
    "ModelConfig",
    "DataConfig",
    "TrainConfig",
    "DistillConfig",
    "Config",
    "class_names",
    "validate",
    "to_dict",
    "from_dict",
    "apply_override",
    "PATH_FIELDS",
    "from_cwd",
    "resolve_paths",
    "load_base",
    "config_names",
    "find_config",
    "load_config",
]

# --------------------------------------------------------------------------- validation


def _closest(name: str, options) -> str:
    match = difflib.get_close_matches(name, list(options), n=1)
    return f" (did you mean {match[0]!r}?)" if match else ""


def _fail(path: str, message: str) -> typing.NoReturn:
    raise ValueError(f"config field {path}: {message}")


def _check_choices(obj, path: str = "") -> None:
    """Every ``Literal`` field of a config dataclass (recursively) holds one of its choices."""
    for f in dataclasses.fields(obj):
        value, where = getattr(obj, f.name), f"{path}{f.name}"
        tp = _hints(type(obj))[f.name]
        if typing.get_origin(tp) is Literal and value not in typing.get_args(tp):
            _fail(where, f"{value!r} is not one of {', '.join(map(repr, typing.get_args(tp)))}")
        if dataclasses.is_dataclass(value):
            _check_choices(value, where + ".")


def _check_loss(loss, decoded: bool | None, path: str) -> None:
    """A regression loss against THE table (``rdet.losses.regression``); ``decoded``: the head's
    ``reg_decoded_bbox`` (``None`` where the stage derives it from the loss)."""
    from rdet.losses.regression import REGRESSION_LOSSES, check_settings

    problems = check_settings(loss)
    if problems:
        _fail(path, "; ".join(problems))
    if decoded is False and REGRESSION_LOSSES[loss.type].decoded:
        _fail(
            path.rsplit(".", 1)[0] + ".reg_decoded_bbox", f"must be True with {loss.type!r} (it compares decoded boxes)"
        )


def validate(config: Config) -> Config:
    """Check values a dataclass cannot: choices, ranges, consistency. Raises ``ValueError`` naming the field.

    :func:`load_config` and :func:`from_dict` call it once; a config built in code is validated when
    training starts (``rdet.train``/``rdet.distill``).
    """
    m, t = config.model, config.train
    _check_choices(config)
    if m.backbone.depth not in (18, 34, 50):
        _fail("model.backbone.depth", f"{m.backbone.depth} is not one of 18, 34, 50")
    _check_loss(m.head.loss_bbox, m.head.reg_decoded_bbox, "model.head.loss_bbox")
    if m.neck.num_outs != len(m.anchors.strides):
        _fail("model.anchors.strides", f"{len(m.anchors.strides)} strides for {m.neck.num_outs} FPN levels")
    expected = tuple(2 ** (3 + i) for i in range(m.neck.num_outs))
    if tuple(m.anchors.strides) != expected:
        _fail("model.anchors.strides", f"{tuple(m.anchors.strides)} do not match the FPN levels P3.. ({expected})")
    if len(m.coder.means) != 5 or len(m.coder.stds) != 5:
        _fail("model.coder.means/stds", "need 5 values each")
    if m.head.reg_max < 0:
        _fail("model.head.reg_max", f"must be >= 0, got {m.head.reg_max}")
    if m.type == "r3det":
        if m.refine is None:
            _fail("model.refine", "an r3det model needs a RefineConfig")
        _check_loss(m.refine.loss_bbox, None, "model.refine.loss_bbox")
        if m.refine.frm_points not in (1, 5):
            _fail("model.refine.frm_points", f"must be 1 or 5, got {m.refine.frm_points}")
        if m.refine.num_stages < 1 or len(m.refine.stage_loss_weights) != m.refine.num_stages:
            _fail(
                "model.refine.stage_loss_weights",
                f"{len(m.refine.stage_loss_weights)} weights for {m.refine.num_stages} refine stages",
            )
    if t.lr <= 0:
        _fail("train.lr", f"must be > 0, got {t.lr}")
    if t.batch_size < 1:
        _fail("train.batch_size", f"must be >= 1, got {t.batch_size}")
    if t.keep_checkpoints < 0:
        _fail("train.keep_checkpoints", f"must be >= 0, got {t.keep_checkpoints}")
    if len(config.data.img_size) != 2 or any(s % 32 for s in config.data.img_size):
        _fail("data.img_size", f"{config.data.img_size} must be (height, width), each divisible by 32")
    return config


# --------------------------------------------------------------------------- dict round trip


def to_dict(config) -> dict:
    """Plain nested dict (for checkpoints and ``--print-config``)."""
    return dataclasses.asdict(config)


def _hints(cls) -> dict:
    return typing.get_type_hints(cls)


def _dataclass_of(tp):
    """The dataclass inside an annotation such as ``RefineConfig | None``, else None."""
    if dataclasses.is_dataclass(tp):
        return tp
    for arg in typing.get_args(tp):
        if dataclasses.is_dataclass(arg):
            return arg
    return None


def from_dict(cls, data: dict, path: str = ""):
    """Rebuild a config dataclass from a dict; unknown keys raise ``ValueError`` with the closest valid key.

    A whole :class:`Config` is validated (:func:`validate`) before it is returned.
    """
    hints = _hints(cls)
    kwargs = {}
    for key, value in data.items():
        where = f"{path}.{key}" if path else key
        if key not in hints:
            raise ValueError(f"unknown config key {where!r}{_closest(key, hints)}")
        sub = _dataclass_of(hints[key])
        if sub is not None and isinstance(value, dict):
            value = from_dict(sub, value, where)
        elif isinstance(value, list):
            value = tuple(value)
        kwargs[key] = value
    out = cls(**kwargs)
    return validate(out) if isinstance(out, Config) else out


# --------------------------------------------------------------------------- loading


def _coerce(value, tp, where: str):
    """Check an override value against the field's annotation (int -> float allowed, list -> tuple)."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is Literal:
        if value not in args:
            raise ValueError(f"--set {where}: {value!r} is not one of {', '.join(map(repr, args))}")
        return value
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp in (int, str, bool) and type(value) is not tp:
        raise ValueError(f"--set {where}: expected {tp.__name__}, got {value!r}")
    if tp is float and not isinstance(value, float):
        raise ValueError(f"--set {where}: expected float, got {value!r}")
    if origin is tuple and isinstance(value, (list, tuple)):
        return tuple(value)
    if args and type(None) in args and value is None:
        return None
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ValueError:
                pass
        raise ValueError(f"--set {where}: {value!r} does not fit {tp}")
    return value


def apply_override(config: Config, assignment: str) -> None:
    """Apply one ``section.field=value`` override (value parsed as a Python literal, else a string)."""
    if "=" not in assignment:
        raise ValueError(f"--set expects key=value, got {assignment!r}")
    key, raw = assignment.split("=", 1)
    parts = key.strip().split(".")
    obj = config
    for i, part in enumerate(parts):
        hints = _hints(type(obj))
        where = ".".join(parts[: i + 1])
        if part not in hints:
            raise ValueError(f"unknown config key {where!r}{_closest(part, hints)}")
        if i == len(parts) - 1:
            try:
                value = ast.literal_eval(raw)
            except (ValueError, SyntaxError):
                value = raw
            setattr(obj, part, _coerce(value, hints[part], where))
        else:
            obj = getattr(obj, part)
            if obj is None:
                raise ValueError(f"config key {where!r} is None in this config; set it in the file first")


#: every config field that holds a path (resolved as the module docstring says)
PATH_FIELDS = (
    "data.train_images",
    "data.train_labels",
    "data.val_images",
    "data.val_labels",
    "train.work_dir",
    "model.backbone.weights",
    "distill.teacher",
    "distill.teacher_weights",
    "distill.cache_dir",
)


def from_cwd(path: str | Path) -> str:
    """``path`` relative to the current folder (where rdet runs), for config files: ``from_cwd("data/dota")``.

    Evaluated when the config file is loaded; returns an absolute path, which config loading keeps as is. A
    trailing ``/`` is kept, so ``from_cwd("data/split_ss_dota/") + "trainval/images"`` works like MMRotate's
    ``data_root``.
    """
    out = str(Path.cwd() / path)
    return out + os.sep if str(path).endswith(("/", os.sep)) else out


def resolve_paths(config: Config, base: str | Path) -> Config:
    """Make every relative path of :data:`PATH_FIELDS` absolute against the folder ``base`` (in place)."""
    for dotted in PATH_FIELDS:
        section, name = dotted.split(".", 1)
        obj = getattr(config, section)
        for part in name.split(".")[:-1]:
            obj = getattr(obj, part)
        leaf = name.split(".")[-1]
        if obj is None or not getattr(obj, leaf):
            continue
        value = Path(getattr(obj, leaf)).expanduser()
        if not value.is_absolute():
            value = Path(base) / value
        setattr(obj, leaf, str(Path(os.path.normpath(value))))
    return config


def load_base(path: str | Path) -> Config:
    """Load another config file to start from: a path relative to the calling config file, or the name of a
    shipped config (``load_base("rotated-retinanet-rbox-le90_r50_fpn_1x_dota")``). Its own relative paths
    resolve against its own folder."""
    path = Path(path)
    if not path.is_absolute():
        caller = sys._getframe(1).f_globals.get("__file__")
        local = (Path(caller).parent if caller else Path.cwd()) / path
        path = local if local.is_file() else find_config(path)
    return _run_file(path.resolve())


def _run_file(path: Path) -> Config:
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    try:
        namespace = runpy.run_path(str(path))
    except AttributeError as e:  # a typo in `config.x.y = ...`: __slots__ refuse unknown names
        # Setting an unknown slot leaves e.name/e.obj empty, so read the names from the message.
        found = re.search(r"'(\w+)' object has no attribute '(\w+)'", str(e))
        if not found:
            raise ValueError(f"{path}: {e}") from e
        cls = globals().get(found.group(1))
        hint = _closest(found.group(2), _hints(cls)) if dataclasses.is_dataclass(cls) else ""
        raise ValueError(f"{path}: unknown config key {found.group(2)!r} in {found.group(1)}{hint}") from e
    except TypeError as e:  # Config(unknown=...) or a wrong constructor argument
        raise ValueError(f"{path}: {e}") from e
    config = namespace.get("config")
    if not isinstance(config, Config):
        raise ValueError(f"{path}: must define `config = Config(...)`, found {type(config).__name__}")
    return resolve_paths(config, path.parent)  # a file's paths are relative to the file


def config_names() -> dict[str, Path]:
    """``{name: path}`` of every config shipped with rdet (``configs/``, installed as ``rdet.configs``)."""
    from rdet.resources import configs_dir

    root = configs_dir()
    return {p.stem: p for p in sorted(root.rglob("*.py")) if p.name != "__init__.py"}


def find_config(name_or_path: str | Path) -> Path:
    """The config file for a path, or for the name of a shipped config.

    ``find_config("rotated-retinanet-rbox-le90_r50_fpn_kld-stable_1x_dota")``, with or without ``.py`` and
    with or without its folder (``"kld/..."``), finds the file in the installed ``rdet.configs``; an existing
    path is returned as is.

    Raises:
        FileNotFoundError: neither a file nor a shipped config name (the message lists the closest names).
    """
    path = Path(name_or_path)
    if path.is_file():
        return path
    names = config_names()
    stem = path.name[:-3] if path.name.endswith(".py") else path.name
    if stem in names:
        return names[stem]
    hint = difflib.get_close_matches(stem, list(names), n=3)
    more = f"; did you mean {', '.join(hint)}?" if hint else " (rdet.config.config_names() lists the shipped configs)"
    raise FileNotFoundError(f"config not found: {name_or_path} is neither a file nor a shipped config name{more}")


def load_config(path: str | Path, overrides: list[str] | tuple[str, ...] = (), *, check: bool = True) -> Config:
    """Load a config file, apply overrides, resolve paths and validate.

    Args:
        path: a Python config file defining ``config``, or the name of a shipped config (:func:`find_config`).
        overrides: ``"section.field=value"`` strings, as given to ``--set`` (paths in them: relative to the
            current folder).
        check: validate (:func:`validate`); ``False`` for a caller that changes the config further and
            validates it once itself (``rdet.train``).

    Returns:
        Config: ``source`` is the file's absolute path; every path is absolute (module docstring).
    """
    path = find_config(path).resolve()
    config = _run_file(path)
    for item in overrides:
        apply_override(config, item)
    config.source = str(path)
    resolve_paths(config, Path.cwd())  # what is still relative came from the overrides
    return validate(config) if check else config
