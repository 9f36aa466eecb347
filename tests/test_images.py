"""Image headers, the pixel budget and safe decoding (rdet.data.images): bombs are refused from the header."""

from __future__ import annotations

import resource
import struct
import zlib

import cv2
import numpy as np
import pytest

from rdet.data import images as I  # noqa: E741


def png_header_only(path, width, height, bits=8, color=2):
    """A PNG that declares ``width x height`` but holds only the start of its data (a bomb's header)."""
    ihdr = struct.pack(">IIBBBBB", width, height, bits, color, 0, 0, 0)
    chunk = struct.pack(">I", 13) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    idat = zlib.compress(b"\0" * 1000)
    data = b"\x89PNG\r\n\x1a\n" + chunk + struct.pack(">I", len(idat)) + b"IDAT" + idat + b"\0\0\0\0"
    path.write_bytes(data)
    return path


def test_headers_of_every_format(tmp_path):
    img = np.zeros((7, 9, 3), np.uint8)
    for ext, fmt in ((".png", "png"), (".jpg", "jpeg"), (".bmp", "bmp"), (".tif", "tiff")):
        cv2.imwrite(str(tmp_path / f"a{ext}"), img)
        h = I.read_header(tmp_path / f"a{ext}")
        assert (h.format, h.width, h.height, h.channels, h.bits) == (fmt, 9, 7, 3, 8 if fmt != "bmp" else 24)
    cv2.imwrite(str(tmp_path / "deep.png"), np.zeros((5, 4), np.uint16))
    assert I.read_header(tmp_path / "deep.png").bits == 16
    assert I.image_size(tmp_path / "a.png") == (9, 7)


def test_tiff_headers_planar_tiled_bigtiff(tmp_path):
    tifffile = pytest.importorskip("tifffile")
    tifffile.imwrite(
        tmp_path / "p.tif", np.zeros((3, 40, 50), np.uint16), photometric="rgb", planarconfig="separate", tile=(16, 16)
    )
    h = I.read_header(tmp_path / "p.tif")
    assert (h.width, h.height, h.channels, h.bits, h.planar, h.tiled) == (50, 40, 3, 16, True, True)
    tifffile.imwrite(tmp_path / "b.tif", np.zeros((6, 11), np.uint8), bigtiff=True)
    assert I.image_size(tmp_path / "b.tif") == (11, 6)


def test_bomb_refused_from_the_header_in_constant_memory(tmp_path):
    # The bomb: 30000 x 30000 declared in a tiny file. Only the header is read; memory does not move.
    bomb = png_header_only(tmp_path / "bomb.png", 30000, 30000)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(I.ImageTooLargeError) as e:
        I.decode_image(bomb)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    msg = str(e.value)
    assert "bomb.png" in msg and "30000 x 30000 = 900,000,000 pixels" in msg
    assert f"{I.DEFAULT_MAX_PIXELS:,}" in msg and "max_pixels=900000000" in msg and "--max-pixels" in msg
    assert after - before < 50_000  # KiB: nothing was decoded
    assert isinstance(e.value, ValueError)
    with pytest.raises(I.ImageTooLargeError, match="exceeds the pixel budget of 100"):
        I.check_pixels("x.png", 11, 10, max_pixels=100)
    I.check_pixels("x.png", 10, 10, max_pixels=100)  # at the budget: fine
    with pytest.raises(ValueError, match="max_pixels must be a positive integer"):
        I.check_pixels("x.png", 1, 1, max_pixels=0)


def test_opencv_gigapixel_cap_never_surfaces(tmp_path):
    # 40000 x 30000 is over OpenCV's 2**30 cap: with a budget above it, the cv2.error becomes a ValueError.
    bomb = png_header_only(tmp_path / "giga.png", 40000, 30000)
    with pytest.raises(ValueError, match="giga.png") as e:
        I.decode_image(bomb, max_pixels=2_000_000_000)
    assert not isinstance(e.value, cv2.error)


@pytest.mark.parametrize(
    "data, reason",
    [
        (b"", "empty file"),
        (b"GIF89a....", "not a PNG, JPEG, BMP or TIFF"),
        (b"\x89PNG\r\n\x1a\n\0\0", "truncated PNG header"),
        (b"\xff\xd8\xff\xe0\x00", "truncated JPEG"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", "truncated JPEG"),
        (b"\xff\xd8\x00\x00", "corrupt JPEG"),
        (b"BM" + b"\0" * 10, "truncated BMP header"),
        (b"II*\x00\xff\xff\x00\x00", "truncated TIFF"),
        (b"II*\x00\x08\x00\x00\x00\x00\x00", "first image directory has 0 entries"),
    ],
)
def test_corrupt_headers_name_the_file(tmp_path, data, reason):
    f = tmp_path / "bad.img"
    f.write_bytes(data)
    with pytest.raises(ValueError, match=reason) as e:
        I.read_header(f)
    assert str(f) in str(e.value)


def test_zero_size_header(tmp_path):
    with pytest.raises(ValueError, match=r"zero-size image \(0 x 5\)"):
        I.read_header(png_header_only(tmp_path / "z.png", 0, 5))


def test_truncated_jpeg_and_png_are_refused(tmp_path):
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    ok, buf = cv2.imencode(".jpg", img)
    (tmp_path / "cut.jpg").write_bytes(buf.tobytes()[: len(buf) // 2])
    with pytest.raises(ValueError, match="cut.jpg: cannot decode the image: truncated JPEG"):
        I.decode_image(tmp_path / "cut.jpg")
    ok, buf = cv2.imencode(".png", img)
    (tmp_path / "cut.png").write_bytes(buf.tobytes()[: len(buf) - 20])
    with pytest.raises(ValueError, match="cut.png: cannot decode the image: truncated PNG"):
        I.decode_image(tmp_path / "cut.png")
    (tmp_path / "whole.jpg").write_bytes(cv2.imencode(".jpg", img)[1].tobytes())
    assert I.decode_image(tmp_path / "whole.jpg").shape == (64, 64, 3)


def test_damaged_jpeg_is_refused_and_the_warning_is_shown(tmp_path, capfd):
    rng = np.random.default_rng(1)
    data = bytearray(cv2.imencode(".jpg", rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))[1].tobytes())
    sos = data.find(b"\xff\xda")
    data[sos + 40 : sos + 60] = b"\xff\xd0" * 10  # restart markers in the middle of the scan: libjpeg only warns
    (tmp_path / "dam.jpg").write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"dam.jpg: cannot decode the image: damaged image data \(Corrupt JPEG data"):
        I.decode_image(tmp_path / "dam.jpg")
    assert "Corrupt JPEG data" in capfd.readouterr().err  # libjpeg's own words still reach the user


def test_bigtiff_offset_past_any_file(tmp_path):
    # found by the fuzz campaign: a BigTIFF whose first-directory offset does not fit a seek gave OSError
    (tmp_path / "big.tif").write_bytes(b"II+\x00\x08\x00\x00\x00" + b"\xff" * 8)
    with pytest.raises(ValueError, match="big.tif: cannot decode the image"):
        I.read_header(tmp_path / "big.tif")
