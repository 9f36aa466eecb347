"""The rasterio scene reader (optional extra ``geo``): skipped cleanly when rasterio is not installed."""

from __future__ import annotations

import numpy as np
import pytest

from rdet.inference import io

rasterio = pytest.importorskip("rasterio")
from rasterio.transform import Affine  # noqa: E402

UTM = Affine(0.5, 0, 500000.0, 0, -0.5, 4000000.0)


def write(path, data, transform=UTM, crs="EPSG:32633", **kw):
    count = data.shape[0]
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=data.shape[2],
        height=data.shape[1],
        count=count,
        dtype=data.dtype,
        crs=crs,
        transform=transform,
        tiled=True,
        blockxsize=16,
        blockysize=16,
        **kw,
    ) as ds:
        ds.write(data)


def test_windows_georef_and_auto_choice(tmp_path):
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (3, 50, 40), dtype=np.uint8)
    write(tmp_path / "s.tif", img)
    with io.open_scene(tmp_path / "s.tif") as s:  # auto: rasterio for TIFFs when installed
        assert s.reader == "rasterio" and (s.width, s.height) == (40, 50)
        assert np.array_equal(s.read(5, 7, 20, 30), img[:, 7:37, 5:25].transpose(1, 2, 0))
        assert s.georef.transform == (500000.0, 0.5, 0.0, 4000000.0, 0.0, -0.5) and s.georef.epsg == 32633
    with io.open_scene(tmp_path / "s.tif", reader="tifffile") as t:  # the same answers from the other reader
        assert t.reader == "tifffile-windows" and np.array_equal(t.read(0, 0, 40, 50), img.transpose(1, 2, 0))
        assert t.georef == io.open_scene(tmp_path / "s.tif").georef


def test_sixteen_bit_multiband_nodata(tmp_path):
    data = np.zeros((5, 32, 32), np.uint16)
    data[0] = np.arange(32, dtype=np.uint16)[None] * 100  # band 1: 0 .. 3100
    data[1] = 2000
    data[2] = 4000
    data[:, :4, :4] = 9999  # nodata corner
    write(tmp_path / "m.tif", data, nodata=9999)
    with pytest.raises(ValueError, match="m.tif: 5 bands; choose the three"):
        io.open_scene(tmp_path / "m.tif", depth="stretch")
    with pytest.raises(ValueError, match="m.tif: 16-bit uint16 image"):
        io.open_scene(tmp_path / "m.tif", bands=(1, 2, 3))
    with io.open_scene(tmp_path / "m.tif", depth="stretch", bands=(1, 2, 3)) as s:
        assert s.nodata == 9999 and s.conversion == "stretch"
        px = s.read(0, 0, 32, 32)
        assert (px[:4, :4] == 0).all()  # nodata -> 0
        row = px[10, :, 0].astype(int)
        assert row[0] == 0 and row[-1] == 255 and (np.diff(row) >= 0).all()  # stretched 2..98 %, monotone
    with io.open_scene(tmp_path / "m.tif", depth="scale", bands=(3,)) as s:
        assert s.read(10, 10, 1, 1).tolist() == [[[16, 16, 16]]]  # 4000 / 257 = 15.6 -> 16, grey


def test_budget_and_bad_georeferencing(tmp_path):
    img = np.zeros((3, 40, 40), np.uint8)
    write(tmp_path / "b.tif", img)
    with pytest.raises(io.ImageTooLargeError, match="b.tif: 40 x 40"):
        io.open_scene(tmp_path / "b.tif", max_pixels=100)
    write(tmp_path / "nan.tif", img, transform=Affine(float("nan"), 0, 0, 0, -1, 0))
    with pytest.raises(ValueError, match="nan.tif: bad georeferencing"):
        io.open_scene(tmp_path / "nan.tif")
    # GDAL drops a zero-scale transform (and the CRS) when reading: written with tifffile's raw tags
    tifffile = pytest.importorskip("tifffile")
    tifffile.imwrite(
        tmp_path / "zero.tif",
        np.zeros((10, 10, 3), np.uint8),
        photometric="rgb",
        extratags=[(33550, "d", 3, (0.0, 0.5, 0.0), True), (33922, "d", 6, (0, 0, 0, 5.0, 4.0, 0), True)],
    )
    with pytest.raises(ValueError, match="zero.tif: bad georeferencing: .*zero pixel scale"):
        io.open_scene(tmp_path / "zero.tif")
    (tmp_path / "junk.tif").write_bytes(b"II*\x00junk")
    with pytest.raises(ValueError, match="junk.tif"):
        io.open_scene(tmp_path / "junk.tif", reader="rasterio")
