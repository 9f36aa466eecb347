"""Exported detections equal ``predict``'s (issue 17.3): every NMS mode, in ONNX Runtime, on a random R-18 at
score threshold 0 (every candidate passes: the per-level top-k decides), an R3Det whose ``oc`` angles must be
regularised, and borders where MMRotate's centre clamp acts."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("onnxruntime_extensions")

from rdet.export.onnx_export import export_onnx, read_metadata  # noqa: E402
from rdet.export.runtime import Runner  # noqa: E402
from rdet.models.build import build_model  # noqa: E402

SIZE = 128
MODES = ("none", "plugin", "onnx")


def random_model(config):
    torch.manual_seed(0)
    m = build_model(config).eval()
    head = m.bbox_head if hasattr(m, "bbox_head") else m.bbox_head_refine[-1]
    with torch.no_grad():
        head.retina_cls.bias.zero_()  # scores near 0.5: a random model detects
    return m


def images() -> np.ndarray:
    return np.random.default_rng(1).integers(0, 256, (2, 3, SIZE, SIZE), dtype=np.uint8)


def assert_export_equals_predict(model, tmp_path, name: str) -> list:
    """Export in every mode (dynamic batch), run a batch of 2 in ONNX Runtime, compare with ``predict``."""
    x = images()
    with torch.no_grad():
        want = model.predict(torch.from_numpy(x))
    assert all(len(d) >= 10 for d in want)
    for mode in MODES:
        path = export_onnx(model, tmp_path / f"{name}_{mode}.onnx", nms=mode, imgsz=SIZE, dynamic_batch=True)
        with torch.no_grad():
            assert read_metadata(path)["num_per_level"] == model.head_outputs(torch.from_numpy(x)).num_per_level
        for got, d in zip(Runner(path).run(x), want):
            assert got["labels"].tolist() == d.labels.tolist(), mode  # the same detections, in the same order
            np.testing.assert_allclose(got["boxes"], d.boxes.numpy(), rtol=0, atol=1e-3, err_msg=mode)
            np.testing.assert_allclose(got["scores"], d.scores.numpy(), rtol=0, atol=1e-5, err_msg=mode)
    return want


def with_test_cfg(config, nms_pre: int):
    t = config.model.test
    t.score_thr, t.nms_pre, t.max_per_img = 0.0, nms_pre, 2000
    return config


@pytest.mark.parametrize("nms_pre", [25])
def test_r18_at_score_threshold_0(tiny_config, tmp_path, nms_pre):
    """The per-level cut decides which candidates reach NMS (a global top-k would keep others, checked). (Over
    3840 candidates, the onnx mode orders them in TopK rounds: tests/test_selection.py.)"""
    model = random_model(with_test_cfg(tiny_config(("plane", "ship", "car")), nms_pre))
    want = assert_export_equals_predict(model, tmp_path, f"r18_{nms_pre}")
    if nms_pre < 100:  # not vacuous: the old global selection gives other detections
        from rdet.export.rotated_nms_op import NMSParams, rotated_nms_batched, unpack

        with torch.no_grad():
            boxes, scores = model.decode(torch.from_numpy(images()))
        t = model.cfg.test
        glob = unpack(*rotated_nms_batched(boxes, scores, NMSParams(t.iou_thr, 0.0, 2000, nms_pre)))
        assert any(g["labels"].tolist() != d.labels.tolist() or len(g["labels"]) != len(d) for g, d in zip(glob, want))


def test_r3det_oc_angles_in_range(tiny_config, tmp_path):
    model = random_model(with_test_cfg(tiny_config(("plane", "ship"), r3det_stages=1), 2000))
    assert model.cfg.coder.angle_version == "oc"
    want = assert_export_equals_predict(model, tmp_path, "r3det")
    for mode in MODES:
        path = tmp_path / f"r3det_{mode}.onnx"
        for got in Runner(path).run(images()):
            a = got["boxes"][:, 4]
            assert len(a) and (a >= -np.pi / 2).all() and (a < 0).all(), mode
    import onnxruntime as ort

    raw = ort.InferenceSession(str(tmp_path / "r3det_none.onnx"), providers=["CPUExecutionProvider"])
    a = raw.run(None, {"images": images()})[0][..., 4]  # every decoded box of the none graph
    assert (a >= -np.pi / 2).all() and (a < 0).all()
    assert sum(len(d) for d in want) > 20


def test_plugin_candidate_limit_is_a_clear_error(tiny_config, tmp_path):
    """The plugin orders at most kMaxPreNmsTopk candidates: more per-level candidates are refused at export."""
    from pathlib import Path

    from rdet.export.rotated_nms_op import MAX_PRE_NMS_TOPK

    header = Path(__file__).resolve().parents[1] / "export/plugins/rotated_nms/RotatedNMSKernels.h"
    assert f"kMaxPreNmsTopk = {MAX_PRE_NMS_TOPK};" in header.read_text()
    model = random_model(tiny_config(("plane", "ship", "car")))
    # 256 px: levels of 9216, 2304, 576, 144, 36 rows -> 10000 + 6912 + 1728 + 432 + 108 = 19180 candidates
    with pytest.raises(ValueError, match=r"19180 candidates at 256x256 .* more than the 16384"):
        export_onnx(model, tmp_path / "big.onnx", nms="plugin", imgsz=256, pre_nms_topk=10000)
    assert not (tmp_path / "big.onnx").exists()
