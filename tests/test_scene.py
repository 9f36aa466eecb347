"""Scene readers: pixel budget before decode, planar TIFF windows, bit depth and bands, tile counts, georef checks."""

from __future__ import annotations

import numpy as np
import pytest
from test_images import png_header_only

from rdet.inference import io
from rdet.inference.tiling import count_windows, tile_windows

tifffile = pytest.importorskip("tifffile")


def test_open_scene_refuses_a_bomb_before_decoding(tmp_path):
    bomb = png_header_only(tmp_path / "bomb.png", 30000, 30000)
    with pytest.raises(io.ImageTooLargeError, match=r"bomb.png: 30000 x 30000 = 900,000,000 pixels"):
        io.open_scene(bomb)
    with pytest.raises(io.ImageTooLargeError, match="pixel budget of 1,000"):
        io.open_scene(np.zeros((100, 100, 3), np.uint8), max_pixels=1000)
    assert io.image_size(bomb) == (30000, 30000)
    # 30000 x 30000 at the default tiling: the 1369 tiles of the issue, counted without decoding
    assert io.tile_count(bomb, 1024, 200, max_pixels=10**9) == 1369
    with pytest.raises(io.ImageTooLargeError):
        io.tile_count(bomb)


def test_rdet_predict_passes_max_pixels(tmp_path):
    import rdet

    bomb = png_header_only(tmp_path / "bomb.png", 3000, 3000)
    # refused before the model is even loaded (the model path does not exist)
    with pytest.raises(io.ImageTooLargeError, match="max_pixels=9000000"):
        rdet.predict(bomb, tmp_path / "no_model.pt", max_pixels=1_000_000)


def test_count_windows_matches_tile_windows():
    for w, h, tile, overlap, scales in [
        (2500, 1800, 1024, 200, (1.0,)),
        (900, 700, 1024, 200, (1.0,)),
        (5000, 333, 512, 100, (0.5, 1.0, 1.5)),
        (1025, 1024, 1024, 0, (1.0,)),
    ]:
        want = sum(len(tile_windows(w, h, tile, overlap, s)) for s in scales)
        assert count_windows(w, h, tile, overlap, scales) == want
    assert count_windows(2500, 1800) == 6


@pytest.mark.parametrize("layout", [{"tile": (32, 32)}, {"rowsperstrip": 7}, {"tile": (16, 32), "compression": "zlib"}])
def test_planar_tiff_is_read_by_windows(tmp_path, layout):
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (3, 90, 70), dtype=np.uint8)  # band-interleaved: RR..GG..BB..
    path = tmp_path / "planar.tif"
    tifffile.imwrite(path, img, photometric="rgb", planarconfig="separate", **layout)
    with io.open_scene(path, reader="tifffile") as scene:
        assert scene.reader == "tifffile-windows" and (scene.width, scene.height) == (70, 90)
        rgb = img.transpose(1, 2, 0)
        assert np.array_equal(scene.read(10, 20, 33, 41), rgb[20:61, 10:43])
        assert np.array_equal(scene.read(0, 0, 70, 90), rgb)
        # only the segments under a window were decoded, in every plane
        scene._cache.clear()
        scene.read(0, 0, 5, 5)
        assert len(scene._cache) == 3


def test_sixteen_bit_and_bands(tmp_path):
    img = np.zeros((4, 20, 30), np.uint16)
    img[0] = 1000
    img[1] = np.linspace(100, 4000, 30, dtype=np.uint16)[None]
    img[2] = 65535
    img[3] = 7
    path = tmp_path / "multi.tif"
    tifffile.imwrite(path, img, planarconfig="separate", photometric="minisblack", tile=(16, 16))
    with pytest.raises(ValueError, match="multi.tif: 16-bit uint16 image"):
        io.open_scene(path, reader="tifffile")
    with io.open_scene(path, reader="tifffile", depth="scale") as s:
        assert s.conversion == "scale"
        px = s.read(0, 0, 30, 20)
        assert px.dtype == np.uint8 and px[0, 0].tolist() == [4, 0, 255]  # 1000/257, 100/257, 65535/257
    with io.open_scene(path, reader="tifffile", depth="stretch", bands=(2, 2, 2)) as s:
        px = s.read(0, 0, 30, 20)[..., 0]
        assert px[0, 0] == 0 and px[0, -1] == 255 and (np.diff(px[0].astype(int)) >= 0).all()
    with pytest.raises(ValueError, match="bands must be 1 or 3 band numbers in 1..4"):
        io.open_scene(path, reader="tifffile", depth="scale", bands=(5, 1, 1))
    with io.open_scene(path, reader="tifffile", depth="scale", bands=(4,)) as s:
        assert s.read(0, 0, 1, 1).tolist() == [[[0, 0, 0]]]  # band 4 = 7 -> 0 as grey
    many = tmp_path / "six.tif"
    tifffile.imwrite(many, np.zeros((6, 8, 8), np.uint8), planarconfig="separate", photometric="minisblack")
    with pytest.raises(ValueError, match="six.tif: 6 bands; choose the three"):
        io.open_scene(many, reader="tifffile")


def test_non_windowable_tiff_checks_the_budget_first(tmp_path):
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, np.zeros((40, 50), np.uint8), photometric="minisblack")
    with pytest.raises(io.ImageTooLargeError):
        io.open_scene(path, max_pixels=100, reader="tifffile")


def test_bad_georeferencing_is_an_error_naming_the_file(tmp_path):
    img = np.zeros((10, 10, 3), np.uint8)
    path = tmp_path / "nan.tif"
    tifffile.imwrite(
        path,
        img,
        photometric="rgb",
        extratags=[(33550, "d", 3, (float("nan"), 0.5, 0.0), True), (33922, "d", 6, (0, 0, 0, 5.0, 4.0, 0), True)],
    )
    with pytest.raises(ValueError, match=r"nan.tif: bad georeferencing: .* not finite"):
        io.open_scene(path, reader="tifffile")
    tifffile.imwrite(
        tmp_path / "zero.tif",
        img,
        photometric="rgb",
        extratags=[(33550, "d", 3, (0.0, 0.5, 0.0), True), (33922, "d", 6, (0, 0, 0, 5.0, 4.0, 0), True)],
    )
    with pytest.raises(ValueError, match=r"zero.tif: bad georeferencing: .* zero pixel scale"):
        io.open_scene(tmp_path / "zero.tif", reader="tifffile")
    tifffile.imwrite(
        tmp_path / "keys.tif",
        img,
        photometric="rgb",
        extratags=[
            (33550, "d", 3, (1.0, 1.0, 0.0), True),
            (33922, "d", 6, (0, 0, 0, 5.0, 4.0, 0), True),
            (34735, "H", 4, (1, 1, 0, 9), True),
        ],
    )
    with pytest.raises(ValueError, match=r"keys.tif: bad georeferencing tags: GeoKeyDirectory has 4 values"):
        io.open_scene(tmp_path / "keys.tif", reader="tifffile")


def test_readers_refuse_unknown_options(tmp_path):
    with pytest.raises(ValueError, match="reader must be one of"):
        io.open_scene(np.zeros((2, 2, 3), np.uint8), reader="gdal")
    with pytest.raises(ValueError, match="depth must be one of"):
        io.open_scene(np.zeros((2, 2, 3), np.uint8), depth="clip")
    png = png_header_only(tmp_path / "x.png", 10, 10)
    with pytest.raises(ValueError, match="reader='tifffile' reads TIFF files only"):
        io.open_scene(png, reader="tifffile")
