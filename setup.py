"""Build of the optional compiled extension ``rdet._C`` (metadata lives in pyproject.toml).

The extension (C++ CPU kernels, plus CUDA kernels when torch has CUDA and nvcc exists) is an
accelerator, not a requirement: if torch is missing at build time or compilation fails, the install
still succeeds with a warning and :mod:`rdet.ops` uses its pure-PyTorch implementation.
Set ``RDET_NO_EXT=1`` to skip the build, ``RDET_NO_CUDA=1`` to build the CPU kernels only.
"""

from __future__ import annotations

import os
import shutil
import sys

from setuptools import setup

CSRC = os.path.join("rdet", "ops", "csrc")


def _warn(msg: str) -> None:
    bar = "=" * 78
    print(
        f"\n{bar}\nWARNING (rdet): {msg}\nrdet.ops will use its pure-PyTorch implementation "
        f"(correct, slower).\n{bar}\n",
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
        _warn(f"torch is not importable at build time ({err}); rdet._C not built")
        return {}

    sources = [os.path.join(CSRC, "cpu.cpp"), os.path.join(CSRC, "bindings.cpp")]
    cxx = ["-O3", "-std=c++17"]
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
            extra_compile_args={"cxx": cxx, "nvcc": ["-O3", "-std=c++17"]},
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

    return {"ext_modules": [ext], "cmdclass": {"build_ext": OptionalBuildExtension.with_options(use_ninja=True)}}


setup(**_extension_setup())
