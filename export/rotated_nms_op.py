"""``rdet::rotated_nms_batched``: batched rotated NMS with fixed-shape outputs, and its ONNX node.

One definition serves PyTorch inference and export: the eager implementation calls
:func:`rdet.ops.batched_nms_rotated` image by image, and the TorchScript ONNX exporter emits the op as
ONE node ``rdet::RotatedNMS`` (version 1), which the TensorRT plugin
(``export/plugins/rotated_nms``) and the ONNX Runtime custom op (:mod:`rdet.export.runtime`) implement.
Node attributes and plugin fields come from ``plugins/rotated_nms/plugin_fields.json``.

Semantics (shared by the eager op, :mod:`rdet.export.nms_onnx`, the ORT custom op and the plugin), per image:

1. ``scores [N, C]`` is flattened to ``N * C`` candidates (index ``n * C + c``: box ``n``, class ``c``);
2. those ``> score_threshold`` pass (NaN never does), and the ``pre_nms_topk`` highest of them are kept, by
   decreasing score (ties: lower flat index first), i.e. the first ``pre_nms_topk`` of a stable descending
   sort of the passing scores (:func:`rdet.models.selection.candidates`). Threshold then top-k is the
   EfficientNMS pattern: no implementation sorts all ``N * C`` scores;
3. greedy NMS in that order: a candidate is dropped when its IoU with a kept candidate of the same class
   (any class when ``class_agnostic``) is ``> iou_threshold``;
4. the first ``max_det`` survivors are written out; the rest of the fixed-size outputs is padded
   (boxes and scores 0, classes -1), EfficientNMS-style.

Images of a batch never interact.

In an exported detector (:mod:`rdet.export.onnx_export`) the node gets the candidates of the per-level selection
(:func:`rdet.models.selection.level_topk`, as ``predict``): ``K`` rows, each with its one class score (``-inf``
elsewhere), and ``pre_nms_topk = K``, so step 2 keeps them all and only orders them.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from rdet import ops
from rdet.models.selection import candidates

FIELDS_PATH = Path(__file__).parent / "plugins" / "rotated_nms" / "plugin_fields.json"
PLUGIN_SPEC: dict = json.loads(FIELDS_PATH.read_text())
OUTPUT_NAMES = tuple(PLUGIN_SPEC["outputs"])  # num_dets, det_boxes, det_scores, det_classes
MAX_PRE_NMS_TOPK = 16384  # the plugin's kMaxPreNmsTopk (RotatedNMSKernels.h): the most candidates it orders


@dataclass(frozen=True)
class NMSParams:
    """Thresholds of the exported NMS (the ``RotatedNMS`` node attributes)."""

    iou_threshold: float = 0.1
    score_threshold: float = 0.05
    max_det: int = 100
    pre_nms_topk: int = 1000
    class_agnostic: bool = False

    def __post_init__(self):
        for name in ("iou_threshold", "score_threshold"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v):
                raise ValueError(f"{name} must be a finite number, got {v!r}")
        for name in ("max_det", "pre_nms_topk"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name} must be an int >= 1, got {v!r}")
        if not isinstance(self.class_agnostic, bool):
            raise ValueError(f"class_agnostic must be a bool, got {self.class_agnostic!r}")

    def attributes(self) -> dict:
        """The node's plugin-field attributes by name (ints for bools, as the plugin reads kINT32)."""
        values = {
            "iou_threshold": float(self.iou_threshold),
            "score_threshold": float(self.score_threshold),
            "max_det": int(self.max_det),
            "pre_nms_topk": int(self.pre_nms_topk),
            "class_agnostic": int(self.class_agnostic),
        }
        names = [f["name"] for f in PLUGIN_SPEC["fields"]]
        if sorted(values) != sorted(names):  # plugin_fields.json and this class must agree
            raise RuntimeError(f"{FIELDS_PATH} lists fields {names}, NMSParams has {sorted(values)}")
        return values


def check_inputs(boxes: Tensor, scores: Tensor) -> None:
    """Raise ValueError unless ``boxes [B, N, 5]`` and ``scores [B, N, C]`` are float and agree."""
    for name, t in (("boxes", boxes), ("scores", scores)):
        if not isinstance(t, Tensor) or t.dim() != 3 or not t.is_floating_point():
            got = f"{list(t.shape)} {t.dtype}" if isinstance(t, Tensor) else type(t).__name__
            raise ValueError(f"{name} must be a float Tensor[B, N, {5 if name == 'boxes' else 'C'}], got {got}")
    if boxes.shape[2] != 5:
        raise ValueError(f"boxes must have shape [B, N, 5], got {list(boxes.shape)}")
    if boxes.shape[:2] != scores.shape[:2]:
        raise ValueError(f"boxes {list(boxes.shape)} and scores {list(scores.shape)} disagree on [B, N]")


def nms_one_image(boxes: Tensor, scores: Tensor, p: NMSParams) -> tuple[Tensor, Tensor, Tensor]:
    """Steps 1-4 for one image: ``boxes [N, 5]``, ``scores [N, C]`` -> kept boxes, scores, classes (int64)."""
    c = scores.shape[1]
    idx = candidates(scores, p.score_threshold, p.pre_nms_topk)
    bx, sc, lab = boxes[idx // c], scores.reshape(-1)[idx], idx % c
    # The candidates are already in order, so rdet.ops gets their ranks as scores: the same order, ties
    # included, and a score of +inf (which rdet.ops refuses) is kept as the plugin keeps it.
    rank = torch.arange(idx.numel(), 0, -1, dtype=torch.float64, device=scores.device)
    keep = ops.batched_nms_rotated(bx, rank, torch.zeros_like(lab) if p.class_agnostic else lab, p.iou_threshold)
    keep = keep[: p.max_det]
    return bx[keep], sc[keep], lab[keep]


def pack(
    results: list[tuple[Tensor, Tensor, Tensor]], max_det: int, box_dtype: torch.dtype, score_dtype: torch.dtype, device
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Per-image ``(boxes [K_i, 5], scores [K_i], classes [K_i])`` -> the 4 padded fixed-shape outputs."""
    b = len(results)
    num = torch.zeros(b, 1, dtype=torch.int32, device=device)
    out_b = torch.zeros(b, max_det, 5, dtype=box_dtype, device=device)
    out_s = torch.zeros(b, max_det, dtype=score_dtype, device=device)
    out_c = torch.full((b, max_det), -1, dtype=torch.int32, device=device)
    for i, (bx, sc, lab) in enumerate(results):
        k = bx.shape[0]
        num[i, 0] = k
        out_b[i, :k], out_s[i, :k], out_c[i, :k] = bx, sc, lab.to(torch.int32)
    return num, out_b, out_s, out_c


@torch.library.custom_op("rdet::rotated_nms_batched", mutates_args=())
def rotated_nms_batched_op(
    boxes: Tensor,
    scores: Tensor,
    iou_threshold: float,
    score_threshold: float,
    max_det: int,
    pre_nms_topk: int,
    class_agnostic: bool,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    check_inputs(boxes, scores)
    p = NMSParams(float(iou_threshold), float(score_threshold), int(max_det), int(pre_nms_topk), bool(class_agnostic))
    results = [nms_one_image(boxes[i], scores[i], p) for i in range(boxes.shape[0])]
    return pack(results, p.max_det, boxes.dtype, scores.dtype, boxes.device)


@rotated_nms_batched_op.register_fake
def _(boxes, scores, iou_threshold, score_threshold, max_det, pre_nms_topk, class_agnostic):
    b = boxes.shape[0]
    return (
        boxes.new_empty((b, 1), dtype=torch.int32),
        boxes.new_empty((b, max_det, 5)),
        scores.new_empty((b, max_det)),
        boxes.new_empty((b, max_det), dtype=torch.int32),
    )


def rotated_nms_batched(
    boxes: Tensor, scores: Tensor, params: NMSParams = NMSParams()
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Batched rotated NMS with fixed-shape outputs (semantics in the module docstring).

    Args:
        boxes (Tensor[B, N, 5]): decoded ``(cx, cy, w, h, angle)``, pixels. Any float dtype in eager mode (the
            IoU runs in float32 or float64 in :mod:`rdet.ops`); the exported node casts to float32, the only
            type the TensorRT plugin accepts.
        scores (Tensor[B, N, C]): class probabilities.
        params: thresholds.

    Returns:
        num_dets (Tensor[B, 1] int32), det_boxes (Tensor[B, max_det, 5]), det_scores (Tensor[B, max_det]),
        det_classes (Tensor[B, max_det] int32); padding 0 / -1 beyond ``num_dets``.
    """
    check_inputs(boxes, scores)
    return torch.ops.rdet.rotated_nms_batched(
        boxes,
        scores,
        float(params.iou_threshold),
        float(params.score_threshold),
        int(params.max_det),
        int(params.pre_nms_topk),
        bool(params.class_agnostic),
    )


def unpack(num_dets, det_boxes, det_scores, det_classes) -> list[dict]:
    """The 4 padded outputs (torch or numpy) -> per image ``{'boxes' [K, 5], 'scores' [K], 'labels' [K] int64}``."""
    out = []
    for i in range(len(num_dets)):
        k = int(num_dets[i][0])
        labels = det_classes[i][:k]
        labels = labels.long() if isinstance(labels, Tensor) else labels.astype("int64")
        out.append({"boxes": det_boxes[i][:k], "scores": det_scores[i][:k], "labels": labels})
    return out


# ------------------------------------------------------------------------------------- ONNX export
_SYMBOLIC_OPSETS: set[int] = set()


def register_onnx_symbolic(opset: int) -> None:
    """Teach the TorchScript ONNX exporter (``dynamo=False``) to emit ``rdet::RotatedNMS`` for the op."""
    if opset in _SYMBOLIC_OPSETS:
        return
    from torch.onnx import symbolic_helper

    @symbolic_helper.parse_args("v", "v", "f", "f", "i", "i", "b")
    def symbolic(g, boxes, scores, iou_threshold, score_threshold, max_det, pre_nms_topk, class_agnostic):
        p = NMSParams(iou_threshold, score_threshold, max_det, pre_nms_topk, bool(class_agnostic))
        suffix = {"float": "f", "int": "i", "string": "s"}
        attrs = {f"{f['name']}_{suffix[f['type']]}": p.attributes()[f["name"]] for f in PLUGIN_SPEC["fields"]}
        attrs["plugin_version_s"] = PLUGIN_SPEC["plugin_version"]
        attrs["plugin_namespace_s"] = PLUGIN_SPEC["plugin_namespace"]
        bt = boxes.type()
        # The node takes float32 only (the TensorRT plugin refuses fp16 boxes, which move corners and change the
        # kept set), so anything else is cast first.
        boxes, scores = (v if v.type().scalarType() == "Float" else g.op("Cast", v, to_i=1) for v in (boxes, scores))
        outs = g.op(f"{PLUGIN_SPEC['onnx_domain']}::{PLUGIN_SPEC['op_type']}", boxes, scores, outputs=4, **attrs)
        # Declare output types/shapes, since ONNX shape inference knows nothing of a custom node.
        batch = bt.varyingSizes()[0] if bt.varyingSizes() else None
        float_t, int_t = bt.with_dtype(torch.float32), bt.with_dtype(torch.int32)
        outs[0].setType(int_t.with_sizes([batch, 1]))
        outs[1].setType(float_t.with_sizes([batch, p.max_det, 5]))
        outs[2].setType(float_t.with_sizes([batch, p.max_det]))
        outs[3].setType(int_t.with_sizes([batch, p.max_det]))
        return outs

    torch.onnx.register_custom_op_symbolic("rdet::rotated_nms_batched", symbolic, opset)
    _SYMBOLIC_OPSETS.add(opset)
