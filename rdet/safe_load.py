"""Opening checkpoint files without running code from them.

A ``.pt`` file is read with ``torch.load(weights_only=True)``: a checkpoint is data, and a crafted pickle cannot
execute anything. Two kinds of older files pickle a few more types, allowed by exact name through torch's
safe-globals mechanism, and only when the file names them:

* rdet checkpoints written before the current format pickled ``numpy.random.get_state()`` (an ndarray of
  uint32): numpy's array reconstructor, ``ndarray``, ``dtype`` and the numeric dtype classes.
* MMRotate 0.x (MMCV) and 1.x (MMEngine) checkpoints: the same numpy types plus numpy scalars, and MMEngine's
  ``HistoryBuffer`` in ``message_hub``, which is rebuilt as an inert stand-in (mmengine is never imported; its
  pickled method references resolve to plain strings).

Anything else is refused with one line naming the file and the refused type (:class:`CheckpointError`). A
``.safetensors`` file (the ``weights`` extra) is read with its metadata (config, class names, format, version).
What the loaded dict may contain is checked by :mod:`rdet.checkpoint`.
"""

from __future__ import annotations

import json
import pickle
import re
from pathlib import Path

import numpy as np
import torch


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message is one line that names the file."""


def load_file(path: Path) -> dict:
    """The dict stored in ``path`` (a safetensors or a PyTorch file), on CPU; one-line errors naming the file."""
    return _read_safetensors(path) if _is_safetensors(path) else _torch_load(path)


class _HistoryBuffer:
    """Inert stand-in for ``mmengine.logging.history_buffer.HistoryBuffer`` (attributes only, no behaviour)."""


def _mmengine_getattr(obj, name):
    """Stand-in for ``builtins.getattr``, which MMEngine pickles reach ``HistoryBuffer.<method>`` through.

    Only that lookup is answered (with a plain string); any other use is refused.
    """
    if obj is _HistoryBuffer and isinstance(name, str) and name.isidentifier():
        return f"HistoryBuffer.{name}"
    raise pickle.UnpicklingError(f"getattr({type(obj).__name__}, {name!r}) is not allowed in a checkpoint")


def _numpy_globals() -> dict[str, object]:
    try:
        from numpy._core.multiarray import _reconstruct, scalar
    except ImportError:  # numpy < 1.26
        from numpy.core.multiarray import _reconstruct, scalar  # type: ignore[no-redef]
    out: dict[str, object] = {"numpy.ndarray": np.ndarray, "numpy.dtype": np.dtype}
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):  # numpy 1.x and 2.x pickles
        out[f"{mod}._reconstruct"] = _reconstruct
        out[f"{mod}.scalar"] = scalar
    return out


# Exactly the globals older rdet files and MMRotate/MMEngine files name; nothing else is ever allowed.
RDET_LEGACY_GLOBALS = (
    "numpy.ndarray",
    "numpy.dtype",
    "numpy.core.multiarray._reconstruct",
    "numpy._core.multiarray._reconstruct",
)
MMROTATE_GLOBALS = RDET_LEGACY_GLOBALS + (
    "numpy.core.multiarray.scalar",
    "numpy._core.multiarray.scalar",
    "mmengine.logging.history_buffer.HistoryBuffer",
    "builtins.getattr",
)
# numpy dtypes are rebuilt by calling numpy.dtype then setting their state; only numeric/bool ones are allowed
_DTYPE_CODES = ("?", "b", "B", "h", "H", "i", "I", "l", "L", "q", "Q", "e", "f", "d", "g", "F", "D", "G")


def _allowed(name: str):
    if name == "mmengine.logging.history_buffer.HistoryBuffer":
        return _HistoryBuffer
    if name == "builtins.getattr":
        return _mmengine_getattr
    return _numpy_globals()[name]


def _globals_in(path: Path, error: Exception) -> list[str]:
    """The globals a pickle names, read without unpickling (torch >= 2.6), else parsed from ``error``."""
    finder = getattr(torch.serialization, "get_unsafe_globals_in_checkpoint", None)
    if finder is not None:
        try:
            return sorted(finder(path))
        except Exception:  # noqa: BLE001 - fall back to the message below
            pass
    return re.findall(r"GLOBAL ([\w.]+)", str(error))


def one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return text[:200] + ("..." if len(text) > 200 else "")


def _torch_load(path: Path):
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        needed = _globals_in(path, e)
        refused = [g for g in needed if g not in MMROTATE_GLOBALS]
        if refused:
            raise CheckpointError(
                f"{path}: refused: the file pickles {', '.join(refused[:3])}, which rdet does not load (a "
                "checkpoint holds data; unpickling other objects could run code)"
            ) from None
        if not needed:
            raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({one_line(e)})") from None
        first = e
    except Exception as e:  # noqa: BLE001 - a garbled file raises anything (KeyError from a bad memo, ...)
        why = f"{type(e).__name__}: {one_line(e)}"
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({why})") from None
    # an older rdet file (numpy RNG state) or an MMRotate/MMEngine one: allow exactly the names it uses
    extra: list = [(_allowed(g), g) for g in needed]
    if "numpy.dtype" in needed:
        extra += [type(np.dtype(c)) for c in _DTYPE_CODES]
    if "mmengine.logging.history_buffer.HistoryBuffer" in needed:
        extra.append(_HistoryBuffer)
    safe = getattr(torch.serialization, "safe_globals", None)
    # allow-list entries given as (object, "module.name") need torch >= 2.6 (older rdet and MMRotate files only;
    # rdet's own current files load with plain weights_only on any supported torch)
    if safe is None or tuple(int(x) for x in re.findall(r"\d+", torch.__version__)[:2]) < (2, 6):
        raise CheckpointError(
            f"{path}: an older rdet or MMRotate checkpoint needs torch >= 2.6 to load safely (this is torch "
            f"{torch.__version__}): upgrade torch ({one_line(first)})"
        ) from None
    try:
        with safe(extra):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - one line naming the file, whatever went wrong
        raise CheckpointError(f"{path}: refused or unreadable ({one_line(e)})") from None


def _is_safetensors(path: Path) -> bool:
    """A safetensors file starts with an 8-byte little-endian header size and a JSON header."""
    with open(path, "rb") as f:
        head = f.read(9)
    if len(head) < 9:
        return False
    n = int.from_bytes(head[:8], "little")
    return head[8:9] == b"{" and 2 <= n <= path.stat().st_size - 8


def _read_safetensors(path: Path) -> dict:
    try:
        from safetensors import safe_open
    except ImportError:
        raise CheckpointError(f"{path}: reading .safetensors needs the package: pip install 'rdet[weights]'") from None
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            meta = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open is not a mapping
        out: dict = {"model": state}
        if "rdet_config" in meta:
            out["config"] = json.loads(meta["rdet_config"])
        if "class_names" in meta:
            out["class_names"] = json.loads(meta["class_names"])
        for key in ("format", "rdet_version"):
            if key in meta:
                out[key] = meta[key]
        return out
    except Exception as e:  # noqa: BLE001 - a corrupt file or metadata: one line naming it
        raise CheckpointError(f"{path}: not a readable safetensors file ({one_line(e)})") from None
