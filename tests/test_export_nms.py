"""Candidate selection and NMS of the export modes: top-k equals the sorted definition (ties), NaN scores are
dropped everywhere, IoU-bound pruning changes no keep-set, the greedy ONNX Loop, TensorRT's TopK limit."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest
import torch

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from rdet import ops
from rdet.commands.export import cli
from rdet.export import nms_onnx
from rdet.export.rotated_nms_op import NMSParams, register_onnx_symbolic, rotated_nms_batched
from rdet.models.selection import candidates, sorted_candidates


def export_nms(tmp_path, fn, boxes, scores, opset: int = 17):
    """``fn(boxes, scores)`` exported alone (dynamic batch) and loaded in ONNX Runtime."""

    class Module(torch.nn.Module):
        def forward(self, b, s):
            return fn(b, s)

    nms_onnx.register_onnx_symbolic(opset)
    register_onnx_symbolic(opset)
    path = tmp_path / "nms.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            Module(),
            (boxes, scores),
            str(path),
            dynamo=False,
            opset_version=opset,
            input_names=["boxes", "scores"],
            output_names=["n", "b", "s", "c"],
            dynamic_axes={k: {0: "batch"} for k in ("boxes", "scores", "n", "b", "s", "c")},
        )
    proto = onnx.load(str(path))
    nms_onnx.expand_greedy_keep(proto)  # the nms='onnx' graph's greedy step (no-op for the plugin node)
    return proto


def session(proto):
    return ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])


# ------------------------------------------------------------------------------- candidate selection
@pytest.mark.parametrize("seed", range(12))
def test_topk_selection_equals_sorted_selection_on_ties(seed):
    g = torch.Generator().manual_seed(seed)
    n, c = int(torch.randint(1, 80, (1,), generator=g)), int(torch.randint(1, 6, (1,), generator=g))
    scores = (torch.rand(n, c, generator=g) * 7).floor() / 7 - 0.25  # 7 levels: ties everywhere
    scores[torch.rand(n, c, generator=g) < 0.08] = float("nan")
    scores[torch.rand(n, c, generator=g) < 0.04] = float("inf")
    scores[torch.rand(n, c, generator=g) < 0.04] = -float("inf")
    scores[scores == 0] = -0.0  # -0 and +0 are equal scores, as in a sort
    for thr in (-1.0, -0.25, 0.0, 0.3):
        for k in (1, 2, 5, n * c // 2 + 1, n * c, n * c + 3):
            assert torch.equal(candidates(scores, thr, k), sorted_candidates(scores, thr, k)), (thr, k)


def test_topk_selection_cut_inside_a_tie_group():
    """2.4 M scores on 100 levels, K = 2000: the K-th score is shared by far more than the places left."""
    scores = (torch.rand(160_000, 15, generator=torch.Generator().manual_seed(0)) * 100).floor() / 100
    got = candidates(scores, 0.05, 2000)
    assert torch.equal(got, sorted_candidates(scores, 0.05, 2000))
    flat = scores.reshape(-1)
    kth = flat[got[-1]]
    assert int((flat == kth).sum()) > int((flat[got] == kth).sum()) > 0
    assert torch.equal(got[flat[got] == kth], torch.nonzero(flat == kth)[: int((flat[got] == kth).sum()), 0])


def nan_case() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Boxes [2, 40, 5], scores [2, 40, 3] with NaN at the top, and the same scores with NaN -> -inf."""
    g = torch.Generator().manual_seed(5)
    boxes = torch.cat([torch.rand(2, 40, 2, generator=g) * 60, torch.rand(2, 40, 2, generator=g) * 20 + 4], -1)
    boxes = torch.cat([boxes, torch.rand(2, 40, 1, generator=g)], -1)
    scores = torch.rand(2, 40, 3, generator=g)
    scores[0, :6, 0] = float("nan")
    scores[1] = float("nan")  # an image with no score at all
    scores[1, 3, 2] = 0.9
    return boxes, scores, torch.nan_to_num(scores, nan=-math.inf)


def test_nan_scores_are_dropped_in_every_mode(tmp_path):
    """NaN never takes a candidate place: every mode equals the same input with NaN -> -inf."""
    boxes, scores, clean = nan_case()
    p = NMSParams(iou_threshold=0.3, score_threshold=0.1, max_det=20, pre_nms_topk=8)
    want = rotated_nms_batched(boxes, clean, p)
    assert want[0].tolist() == [[int(want[0][0, 0])], [1]] and int(want[0][0, 0]) >= 4
    eager = rotated_nms_batched(boxes, scores, p)
    standard = nms_onnx.rotated_nms_onnx(boxes, scores, p)
    graph = session(export_nms(tmp_path, lambda b, s: nms_onnx.rotated_nms_onnx(b, s, p), boxes, scores))
    proto = export_nms(tmp_path, lambda b, s: rotated_nms_batched(b, s, p), boxes, scores)
    from onnxruntime_extensions import get_library_path

    from rdet.export.runtime import _register_pyop, _retarget_plugin_domain

    assert _retarget_plugin_domain(proto)
    _register_pyop()
    opts = ort.SessionOptions()
    opts.register_custom_ops_library(get_library_path())
    custom = ort.InferenceSession(proto.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    feeds = {"boxes": boxes.numpy(), "scores": scores.numpy()}
    for got in (eager, standard, graph.run(None, feeds), custom.run(None, feeds)):
        for x, w in zip(got, want):
            np.testing.assert_array_equal(np.asarray(x), w.numpy())


# ------------------------------------------------------------------------------ IoU-bound pruning
def random_pairs(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Box pairs of every kind: near and far from the origin, tiny, huge, thin, identical, zero-sized."""
    g = torch.Generator().manual_seed(seed)
    scale = torch.tensor([1.0, 1e2, 1e4])[torch.randint(0, 3, (n,), generator=g)]
    c1 = (torch.rand(n, 2, generator=g) - 0.5) * scale[:, None]
    size1 = torch.exp(torch.rand(n, 2, generator=g) * 9 - 3)  # 0.05 .. 400 px
    b1 = torch.cat([c1, size1, (torch.rand(n, 1, generator=g) - 0.5) * 4], 1)
    b2 = b1.clone()
    b2[:, :2] += torch.randn(n, 2, generator=g) * size1.mean(1, keepdim=True) * 0.5
    b2[:, 2:4] *= torch.exp(torch.randn(n, 2, generator=g) * 0.5)
    b2[:, 4] += torch.randn(n, generator=g) * 0.5
    b2[: n // 20] = b1[: n // 20]  # identical
    b2[n // 20 : n // 10, 2] = 0  # zero width
    return b1, b2


def test_iou_upper_bound_is_an_upper_bound():
    b1, b2 = random_pairs(60_000, 0)
    bound = nms_onnx.iou_upper_bound(b1, b2).double()
    iou = ops.box_iou_rotated(b1.double(), b2.double(), aligned=True)
    assert (iou > 0.3).sum() > 5000 and (bound < 0.1).sum() > 5000  # overlapping pairs and prunable ones
    # float32 rounding of the areas leaves the bound up to ~1e-7 under an IoU (identical boxes: 0.9999999 vs
    # 1); pruning subtracts BOUND_MARGIN, far more, before comparing with the threshold.
    worst = float((iou - bound).max())
    assert worst < 1e-6 <= nms_onnx.BOUND_MARGIN / 10, worst
    assert bool((bound <= 1 + 1e-6).all())


def test_box_iou_pairs_on_pairs_of_every_kind():
    """The clamped-ring IoU against rdet.ops (float64) on pairs near and far from the origin, tiny, huge and thin
    (0.05 x 400 px: a crossing computed from far-away corners must be snapped onto its line, or the error was
    3e-5)."""
    b1, b2 = random_pairs(60_000, 1)
    got = nms_onnx.box_iou_pairs(b1, b2).double()
    want = ops.box_iou_rotated(b1.double(), b2.double(), aligned=True)
    # float32 coordinates relative to box 1's centre: ~1e-6 relative error on the intersection
    assert (want > 0.3).sum() > 5000
    assert float((got - want).abs().max()) < 2e-6


def test_box_iou_pairs_is_exactly_zero_for_disjoint_boxes():
    """Disjoint boxes whose bounding boxes overlap: IoU exactly 0 (a threshold of 0 suppresses any overlap);
    boxes sharing an edge at any angle: 0 up to rounding, as in rdet.ops."""
    g = torch.Generator().manual_seed(4)
    n = 20_000
    b1 = torch.cat(
        [
            torch.rand(n, 2, generator=g) * 1000,
            torch.rand(n, 2, generator=g) * 60 + 2,
            torch.rand(n, 1, generator=g) * 3 - 1.5,
        ],
        1,
    )
    b2 = torch.cat(
        [
            b1[:, :2] + torch.randn(n, 2, generator=g) * 40,
            torch.rand(n, 2, generator=g) * 60 + 2,
            torch.rand(n, 1, generator=g) * 3 - 1.5,
        ],
        1,
    )
    want = ops.box_iou_rotated(b1.double(), b2.double(), aligned=True)
    disjoint = (want == 0) & nms_onnx.aabb_overlap(b1, b2)
    assert disjoint.sum() > 1000
    assert nms_onnx.box_iou_pairs(b1[disjoint], b2[disjoint]).eq(0).all()
    touching = b1.clone()  # moved by its own width along its own x axis
    touching[:, 0] += b1[:, 2] * torch.cos(b1[:, 4])
    touching[:, 1] += b1[:, 2] * torch.sin(b1[:, 4])
    assert float(nms_onnx.box_iou_pairs(b1, touching).max()) < 1e-5
    assert float(ops.box_iou_rotated(b1.double(), touching.double(), aligned=True).max()) < 1e-5


def test_empty_boxes_as_in_rdet_ops():
    """A box with a side <= rdet.ops' MIN_SIDE is empty: IoU 0 with anything (itself included), never suppressing."""
    b1 = torch.tensor([[5.0, 5, 1e-7, 4, 0.3], [5, 5, 4, 0, 0], [5, 5, 4, 4, 0], [1e3, 1e3, 2e-6, 3e-6, 1.0]])
    b2 = torch.tensor([[5.0, 5, 1e-7, 4, 0.3], [5, 5, 4, 4, 0], [5, 5, 1e-7, 1e-7, 0], [1e3, 1e3, 2e-6, 3e-6, 1.0]])
    got = nms_onnx.box_iou_pairs(b1, b2).double()
    want = ops.box_iou_rotated(b1.double(), b2.double(), aligned=True)
    assert want[:3].tolist() == [0.0, 0.0, 0.0] and want[3] > 0.99  # 2e-6 px is above MIN_SIDE: a real box
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
    assert bool((nms_onnx.iou_upper_bound(b1, b2).double() >= want - 1e-6).all())
    boxes = torch.cat([b1, b2])[None]
    scores = torch.rand(1, 8, 1, generator=torch.Generator().manual_seed(0)) + 0.5
    p = NMSParams(iou_threshold=0.3, score_threshold=0.1, max_det=8, pre_nms_topk=8)
    for x, w in zip(nms_onnx.rotated_nms_onnx(boxes, scores, p), rotated_nms_batched(boxes, scores, p)):
        torch.testing.assert_close(x, w, atol=0, rtol=0)


@pytest.mark.parametrize("iou", [0.0, 0.1, 0.5, 0.95])
def test_pruning_changes_no_keep_set(iou):
    g = torch.Generator().manual_seed(int(iou * 100))
    b, n, c = 2, 300, 2
    centres = torch.rand(b, 40, 2, generator=g) * 200
    pick = torch.randint(0, 40, (b, n), generator=g)
    xy = torch.gather(centres, 1, pick[..., None].expand(-1, -1, 2)) + torch.randn(b, n, 2, generator=g) * 4
    boxes = torch.cat([xy, torch.rand(b, n, 2, generator=g) * 30 + 3, torch.rand(b, n, 1, generator=g) * 3], -1)
    scores = torch.rand(b, n, c, generator=g)
    p = NMSParams(iou_threshold=iou, score_threshold=0.05, max_det=600, pre_nms_topk=500)
    want = rotated_nms_batched(boxes, scores, p)
    for prune in (True, False):
        got = nms_onnx.rotated_nms_onnx(boxes, scores, p, prune=prune)
        for x, w in zip(got, want):
            torch.testing.assert_close(x, w, atol=0, rtol=0)
    assert (want[0] < p.max_det).all()  # nothing cut at max_det: whole keep-sets compared
    if iou <= 0.5:
        assert (want[0] < p.pre_nms_topk).all()  # suppression happened


# --------------------------------------------------------------------------------- the greedy Loop
@pytest.mark.parametrize("opset", [17, 18])
def test_greedy_loop_stops_after_the_last_valid_candidate(tmp_path, opset):
    class Keep(torch.nn.Module):
        def forward(self, sup, valid):
            return torch.ops.rdet_export.greedy_keep(sup, valid)

    k = 16
    g = torch.Generator().manual_seed(opset)
    sup = torch.triu(torch.rand(3, k, k, generator=g) > 0.6, diagonal=1)
    nms_onnx.register_onnx_symbolic(opset)
    path = tmp_path / "keep.onnx"
    valid = torch.ones(3, k, dtype=torch.bool)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(Keep(), (sup, valid), str(path), dynamo=False, opset_version=opset,
                          input_names=["sup", "valid"], output_names=["keep"])  # fmt: skip
    proto = onnx.load(str(path))
    assert nms_onnx.expand_greedy_keep(proto) == 1
    onnx.checker.check_model(proto, full_check=True)
    sess = session(proto)
    masks = [
        torch.arange(k)[None].expand(3, -1) < torch.tensor([[5], [9], [0]]),  # prefixes (what TopK gives)
        torch.zeros(3, k, dtype=torch.bool),  # nothing valid
        torch.rand(3, k, generator=g) > 0.5,  # any pattern: still exact
        torch.ones(3, k, dtype=torch.bool),
    ]
    for v in masks:
        (got,) = sess.run(None, {"sup": sup.numpy(), "valid": v.numpy()})
        np.testing.assert_array_equal(got, nms_onnx.greedy_keep(sup, v).numpy())


# --------------------------------------------------------------------------- TensorRT's TopK limit
def test_trt_topk_limit_is_a_clear_error(tmp_path, capsys):
    code = cli(
        ["--model", "ckpt.pth", "--format", "trt", "--nms", "onnx", "--pre-nms-topk", "4000", "--output", "m.engine"]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "--pre-nms-topk 4000" in err and "3840" in err and err.count("\n") == 1
    from rdet.export.trt_build import build_engine

    graph = onnx.helper.make_graph(
        [onnx.helper.make_node("Identity", ["x"], ["y"])],
        "g",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])],
    )
    model = onnx.helper.make_model(graph)
    params = dict(iou_threshold=0.1, score_threshold=0.05, max_det=100, pre_nms_topk=4000, class_agnostic=False)
    for key, value in (("nms", "onnx"), ("nms_params", json.dumps(params)), ("batch", "1")):
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(tmp_path / "big_topk.onnx"))
    with pytest.raises(ValueError, match=r"big_topk\.onnx: pre_nms_topk 4000 exceeds TensorRT's TopK limit"):
        build_engine(tmp_path / "big_topk.onnx", tmp_path / "m.engine")  # refused before TensorRT is imported
