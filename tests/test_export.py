"""Export end to end: export each NMS mode, run the file in ONNX Runtime, compare with PyTorch.

A tiny Rotated RetinaNet (R-18, 32-channel FPN/head, 3 classes, 128 px) with the classification bias set to 0
(scores around 0.5) so that many candidates pass the score threshold and NMS has real work to do.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")


from rdet import ops  # noqa: E402
from rdet.commands.export import cli  # noqa: E402
from rdet.config import Config  # noqa: E402
from rdet.export import nms_onnx  # noqa: E402
from rdet.export.onnx_export import ExportGraph, export_onnx, read_metadata  # noqa: E402
from rdet.export.rotated_nms_op import PLUGIN_SPEC, NMSParams, rotated_nms_batched, unpack  # noqa: E402
from rdet.export.runtime import Runner  # noqa: E402
from rdet.models.build import build_model  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PLUGIN_DIR = ROOT / "export" / "plugins" / "rotated_nms"
SIZE = 128
PARAMS = dict(score_threshold=0.5, iou_threshold=0.3, max_det=40, pre_nms_topk=200)


@pytest.fixture(scope="module")
def config(tiny_config) -> Config:
    return tiny_config(("plane", "ship", "car"))


@pytest.fixture(scope="module")
def model(config):
    torch.manual_seed(0)
    m = build_model(config).eval()
    with torch.no_grad():
        m.bbox_head.retina_cls.bias.zero_()  # random-init scores near 0.5 instead of the 0.01 prior
    return m


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    """4 different images, ``uint8 [4, 3, 128, 128]``."""
    return np.random.default_rng(1).integers(0, 256, (4, 3, SIZE, SIZE), dtype=np.uint8)


@pytest.fixture(scope="module")
def reference(model, images) -> list[dict]:
    """PyTorch: the export graph in eager mode (model.decode + rdet.ops NMS), as numpy dicts."""
    with torch.no_grad():
        out = ExportGraph(model, "plugin", NMSParams(**PARAMS))(torch.from_numpy(images))
    return [{k: v.numpy() for k, v in d.items()} for d in unpack(*out)]


@pytest.fixture(scope="module")
def exported(model, tmp_path_factory):
    """Export each mode once (dynamic batch), on first use."""
    folder = tmp_path_factory.mktemp("onnx")
    cache: dict[str, Path] = {}

    def get(mode: str) -> Path:
        if mode not in cache:
            cache[mode] = export_onnx(
                model, folder / f"tiny_{mode}.onnx", nms=mode, dynamic_batch=True, imgsz=SIZE, **PARAMS
            )
        return cache[mode]

    return get


def assert_same_detections(got: dict, want: dict) -> None:
    """Same keep-set in the same order (labels), boxes within 1e-3 px, scores within 1e-5."""
    assert got["labels"].tolist() == want["labels"].tolist()
    np.testing.assert_allclose(got["boxes"], want["boxes"], rtol=0, atol=1e-3)
    np.testing.assert_allclose(got["scores"], want["scores"], rtol=0, atol=1e-5)


# ------------------------------------------------------------------------------------ graph checks
@pytest.mark.parametrize("mode", ["none", "plugin", "onnx"])
def test_graph_is_valid_and_documented(exported, model, mode):
    proto = onnx.load(str(exported(mode)))
    onnx.checker.check_model(proto, full_check=True)
    meta = read_metadata(proto)
    assert meta["class_names"] == ["plane", "ship", "car"]
    assert meta["angle_version"] == "le90" and meta["input_size"] == [SIZE, SIZE] and meta["nms"] == mode
    assert meta["rdet_version"] and meta["input_dtype"] == "uint8" and meta["batch"] is None
    assert meta["nms_params"] == dict(PARAMS, class_agnostic=False)
    inp = proto.graph.input[0].type.tensor_type
    assert inp.elem_type == onnx.TensorProto.UINT8
    assert [d.dim_param or d.dim_value for d in inp.shape.dim] == ["batch", 3, SIZE, SIZE]
    outs = {o.name: [d.dim_param or d.dim_value for d in o.type.tensor_type.shape.dim] for o in proto.graph.output}
    if mode == "none":
        n = sum(s * s for s in (16, 8, 4, 2, 1)) * 9  # P3-P7 locations x 9 anchors
        assert outs == {"boxes": ["batch", n, 5], "scores": ["batch", n, 3]}
    else:
        assert outs == {
            "num_dets": ["batch", 1],
            "det_boxes": ["batch", 40, 5],
            "det_scores": ["batch", 40],
            "det_classes": ["batch", 40],
        }
    domains = {(n.domain, n.op_type) for n in proto.graph.node if n.domain not in ("", "ai.onnx")}
    if mode == "plugin":
        assert domains == {("rdet", "RotatedNMS")}
        assert {(i.domain, i.version) for i in proto.opset_import} >= {("rdet", 1)}
    else:
        assert domains == set()  # standard ops only (Loop bodies are built from standard ops too)
        assert {i.domain for i in proto.opset_import} <= {"", "ai.onnx"}


def test_plugin_node_attributes_match_creator_fields(exported):
    """The node's attributes are the creator's PluginFields (names and types) plus the parser's lookup keys."""
    node = next(n for n in onnx.load(str(exported("plugin"))).graph.node if n.domain == "rdet")
    onnx_types = {
        onnx.AttributeProto.FLOAT: "float",
        onnx.AttributeProto.INT: "int",
        onnx.AttributeProto.STRING: "string",
    }
    attrs = {a.name: onnx_types[a.type] for a in node.attribute}
    spec = {f["name"]: f["type"] for f in PLUGIN_SPEC["fields"] + PLUGIN_SPEC["parser_attributes"]}
    assert attrs == spec
    values = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    assert values["plugin_version"] == b"1" and values["plugin_namespace"] == b"rdet"
    # the node orders the K candidates of the per-level selection: sum over P3-P7 of min(200, rows * 3 classes)
    k = sum(min(200, s * s * 9 * 3) for s in (16, 8, 4, 2, 1))
    assert k == 735 and values["max_det"] == 40 and values["pre_nms_topk"] == k and values["class_agnostic"] == 0
    assert math.isclose(values["iou_threshold"], 0.3, rel_tol=1e-6)
    assert node.op_type == PLUGIN_SPEC["plugin_name"] == "RotatedNMS"

    # The C++ creator's declared fields, parsed from the marked block of RotatedNMSPlugin.cpp. The TensorRT
    # ONNX parser turns FLOAT attributes into kFLOAT32 fields, INT into kINT32, STRING into kCHAR.
    src = (PLUGIN_DIR / "RotatedNMSPlugin.cpp").read_text()
    block = src.split("// rdet:plugin-fields-begin")[1].split("// rdet:plugin-fields-end")[0]
    declared = re.findall(r'\{"(\w+)",\s*PluginFieldType::(k\w+)\}', block)
    trt_type = {"float": "kFLOAT32", "int": "kINT32", "string": "kCHAR"}
    assert declared == [(f["name"], trt_type[f["type"]]) for f in PLUGIN_SPEC["fields"]]
    for const, key in (
        ("kPluginName", "plugin_name"),
        ("kPluginVersion", "plugin_version"),
        ("kPluginNamespace", "plugin_namespace"),
    ):
        assert re.search(rf'{const}\[\] = "{re.escape(PLUGIN_SPEC[key])}";', src), const


# ------------------------------------------------------------------------- ONNX Runtime == PyTorch
@pytest.mark.parametrize("mode", ["none", "plugin", "onnx"])
def test_onnxruntime_equals_pytorch_batch_1_and_4(exported, reference, images, mode):
    runner = Runner(exported(mode))
    batch = runner.run(images)  # batch 4, different images
    single = [runner.run(images[i])[0] for i in range(4)]  # batch 1 each
    assert len(batch) == 4
    for i in range(4):
        assert 5 <= len(reference[i]["labels"]) <= PARAMS["max_det"]
        assert_same_detections(batch[i], reference[i])
        for k in ("boxes", "scores", "labels"):  # no cross-talk between images of a batch
            np.testing.assert_array_equal(batch[i][k], single[i][k])
    assert all(not np.array_equal(reference[0]["scores"], r["scores"]) for r in reference[1:])  # distinct images


def test_none_mode_raw_outputs_equal_decode(exported, model, images):
    sess = ort.InferenceSession(str(exported("none")), providers=["CPUExecutionProvider"])
    boxes, scores = sess.run(None, {"images": images})
    x = (torch.from_numpy(images).float() - torch.tensor([123.675, 116.28, 103.53]).view(1, 3, 1, 1)) / torch.tensor(
        [58.395, 57.12, 57.375]
    ).view(1, 3, 1, 1)
    with torch.no_grad():
        want_b, want_s = model.decode(x, normalized=True)  # normalised by hand: the graph must agree
    np.testing.assert_allclose(boxes, want_b.numpy(), rtol=0, atol=1e-3)
    np.testing.assert_allclose(scores, want_s.numpy(), rtol=0, atol=1e-5)


def test_nms_actually_suppresses(model, images, reference):
    """Guard against a vacuous comparison: NMS removes candidates that pass the score threshold."""
    with torch.no_grad():
        boxes, scores = ExportGraph(model, "none", NMSParams(**PARAMS))(torch.from_numpy(images))
    for b in range(4):
        above = int((scores[b].reshape(-1).sort(descending=True).values[: PARAMS["pre_nms_topk"]] > 0.5).sum())
        assert above > len(reference[b]["labels"]) + 10


def test_every_mode_clamps_centres_into_the_input(config, tmp_path):
    """MMRotate's test-time clamp (cx in [0, W - 1], cy in [0, H - 1]) is inside every exported graph: a head
    pushing every centre 3 anchor widths right gives boxes at x = W - 1 exactly, never beyond."""
    torch.manual_seed(0)
    m = build_model(config).eval()
    with torch.no_grad():
        m.bbox_head.retina_cls.bias.zero_()
        m.bbox_head.retina_reg.weight.zero_()
        bias = torch.zeros(m.num_anchors, 5)
        bias[:, 0] = 3.0
        m.bbox_head.retina_reg.bias.copy_(bias.reshape(-1))
    img = np.random.default_rng(2).integers(0, 256, (1, 3, 64, 64), dtype=np.uint8)
    params = dict(score_threshold=0.0, iou_threshold=0.3, max_det=300, pre_nms_topk=200)
    for mode in ("none", "plugin", "onnx"):
        path = export_onnx(m, tmp_path / f"{mode}.onnx", nms=mode, imgsz=64, **params)
        if mode == "none":  # the raw outputs
            boxes = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"images": img})[0]
        else:
            boxes = Runner(path).run(img)[0]["boxes"]
        assert boxes[..., 0].max() == 63 and boxes[..., 0].min() >= 0, mode
        assert boxes[..., 1].max() <= 63 and boxes[..., 1].min() >= 0, mode


# ---------------------------------------------------------------- the standard-op NMS, unit level
def test_box_iou_pairs_known_answers():
    b1 = torch.tensor(
        [
            [10, 10, 8, 4, 0.3],
            [10, 10, 8, 4, 0.0],
            [0, 0, 2, 2, 0],
            [0, 0, 10, 10, 0],
            [0, 0, 0, 4, 0.2],
            [0, 0, 4, 4, 0],
            [0, 0, 4, 2, math.pi / 2],
            [1e4, 1e4, 4, 4, 0],
        ]
    )
    b2 = torch.tensor(
        [
            [10, 10, 8, 4, 0.3],
            [10, 10, 8, 4, math.pi / 2],
            [2, 0, 2, 2, 0],
            [1, 1, 2, 2, 0.5],
            [0, 0, 3, 4, 0.2],
            [100, 100, 4, 4, 0],
            [0, 0, 2, 4, 0],
            [1e4 + 2, 1e4, 4, 4, 0],
        ]
    )
    # identical; cross of 8x4 boxes: 16 / (32 + 32 - 16); touching squares; 2x2 inside 10x10: 4 / 100;
    # zero-area box; far apart; the same box in two angle conventions; half overlap: 8 / (16 + 16 - 8)
    want = torch.tensor([1.0, 1 / 3, 0.0, 0.04, 0.0, 0.0, 1.0, 1 / 3])
    got = nms_onnx.box_iou_pairs(b1, b2)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
    torch.testing.assert_close(
        got.double(), ops.box_iou_rotated(b1.double(), b2.double(), aligned=True), atol=1e-5, rtol=0
    )


def test_box_iou_pairs_matches_rdet_ops_random():
    g = torch.Generator().manual_seed(3)
    n = 3000
    b1 = torch.cat(
        [
            torch.rand(n, 2, generator=g) * 50 + 500,
            torch.rand(n, 2, generator=g) * 30 + 1,
            (torch.rand(n, 1, generator=g) - 0.5) * 4,
        ],
        1,
    )
    b2 = torch.cat(
        [
            b1[:, :2] + torch.randn(n, 2, generator=g) * 8,
            torch.rand(n, 2, generator=g) * 30 + 1,
            (torch.rand(n, 1, generator=g) - 0.5) * 4,
        ],
        1,
    )
    got = nms_onnx.box_iou_pairs(b1, b2).double()
    want = ops.box_iou_rotated(b1.double(), b2.double(), aligned=True)
    assert (want > 0.05).sum() > 500
    torch.testing.assert_close(got, want, atol=2e-6, rtol=0)


def adversarial_nms_inputs(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Random boxes ``[3, 150, 5]`` with exact duplicates, and scores ``[3, 150, 3]`` with exact ties."""
    g = torch.Generator().manual_seed(seed)
    b, n, c = 3, 150, 3
    boxes = torch.cat(
        [
            torch.rand(b, n, 2, generator=g) * 80,
            torch.rand(b, n, 2, generator=g) * 20 + 2,
            (torch.rand(b, n, 1, generator=g) - 0.5) * 3,
        ],
        -1,
    )
    boxes[:, 10:20] = boxes[:, :10]  # exact duplicates
    scores = torch.rand(b, n, c, generator=g)
    scores[:, 30:40] = scores[:, 40:50]  # exact score ties
    return boxes, scores


@pytest.mark.parametrize(("class_agnostic", "iou"), [(False, 0.2), (True, 0.0), (False, -0.5)])
def test_standard_op_nms_equals_rdet_ops_keep_sets(class_agnostic, iou):
    boxes, scores = adversarial_nms_inputs(int(iou * 10) + 7 * class_agnostic)
    p = NMSParams(iou_threshold=iou, score_threshold=0.2, max_det=300, pre_nms_topk=300, class_agnostic=class_agnostic)
    want = rotated_nms_batched(boxes, scores, p)
    got = nms_onnx.rotated_nms_onnx(boxes, scores, p)
    for w, x in zip(want, got):
        assert w.dtype == x.dtype and w.shape == x.shape
        torch.testing.assert_close(x, w, atol=0, rtol=0)
    n = want[0][:, 0]
    assert (n >= 1).all() and (n < 300).all()  # never truncated by max_det: the whole keep-set is compared
    if iou < 0:
        assert n.tolist() == [3, 3, 3]  # IoU >= 0 > threshold: one survivor per class


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::torch.jit.TracerWarning")
def test_standard_op_nms_graph_in_onnxruntime(tmp_path):
    """The NMS part alone, exported and run in ONNX Runtime on duplicates and ties, equals rdet.ops."""
    p = NMSParams(iou_threshold=0.3, score_threshold=0.2, max_det=300, pre_nms_topk=250)

    class NMS(torch.nn.Module):
        def forward(self, boxes, scores):
            return nms_onnx.rotated_nms_onnx(boxes, scores, p)

    nms_onnx.register_onnx_symbolic(17)
    boxes, scores = adversarial_nms_inputs(11)
    path = tmp_path / "nms.onnx"
    torch.onnx.export(
        NMS(),
        (boxes[:1], scores[:1]),
        str(path),
        dynamo=False,
        opset_version=17,
        input_names=["boxes", "scores"],
        output_names=["n", "b", "s", "c"],
        dynamic_axes={k: {0: "batch"} for k in ("boxes", "scores", "n", "b", "s", "c")},
    )
    proto = onnx.load(str(path))
    assert nms_onnx.expand_greedy_keep(proto) == 1
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"boxes": boxes.numpy(), "scores": scores.numpy()})
    want = rotated_nms_batched(boxes, scores, p)
    for x, w in zip(got, want):
        np.testing.assert_array_equal(x, w.numpy())


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_greedy_loop_runs_in_onnxruntime(tmp_path):
    """The Loop that replaces ``rdet_export::greedy_keep`` after export equals the eager loop."""

    class Keep(torch.nn.Module):
        def forward(self, sup, valid):
            return torch.ops.rdet_export.greedy_keep(sup, valid)

    g = torch.Generator().manual_seed(0)
    k = 24
    sup = torch.triu(torch.rand(2, k, k, generator=g) > 0.7, diagonal=1)
    valid = torch.rand(2, k, generator=g) > 0.2
    nms_onnx.register_onnx_symbolic(17)
    path = tmp_path / "keep.onnx"
    torch.onnx.export(
        Keep(),
        (sup, valid),
        str(path),
        dynamo=False,
        opset_version=17,
        input_names=["sup", "valid"],
        output_names=["keep"],
    )
    proto = onnx.load(str(path))
    assert nms_onnx.expand_greedy_keep(proto) == 1
    onnx.checker.check_model(proto, full_check=True)
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    sup2 = torch.triu(torch.rand(2, k, k, generator=g) > 0.5, diagonal=1)
    for s in (sup, sup2):
        (got,) = sess.run(None, {"sup": s.numpy(), "valid": valid.numpy()})
        np.testing.assert_array_equal(got, nms_onnx.greedy_keep(s, valid).numpy())
    # hand case: 0 suppresses 1, 1 would suppress 2 but is gone, so 2 stays; 3 is invalid
    s = torch.zeros(1, 4, 4, dtype=torch.bool)
    s[0, 0, 1] = s[0, 1, 2] = True
    assert nms_onnx.greedy_keep(s, torch.tensor([[True, True, True, False]])).tolist() == [[True, False, True, False]]


def test_rotated_nms_op_padding_and_fp16():
    boxes = torch.tensor([[[10.0, 10, 8, 4, 0], [10.5, 10, 8, 4, 0], [40, 40, 6, 6, 0.5]]])
    scores = torch.tensor([[[0.9, 0.1], [0.8, 0.7], [0.05, 0.6]]])
    p = NMSParams(iou_threshold=0.5, score_threshold=0.3, max_det=4, pre_nms_topk=10)
    num, bx, sc, cl = rotated_nms_batched(boxes, scores, p)
    # candidates by score: (0, c0) .9, (1, c0) .8, (1, c1) .7, (2, c1) .6; (1, c0) overlaps (0, c0): dropped
    assert num.tolist() == [[3]] and num.dtype == torch.int32 and cl.dtype == torch.int32
    assert cl.tolist() == [[0, 1, 1, -1]]
    torch.testing.assert_close(sc, torch.tensor([[0.9, 0.7, 0.6, 0.0]]))
    assert bx[0, 3].abs().sum() == 0
    num_h, bx_h, sc_h, cl_h = rotated_nms_batched(boxes.half(), scores.half(), p)
    assert bx_h.dtype == torch.float16 and sc_h.dtype == torch.float16 and cl_h.tolist() == cl.tolist()
    agn = rotated_nms_batched(boxes, scores, NMSParams(0.5, 0.3, 4, 10, class_agnostic=True))
    assert agn[3].tolist() == [[0, 1, -1, -1]]  # (1, c1) now suppressed by (0, c0) across classes


# ------------------------------------------------------------------------------ checkpoint and CLI
def test_cli_export_fixed_batch_float_input(model, images, reference, tmp_path, config):
    from rdet.checkpoint import save_checkpoint

    ckpt = save_checkpoint(tmp_path / "tiny.pth", model, config)
    out = tmp_path / "tiny_fixed.onnx"
    args = [
        str(ckpt),
        "--format",
        "onnx",
        "--output",
        str(out),
        "--nms",
        "onnx",
        "--batch",
        "2",
        "--imgsz",
        str(SIZE),
        "--input-dtype",
        "float32",
        "--score-thr",
        "0.5",
        "--iou-thr",
        "0.3",
        "--max-det",
        "40",
        "--pre-nms-topk",
        "200",
    ]
    assert cli(args) == 0
    proto = onnx.load(str(out))
    assert [d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim] == [2, 3, SIZE, SIZE]
    runner = Runner(out)
    got = runner.run(images[:3].astype(np.float32))  # 3 images through a batch-2 graph: the last chunk is padded
    assert len(got) == 3
    for g, w in zip(got, reference[:3]):
        assert_same_detections(g, w)
    nhwc = runner.run(images[:2].transpose(0, 2, 3, 1))  # HWC layout accepted too
    assert_same_detections(nhwc[1], reference[1])


def test_bad_inputs(model, tmp_path, exported, config):
    with pytest.raises(ValueError, match="opset"):
        export_onnx(model, tmp_path / "a.onnx", opset=16, imgsz=SIZE)
    with pytest.raises(ValueError, match="divisible"):
        export_onnx(model, tmp_path / "a.onnx", imgsz=100)
    with pytest.raises(ValueError, match="nms must be"):
        export_onnx(model, tmp_path / "a.onnx", nms="fast", imgsz=SIZE)
    with pytest.raises(ValueError, match="unsupported model Linear"):
        export_onnx(torch.nn.Linear(2, 2), tmp_path / "a.onnx", imgsz=SIZE)
    with pytest.raises(ValueError, match="max_det"):
        export_onnx(model, tmp_path / "a.onnx", imgsz=SIZE, max_det=0)
    # a checkpoint whose config cannot be rebuilt
    from rdet.config import to_dict

    cfg = to_dict(config)
    cfg["model"]["head"]["num_clases"] = 3
    torch.save({"model": model.state_dict(), "config": cfg}, tmp_path / "broken.pth")
    with pytest.raises(ValueError, match=r"cannot export .*broken\.pth.*num_clases"):
        export_onnx(tmp_path / "broken.pth", tmp_path / "a.onnx", imgsz=SIZE)
    assert (
        cli(["--model", str(tmp_path / "broken.pth"), "--output", str(tmp_path / "a.onnx"), "--imgsz", str(SIZE)]) == 2
    )
    assert cli(["--model", str(tmp_path / "broken.pth"), "--format", "trt", "--output", str(tmp_path / "a.onnx")]) == 2
    assert not (tmp_path / "a.onnx").exists()
    # runner
    runner = Runner(exported("onnx"))
    with pytest.raises(ValueError, match="128x128"):
        runner.run(np.zeros((1, 3, 64, 64), np.uint8))
    with pytest.raises(FileNotFoundError):
        Runner(tmp_path / "missing.onnx")
    with pytest.raises(ValueError, match="unknown format"):
        (tmp_path / "x.pt").write_bytes(b"0")
        Runner(tmp_path / "x.pt")
    with pytest.raises(ValueError, match="shape"):
        rotated_nms_batched(torch.zeros(1, 3, 4), torch.zeros(1, 3, 2))


# ------------------------------------------------------------------------------- native / TensorRT
def _has_tensorrt() -> bool:
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return False
    return torch.cuda.is_available()


@pytest.mark.skipif(_has_tensorrt(), reason="TensorRT is installed")
def test_tensorrt_absent_is_a_clear_error(exported, tmp_path):
    from rdet.export.trt_build import build_engine

    with pytest.raises(RuntimeError, match="TensorRT is not installed"):
        build_engine(exported("onnx"), tmp_path / "m.engine")
    (tmp_path / "m.engine").write_bytes(b"not an engine")
    with pytest.raises(RuntimeError, match="TensorRT is not installed"):
        Runner(tmp_path / "m.engine")
    with pytest.raises(ValueError, match="plugin_lib"):
        build_engine(exported("plugin"), tmp_path / "m.engine")


@pytest.mark.gpu
@pytest.mark.skipif(not _has_tensorrt(), reason="needs TensorRT and a CUDA GPU")
def test_tensorrt_engine_equals_pytorch(exported, reference, images, tmp_path):
    from rdet.export.trt_build import build_engine

    engine = build_engine(exported("onnx"), tmp_path / "tiny.engine", max_batch=4)
    got = Runner(engine, device="cuda").run(images)
    for g, w in zip(got, reference):
        assert_same_detections(g, w)
    bad = tmp_path / "garbage.engine"
    bad.write_bytes(b"0" * 64)
    (tmp_path / "garbage.engine.json").write_text(json.dumps(read_metadata(exported("onnx"))))
    with pytest.raises(RuntimeError, match="garbage.engine"):
        Runner(bad, device="cuda")


@pytest.mark.gpu
@pytest.mark.skipif(
    "CUDAExecutionProvider" not in ort.get_available_providers() or not torch.cuda.is_available(),
    reason="needs onnxruntime-gpu and a CUDA GPU",
)
@pytest.mark.parametrize("mode", ["plugin", "onnx"])
def test_onnxruntime_cuda_provider(exported, reference, images, mode):
    got = Runner(exported(mode), device="cuda").run(images)
    for g, w in zip(got, reference):
        assert_same_detections(g, w)
