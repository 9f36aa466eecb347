"""Fuzz targets: image files through the header reader, the scene readers (pixel budget first) and decoding."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

import numpy as np

from rdet.data import images as I  # noqa: E741
from rdet.inference import io

from .registry import SilentlyWrong, target
from .strategies import image_bytes

_TMP = Path(tempfile.mkdtemp(prefix="rdet_fuzz_images_"))
atexit.register(shutil.rmtree, _TMP, ignore_errors=True)
BUDGET = 4_000_000  # pixels: every valid fuzz image is far smaller; every bomb far larger


@target("images: open_scene (PNG/JPEG/TIFF/BMP, bombs, truncation)", image_bytes(), where=lambda ex: ["fuzz-image"])
def scene(example) -> None:
    ext, data = example
    path = _TMP / f"fuzz-image.{ext}"
    path.write_bytes(data)
    try:
        header = I.read_header(path)
    except ValueError:
        header = None
    with io.open_scene(path, max_pixels=BUDGET, reader="auto" if ext != "tif" else "tifffile") as s:
        if s.width * s.height > BUDGET:
            raise SilentlyWrong(f"{s.width} x {s.height} opened over the budget of {BUDGET}")
        if header is not None and (s.width, s.height) != (header.width, header.height):
            raise SilentlyWrong(f"scene {s.width} x {s.height} but header {header.width} x {header.height}")
        px = s.read(0, 0, s.width, s.height)
        if px.dtype != np.uint8 or px.shape != (s.height, s.width, 3):
            raise SilentlyWrong(f"read gave {px.dtype} {px.shape}")
