"""Build of the optional compiled extension ``rdet._C`` (metadata lives in pyproject.toml).

The extension (C++ CPU kernels, plus CUDA kernels when torch has CUDA and nvcc exists) is built here only
when torch is importable at build time: ``pip install --no-build-isolation`` (pip's default build isolation
hides the installed torch, so the extension is skipped). Either way the install succeeds: when ``rdet._C`` is
absent, or was built for another torch, :mod:`rdet.ops` compiles the same sources (shipped in the wheel) on
first use into a per-user cache (``rdet/ops/_build.py``) and only falls back to pure PyTorch without a compiler.
A file ``rdet/_C_build.json`` next to the extension records the torch it was built for.
Set ``RDET_NO_EXT=1`` to skip the build, ``RDET_NO_CUDA=1`` to build the CPU kernels only.
"""

from __future__ import annotations

import json
import os
import shutil
import sys

from setuptools import setup

CSRC = os.path.join("rdet", "ops", "csrc")


def _warn(msg: str) -> None:
    bar = "=" * 78
    print(
        f"\n{bar}\nNOTE (rdet): {msg}\nrdet.ops will compile its C++ ops on first use (once per machine and torch "
        f"version, needs a C++ compiler; `rdet doctor` shows the state). To build them now instead: "
        f"pip install --no-build-isolation rdet\n{bar}\n",
        file=sys.stderr,
    )


def _extension_setup() -> dict:
    if os.environ.get("RDET_NO_EXT") == "1":
        _warn("RDET_NO_EXT=1: not building the compiled extension rdet._C")
        return {}
    try:
        import torch
        from torch.utils.cpp_extension import CUDA_HOME, BuildExtension, CppExtension, CUDAExtension
    except Exception as err:  # noqa: BLE001 - any failure means "no extension", reported below
        _warn(f"torch is not importable at build time ({err}; pip's build isolation?): rdet._C not built")
        return {}

    sources = [os.path.join(CSRC, "cpu.cpp"), os.path.join(CSRC, "bindings.cpp")]
    cxx = ["-O3"]  # no -std: torch adds the C++ standard its headers need
    # rpath to torch's libraries so `import rdet._C` works even before `import torch`.
    link = [f"-Wl,-rpath,{os.path.join(os.path.dirname(torch.__file__), 'lib')}"]
    with_cuda = (
        torch.version.cuda is not None
        and os.environ.get("RDET_NO_CUDA") != "1"
        and (CUDA_HOME is not None or shutil.which("nvcc") is not None)
    )
    if with_cuda:
        sources += [os.path.join(CSRC, "cuda.cu"), os.path.join(CSRC, "cuda_bindings.cu")]
        ext = CUDAExtension(
            "rdet._C",
            sources,
            define_macros=[("WITH_CUDA", None)],
            extra_compile_args={"cxx": cxx, "nvcc": ["-O3"]},
            extra_link_args=link,
        )
    else:
        ext = CppExtension("rdet._C", sources, extra_compile_args={"cxx": cxx}, extra_link_args=link)

    class OptionalBuildExtension(BuildExtension):
        """Turn a failed compile into a warning: the package works without rdet._C."""

        def run(self) -> None:
            try:
                super().run()
            except Exception as err:  # noqa: BLE001
                _warn(f"building rdet._C failed: {err}")

        def build_extension(self, extension) -> None:
            try:
                super().build_extension(extension)
            except Exception as err:  # noqa: BLE001
                _warn(f"building {extension.name} failed: {err}")
                return
            # rdet.ops ignores an rdet._C built for another torch (its ABI may differ) and compiles anew
            info = {"torch": torch.__version__, "cuda": torch.version.cuda if with_cuda else None}
            folder = os.path.dirname(self.get_ext_fullpath(extension.name))
            with open(os.path.join(folder, "_C_build.json"), "w") as f:
                json.dump(info, f)

        def copy_extensions_to_source(self) -> None:
            """Editable installs copy the built extension into the source tree: its build record goes along."""
            super().copy_extensions_to_source()
            built = os.path.join(self.build_lib, "rdet", "_C_build.json")
            if os.path.exists(built):
                target = os.path.join(self.get_finalized_command("build_py").get_package_dir("rdet"), "_C_build.json")
                self.copy_file(built, target)

    return {"ext_modules": [ext], "cmdclass": {"build_ext": OptionalBuildExtension.with_options(use_ninja=True)}}


setup(**_extension_setup())
