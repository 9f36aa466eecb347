"""rdet.models.selection: the per-level candidate selection (known answers), its fixed-shape form equals the
eager one (ties included, in ONNX Runtime too), and the export's global order sort in TopK rounds."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from rdet.config import TestConfig
from rdet.models.selection import (
    level_candidates,
    level_topk,
    select_detections,
    sorted_candidates,
)


def test_per_level_top_k_known_answer():
    """nms_pre = 2 per level: level 1's two best (0.3, 0.2) go to NMS although level 0 has 3 higher scores;
    a global top-2 would keep 0.9 and 0.8 only."""
    scores = torch.tensor([[0.9, 0.1], [0.8, 0.7], [0.3, 0.01], [0.2, 0.25]])  # rows 0-1: level 0; 2-3: level 1
    got = level_candidates(scores, [2, 2], 0.05, 2)
    assert got.tolist() == [0, 2, 4, 7]  # flat n * C + c: (0, 0.9), (1, 0.8); (2, 0.3), (3, 0.25)
    assert level_candidates(scores, [2, 2], 0.5, 2).tolist() == [0, 2]  # threshold first: level 1 is empty
    # far-apart boxes: nothing suppressed, all 4 candidates detected, by decreasing score
    boxes = torch.tensor([[10.0, 10, 8, 4, 0], [40, 10, 8, 4, 0], [10, 40, 8, 4, 0], [40, 40, 8, 4, 0]])
    bx, sc, lab = select_detections(scores, boxes, [2, 2], TestConfig(nms_pre=2, score_thr=0.05, iou_thr=0.1))
    assert sc.tolist() == pytest.approx([0.9, 0.8, 0.3, 0.25]) and lab.tolist() == [0, 0, 0, 1]
    assert bx[:, :2].tolist() == [[10, 10], [40, 10], [10, 40], [40, 40]]


def test_equal_scores_keep_the_candidate_order_through_nms():
    """Two overlapping boxes with equal scores in different levels: the earlier level's is kept (a stable sort
    of the concatenated candidates), as the exported NMS orders them."""
    scores = torch.tensor([[0.5], [0.5]])
    boxes = torch.tensor([[20.0, 20, 10, 10, 0], [21, 20, 10, 10, 0]])
    bx, _, _ = select_detections(scores, boxes, [1, 1], TestConfig(nms_pre=5, score_thr=0.05, iou_thr=0.1))
    assert bx.tolist() == [[20, 20, 10, 10, 0]]
    bx, _, _ = select_detections(scores, boxes.flip(0), [1, 1], TestConfig(nms_pre=5, score_thr=0.05, iou_thr=0.1))
    assert bx.tolist() == [[21, 20, 10, 10, 0]]


def tied_scores(b: int, n: int, c: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    scores = (torch.rand(b, n, c, generator=g) * 6).floor() / 6  # ties everywhere
    scores[torch.rand(b, n, c, generator=g) < 0.05] = float("nan")
    return scores


@pytest.mark.parametrize("seed", range(4))
def test_level_topk_equals_the_sorted_selection_of_each_level_on_ties(seed):
    per_level = [37, 20, 9, 1]
    scores = tied_scores(2, sum(per_level), 3, seed)
    for thr, k in ((0.0, 5), (0.2, 30), (-1.0, 200)):
        top_s, top_i, valid = level_topk(scores, per_level, thr, k)
        assert top_s.shape[1] == sum(min(k, r * 3) for r in per_level)
        for b in range(2):
            want, start = [], 0
            for rows in per_level:
                want.append(sorted_candidates(scores[b, start : start + rows], thr, k) + start * 3)
                start += rows
            assert top_i[b][valid[b]].tolist() == torch.cat(want).tolist()
            assert top_i[b][valid[b]].tolist() == level_candidates(scores[b], per_level, thr, k).tolist()


def test_level_topk_graph_equals_eager_on_ties_in_onnxruntime(tmp_path):
    """The traced form (one ONNX TopK per level) selects exactly the eager candidates, ties included."""
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    per_level = [64, 16, 4]
    scores = tied_scores(2, sum(per_level), 4, 7)

    class Select(torch.nn.Module):
        def forward(self, s):
            top_s, top_i, valid = level_topk(s, per_level, 0.1, 40)
            return top_i, valid

    path = tmp_path / "select.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(Select(), (scores,), str(path), dynamo=False, opset_version=17, input_names=["s"])
    got_i, got_v = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"s": scores.numpy()})
    want_i, want_v = Select()(scores)
    np.testing.assert_array_equal(got_v, want_v.numpy())
    np.testing.assert_array_equal(got_i[got_v], want_i[want_v].numpy())


def test_global_order_in_topk_rounds_equals_a_stable_sort(tmp_path):
    """The onnx mode orders K > 3840 candidates with TopK rounds of <= 3840 (TensorRT's limit): the valid ones
    come out exactly in stable descending order, ties included."""
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from rdet.export.nms_onnx import TOPK_ROUND, sort_desc

    k = 2 * TOPK_ROUND + 500
    g = torch.Generator().manual_seed(3)
    scores = (torch.rand(2, k, generator=g) * 50).floor() / 50
    scores[torch.rand(2, k, generator=g) < 0.3] = -float("inf")  # unused places
    scores[1, : k - 100] = -float("inf")  # an image with only a few valid candidates

    class Order(torch.nn.Module):
        def forward(self, s):
            return sort_desc(s)

    path = tmp_path / "order.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(Order(), (scores,), str(path), dynamo=False, opset_version=17, input_names=["s"])
    values, order = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"s": scores.numpy()})
    want = torch.sort(scores, dim=1, descending=True, stable=True)
    for b in range(2):
        n_valid = int(torch.isfinite(scores[b]).sum())
        assert n_valid > 0 and (values[b, n_valid:] == -np.inf).all()
        np.testing.assert_array_equal(order[b, :n_valid], want.indices[b, :n_valid].numpy())
        np.testing.assert_array_equal(values[b, :n_valid], want.values[b, :n_valid].numpy())
