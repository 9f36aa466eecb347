"""The compiled extension behind :mod:`rdet.ops`: the one installed with rdet, or one built on first use.

``pip install rdet`` builds the extension ``rdet._C`` only when torch is importable at build time, which pip's
default build isolation prevents (the isolated build environment has no torch). So the first op call of a process
resolves the extension once (:func:`extension`), in this order:

1. ``RDET_NO_EXT=1``: no compiled ops at all (pure PyTorch, no warning: it was asked for).
2. ``rdet._C`` installed with the package (``pip install --no-build-isolation``, ``make setup``), if it was built
   for the torch that runs now.
3. A build from the shipped sources (``rdet/ops/csrc``) with ``torch.utils.cpp_extension``, cached per user in
   ``$RDET_HOME/torch_extensions/<python>-torch<version>-<cpu|cuXY>-<hash>/`` (``RDET_HOME`` defaults to
   ``~/.cache/rdet``). The key holds the Python tag, the torch version and its CUDA version and the C++ ABI, and a
   hash of the sources and flags, so another torch or an edited kernel builds anew and a stale build is never
   loaded. A file lock makes parallel processes build once; the builder prints one line on stderr. A failed build
   is remembered (``FAILED`` + ``build.log`` in that folder) so later processes do not retry it every time.
   ``RDET_NO_JIT=1`` skips this step.
4. Otherwise the pure-PyTorch implementation, with ONE :class:`SlowOpsWarning` per process naming the slowdown and
   the fix.

``rdet doctor`` prints the outcome (:func:`info`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

CSRC = Path(__file__).resolve().parent / "csrc"
CPU_SOURCES = ("cpu.cpp", "bindings.cpp")
CUDA_SOURCES = ("cuda.cu", "cuda_bindings.cu")
# no -std: torch adds the C++ standard its headers need (C++20 for torch 2.13; the kernels are C++17)
CXX_FLAGS = ["-O3"]
NVCC_FLAGS = ["-O3"]
BUILD_INFO = "_C_build.json"  # written next to rdet._C by setup.py: the torch it was built for
# Measured on the 2-core machine (BENCHMARKS.md, "Compiled ops vs the pure-PyTorch fallback").
SLOWDOWN = "rotated NMS of 1000 boxes ~70x slower, the IoU of 1000 x 1000 boxes ~25x slower"


class SlowOpsWarning(UserWarning):
    """The rotated-box ops run their pure-PyTorch implementation (correct, much slower)."""


@dataclass
class ExtensionInfo:
    """Where the compiled ops come from; ``module`` is None when the pure-PyTorch implementation runs.

    ``source`` is one of ``'installed'`` (rdet._C from the wheel), ``'jit-cache'`` (built earlier on this machine),
    ``'jit-built'`` (built by this process), ``'disabled'`` (RDET_NO_EXT=1) or ``'fallback'``.
    """

    module: Any
    source: str
    path: str = ""
    cuda: bool = False
    reason: str = ""


_lock = threading.Lock()
_info: ExtensionInfo | None = None
_warned = False


def rdet_home() -> Path:
    """rdet's per-user folder (``RDET_HOME``, default ``~/.cache/rdet``)."""
    return Path(os.environ.get("RDET_HOME") or Path.home() / ".cache" / "rdet").expanduser()


def cache_root() -> Path:
    """Where built extensions are cached (one sub-folder per Python/torch/CUDA/sources key)."""
    return rdet_home() / "torch_extensions"


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def extension() -> Any:
    """The compiled extension module, resolved (and built if needed) once per process; None = pure PyTorch."""
    info_ = _info if _info is not None else info()
    return info_.module


def info() -> ExtensionInfo:
    """Resolve the extension (building it if needed) and say where it comes from."""
    global _info
    with _lock:
        if _info is None:
            try:
                _info = _resolve()
            except Exception as e:  # noqa: BLE001 - an op call must never fail because the accelerator did
                _info = ExtensionInfo(None, "fallback", reason=f"resolving the compiled ops failed: {e}")
            if _info.module is None and _info.source == "fallback":
                _warn_fallback(_info.reason)
        return _info


_warned_cuda = False


def warn_cuda_fallback() -> None:
    """ONE SlowOpsWarning when CUDA tensors meet an extension built without CUDA kernels (they run the pure-PyTorch
    implementation on the GPU)."""
    global _warned_cuda
    if _warned_cuda or _flag("RDET_NO_EXT"):
        return
    _warned_cuda = True
    warnings.warn(
        "rdet: the compiled rotated-box ops have no CUDA kernels (built without nvcc, or their CUDA build failed: "
        "`rdet doctor` says which); CUDA tensors use the pure-PyTorch implementation, much slower. Fix: install the "
        "CUDA toolkit matching torch and run `rdet doctor --rebuild`, or reinstall with "
        "`pip install --no-build-isolation rdet` where nvcc is available.",
        SlowOpsWarning,
        stacklevel=4,
    )


def _warn_fallback(reason: str) -> None:
    global _warned
    if _warned:
        return
    _warned = True
    warnings.warn(
        f"rdet: compiled rotated-box ops unavailable ({reason}); using the pure-PyTorch implementation: "
        f"{SLOWDOWN}. Fix: install a C++ compiler (e.g. `apt install g++`, or `conda install gxx`) and run again "
        "(rdet then compiles its ops once, ~1 min), or reinstall with `pip install --no-build-isolation rdet`. "
        "`rdet doctor` shows the state; RDET_NO_EXT=1 silences this.",
        SlowOpsWarning,
        stacklevel=4,
    )


# ------------------------------------------------------------------------------------ resolution
def _resolve() -> ExtensionInfo:
    if _flag("RDET_NO_EXT"):
        return ExtensionInfo(None, "disabled", reason="RDET_NO_EXT=1")
    installed = _installed()
    if isinstance(installed, ExtensionInfo):
        return installed
    if _flag("RDET_NO_JIT"):
        return ExtensionInfo(None, "fallback", reason=f"{installed}; RDET_NO_JIT=1 forbids building it")
    return _jit(installed)


def _installed(meta: Path | None = None) -> ExtensionInfo | str:
    """rdet._C from the installed package, or why it cannot be used (``meta``: its build record)."""
    meta = meta or Path(__file__).resolve().parents[1] / BUILD_INFO
    if meta.is_file():
        try:
            built_for = json.loads(meta.read_text()).get("torch")
        except (OSError, ValueError):
            built_for = None
        if built_for and built_for != torch.__version__:
            return f"rdet._C was built for torch {built_for}, this is torch {torch.__version__}"
    try:
        from rdet import _C
    except ImportError as e:
        if "cannot import name '_C'" in str(e):
            return "rdet._C was not built at install time"
        return f"rdet._C does not load ({e})"
    return ExtensionInfo(_C, "installed", getattr(_C, "__file__", ""), bool(_C.has_cuda()))


def _want_cuda() -> bool:
    if torch.version.cuda is None or _flag("RDET_NO_CUDA"):
        return False
    try:
        from torch.utils.cpp_extension import CUDA_HOME
    except Exception:  # noqa: BLE001 - no build tooling at all: reported when the CPU build is tried
        return False
    return CUDA_HOME is not None or shutil.which("nvcc") is not None


def _cuda_archs() -> str:
    """The CUDA architectures a build targets: ``TORCH_CUDA_ARCH_LIST``, else the visible devices' capabilities."""
    env = os.environ.get("TORCH_CUDA_ARCH_LIST", "").strip()
    if env:
        return env
    try:
        caps = {torch.cuda.get_device_capability(i) for i in range(torch.cuda.device_count())}
    except Exception:  # noqa: BLE001 - no driver: nvcc's default architectures
        return ""
    return ";".join(f"{a}.{b}" for a, b in sorted(caps))


def build_key(cuda: bool) -> tuple[str, str]:
    """``(folder name, module name)`` of the cached build for this Python, torch, CUDA, ABI and sources."""
    h = hashlib.sha256()
    for f in sorted(CSRC.iterdir()):
        if f.is_file():
            h.update(f.name.encode() + b"\0" + f.read_bytes() + b"\0")
    # a CUDA build holds kernels for the architectures it was compiled for (TORCH_CUDA_ARCH_LIST, else the GPUs
    # visible then): a shared cache on a cluster with mixed GPUs needs one build per set
    arch = _cuda_archs() if cuda else ""
    h.update(json.dumps([CXX_FLAGS, NVCC_FLAGS, cuda, arch]).encode())
    digest = h.hexdigest()[:16]
    variant = f"cu{(torch.version.cuda or '').replace('.', '')}" if cuda else "cpu"
    abi = int(getattr(torch._C, "_GLIBCXX_USE_CXX11_ABI", 0))
    folder = f"{sys.implementation.cache_tag}-torch{torch.__version__}-{variant}-abi{abi}-{digest}"
    return folder.replace("/", "_"), f"rdet_C_{digest}"


def _compiler() -> str | None:
    cxx = os.environ.get("CXX") or ("cl" if sys.platform == "win32" else "c++")
    return shutil.which(cxx)


def _jit(why: str) -> ExtensionInfo:
    if _compiler() is None:
        cxx = os.environ.get("CXX") or "c++"
        return ExtensionInfo(None, "fallback", reason=f"{why}, and no C++ compiler ({cxx!r}) was found to build it")
    try:
        import setuptools  # noqa: F401 - torch.utils.cpp_extension needs it
    except ImportError:
        return ExtensionInfo(
            None, "fallback", reason=f"{why}, and building it needs setuptools (pip install setuptools)"
        )
    errors: list[str] = []
    for cuda in (True, False) if _want_cuda() else (False,):
        try:
            result = _cached_or_build(cuda, why)
        except OSError as e:  # e.g. a read-only home: say where the cache is and how to move it
            result = f"cannot use the cache folder {cache_root()} ({e}); set RDET_HOME to a writable folder"
        if isinstance(result, ExtensionInfo):
            if errors:  # the CUDA build failed, the CPU one worked
                result.reason = f"CUDA kernels not built: {errors[0]}"
            return result
        errors.append(result)
    return ExtensionInfo(None, "fallback", reason=f"{why}, and building it failed: {errors[-1]}")


@contextlib.contextmanager
def _file_lock(path: Path):
    """An exclusive lock between processes, released by the OS if the holder dies (never a stale lock)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as f:
        if sys.platform == "win32":  # pragma: no cover - not tested here
            import msvcrt

            while True:
                try:
                    msvcrt.locking(f.fileno(), msvcrt.LK_LOCK, 1)
                    break
                except OSError:
                    time.sleep(1)
            try:
                yield
            finally:
                f.seek(0)
                msvcrt.locking(f.fileno(), msvcrt.LK_UNLCK, 1)
        else:
            import fcntl

            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def _built(folder: Path) -> Path | None:
    """The finished build in ``folder`` (its ``BUILT`` stamp is written last), else None."""
    try:
        so = folder / json.loads((folder / "BUILT").read_text())["file"]
    except (OSError, ValueError, KeyError):
        return None
    return so if so.is_file() else None


def _load_built(so: Path, name: str, source: str) -> ExtensionInfo | str:
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, so)
    if spec is None or spec.loader is None:
        return f"cannot load {so}"
    try:
        module = importlib.util.module_from_spec(spec)  # dlopen + init happen here
        spec.loader.exec_module(module)
    except ImportError as e:
        return f"{so} does not load ({e}); delete {so.parent} or run `rdet doctor --rebuild`"
    return ExtensionInfo(module, source, str(so), bool(module.has_cuda()))


def _cached_or_build(cuda: bool, why: str) -> ExtensionInfo | str:
    """The cached build for this key (building it under the lock if absent), or the reason it failed."""
    key, name = build_key(cuda)
    folder = cache_root() / key
    so = _built(folder)
    if so is not None:
        return _load_built(so, name, "jit-cache")
    with _file_lock(cache_root() / f"{key}.lock"):
        so = _built(folder)
        if so is not None:  # another process built it while we waited
            return _load_built(so, name, "jit-cache")
        if (folder / "FAILED").is_file():
            return f"an earlier build failed, see {folder / 'build.log'} (delete {folder} to retry)"
        what = "C++ and CUDA" if cuda else "C++"
        print(
            f"rdet: compiling the rotated-box ops ({what}) for torch {torch.__version__} into {folder} "
            f"(once; {why.split(';')[0]}) ...",
            file=sys.stderr,
            flush=True,
        )
        t0 = time.perf_counter()
        module, error = _build(folder, name, cuda)
        if module is None:
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "build.log").write_text(error)
            (folder / "FAILED").write_text(f"{time.ctime()}\n")
            lines = [ln.strip() for ln in error.splitlines() if ln.strip()]
            first = next((ln for ln in lines if re.search(r"\berror\b:", ln, re.I)), lines[-1] if lines else "?")
            return f"{first[:300]} (log: {folder / 'build.log'})"
        print(f"rdet: compiled in {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
        return ExtensionInfo(module, "jit-built", getattr(module, "__file__", ""), bool(module.has_cuda()))


def _build(folder: Path, name: str, cuda: bool) -> tuple[Any, str]:
    """Compile into ``folder``, write its ``BUILT`` stamp last; ``(module, '')``, or ``(None, build log)``."""
    from torch.utils import cpp_extension

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "lock").unlink(missing_ok=True)  # torch's own baton, stale if a builder was killed; we hold our lock
    sources = [str(CSRC / s) for s in CPU_SOURCES + (CUDA_SOURCES if cuda else ())]
    defines = ["-DWITH_CUDA"] if cuda else []
    if cpp_extension.is_ninja_available():
        try:
            module = cpp_extension.load(
                name=name,
                sources=sources,
                extra_cflags=CXX_FLAGS + defines,
                extra_cuda_cflags=NVCC_FLAGS + defines,
                build_directory=str(folder),
                with_cuda=cuda,
                verbose=False,
            )
        except Exception as e:  # noqa: BLE001 - any compiler/linker failure: the log goes to build.log
            return None, str(e)
        so = Path(module.__file__)
    else:  # no ninja: setuptools runs the compiler (slower, one file at a time), in a child process
        error = _build_without_ninja(folder, name, sources, cuda, defines)
        if error is not None:
            return None, error
        so = next(p for p in folder.iterdir() if p.name.startswith(name) and p.suffix in (".so", ".pyd"))
        loaded = _load_built(so, name, "jit-built")
        if isinstance(loaded, str):
            return None, loaded
        module = loaded.module
    (folder / "BUILT").write_text(json.dumps({"file": so.name, "torch": torch.__version__, "cuda": cuda}))
    return module, ""


_SETUPTOOLS_BUILD = """
import json, sys
from setuptools import Distribution
from torch.utils.cpp_extension import BuildExtension, CppExtension, CUDAExtension
a = json.loads(sys.argv[1])
kind = CUDAExtension if a["cuda"] else CppExtension
ext = kind(a["name"], a["sources"], extra_compile_args={"cxx": a["cxx"], "nvcc": a["nvcc"]})
dist = Distribution({"name": a["name"], "ext_modules": [ext],
                     "cmdclass": {"build_ext": BuildExtension.with_options(use_ninja=False)}})
cmd = dist.get_command_obj("build_ext")
cmd.build_lib, cmd.build_temp = a["folder"], a["folder"] + "/tmp"
dist.run_command("build_ext")
"""


def _build_without_ninja(folder: Path, name: str, sources: list[str], cuda: bool, defines: list[str]) -> str | None:
    args = {
        "name": name,
        "sources": sources,
        "cuda": cuda,
        "cxx": CXX_FLAGS + defines,
        "nvcc": NVCC_FLAGS + defines,
        "folder": str(folder),
    }
    proc = subprocess.run(
        [sys.executable, "-c", _SETUPTOOLS_BUILD, json.dumps(args)],
        capture_output=True,
        text=True,
        cwd=folder,
    )
    shutil.rmtree(folder / "tmp", ignore_errors=True)
    return None if proc.returncode == 0 else proc.stdout + proc.stderr


def clear_cache() -> Path:
    """Delete this machine's cached builds (all keys); returns the folder."""
    root = cache_root()
    shutil.rmtree(root, ignore_errors=True)
    return root
