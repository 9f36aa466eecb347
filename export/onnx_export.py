"""Export a detector to ONNX: ``export_onnx(model_or_checkpoint, output, nms=..., ...)``.

The graph (TorchScript exporter, ``dynamo=False``, opset >= 17):

* input ``images``: ``[B, 3, H, W]`` RGB, NCHW, pixel values 0-255, ``uint8`` (default) or ``float32``
  (not normalised: the model's own pre-processing, ``DenseDetector.preprocess_image``, is inside the graph);
* ``nms='none'``: outputs ``boxes [B, N, 5]`` (decoded ``(cx, cy, w, h, angle)``, pixels, radians, the
  canonical convention of :mod:`rdet.boxes`, regularised to the model's angle version, centres clamped into the
  input) and ``scores [B, N, C]`` (sigmoid); standard ops only;
* ``nms='plugin'``: the same graph ending in one ``rdet::RotatedNMS`` node (:mod:`rdet.export.rotated_nms_op`):
  outputs ``num_dets [B, 1] int32``, ``det_boxes [B, K, 5]``, ``det_scores [B, K]``, ``det_classes [B, K] int32``;
* ``nms='onnx'``: the same four outputs from standard ONNX ops only (:mod:`rdet.export.nms_onnx`).

The ``plugin`` and ``onnx`` modes give ``predict``'s detections (:func:`detect`): centres clamped into the
input, the per-level candidate selection of :mod:`rdet.models.selection` (threshold, then the top
``pre_nms_topk`` of each FPN level; one ``TopK`` per level), class-wise NMS in score order, boxes regularised to
the angle version.

``metadata_props`` record: ``rdet_version``, ``class_names`` (JSON list), ``angle_version``,
``box_format``, ``input_size`` (JSON ``[H, W]``), ``input_dtype``, ``input_layout``, ``batch`` (JSON int,
``null`` when dynamic), ``nms``, ``outputs``
(JSON list), the NMS thresholds (JSON object ``nms_params``; the runner applies them to ``none`` graphs) and
``num_per_level`` (JSON list: rows of ``N`` per FPN level, for the ``none`` graphs' per-level selection).
"""

from __future__ import annotations

import io
import json
import math
import warnings
from dataclasses import asdict, replace
from pathlib import Path

import torch
from torch import Tensor, nn

import rdet
from rdet.boxes import regularize
from rdet.export import nms_onnx
from rdet.export.rotated_nms_op import (
    MAX_PRE_NMS_TOPK,
    OUTPUT_NAMES,
    NMSParams,
    register_onnx_symbolic,
    rotated_nms_batched,
)
from rdet.models.selection import level_sizes_k, level_topk

NMS_MODES = ("none", "plugin", "onnx")
INPUT_DTYPES = ("uint8", "float32")
MIN_OPSET = 17
STRIDE = 32


class ExportGraph(nn.Module):
    """What the ONNX graph computes: the detector's ``decode`` of 0-255 RGB (its pre-processing and MMRotate's
    centre clamp included), then the detections of ``predict`` (:func:`detect`).

    Args:
        model: a detector with ``decode_levels(images) -> (boxes [B, N, 5], scores [B, N, C], num_per_level)``,
            ``cfg.coder.angle_version``.
        nms: ``'none'``, ``'plugin'`` or ``'onnx'``.
        params: the NMS thresholds (``pre_nms_topk``: per FPN level; unused for ``'none'``).
    """

    def __init__(self, model: nn.Module, nms: str, params: NMSParams):
        super().__init__()
        self.model, self.nms, self.params = model, nms, params
        self.num_per_level: list[int] = []  # of the last input (the metadata records it)

    def forward(self, images: Tensor) -> tuple[Tensor, ...]:
        boxes, scores, per_level = self.model.decode_levels(images)  # normalisation, padding, clamp: the model's
        self.num_per_level = list(per_level)
        return detect(boxes, scores, per_level, self.nms, self.params, self.model.cfg.coder.angle_version)


def detect(
    boxes: Tensor, scores: Tensor, num_per_level: list[int], nms: str, params: NMSParams, angle_version: str
) -> tuple[Tensor, ...]:
    """Decoded boxes and scores -> the graph outputs, with ``predict``'s selection (:mod:`rdet.models.selection`).

    ``'none'``: ``(boxes regularised to angle_version, scores)``. Otherwise the per-level selection
    (:func:`~rdet.models.selection.level_topk`: threshold, then the top ``pre_nms_topk`` of each FPN level), the
    candidates in score order to the NMS (``'plugin'``: the ``RotatedNMS`` node, given one class score per
    candidate row and ``pre_nms_topk = K``; ``'onnx'``: standard ops), boxes regularised to ``angle_version``
    after the NMS as ``predict`` does (padding stays 0).

    Args:
        boxes (Tensor[B, N, 5]), scores (Tensor[B, N, C]); num_per_level: rows per FPN level (``sum == N``).
    """
    if nms == "none":
        return regularize(boxes, angle_version), scores
    num_per_level = [int(n) for n in num_per_level]  # static in a graph: the input size is fixed
    top_s, top_i, valid = level_topk(scores, num_per_level, params.score_threshold, params.pre_nms_topk)
    c = int(scores.shape[2])
    bx = torch.gather(boxes, 1, torch.div(top_i, c, rounding_mode="floor")[..., None].expand(-1, -1, 5))
    labels = top_i % c
    if nms == "plugin":
        onehot = torch.arange(c, device=scores.device) == labels[..., None]  # [B, K, C]
        cand = torch.where(onehot & valid[..., None], top_s[..., None], torch.full_like(top_s, -math.inf)[..., None])
        k = sum(level_sizes_k(num_per_level, c, params.pre_nms_topk))
        out = rotated_nms_batched(bx, cand, replace(params, pre_nms_topk=k))
    else:
        out = nms_onnx.rotated_nms_candidates(bx, top_s, labels, valid, params)
    num, det_boxes, det_scores, det_classes = out
    filled = torch.arange(det_boxes.shape[1], device=det_boxes.device)[None] < num  # [B, max_det]
    det_boxes = torch.where(filled[..., None], regularize(det_boxes, angle_version), torch.zeros_like(det_boxes))
    return num, det_boxes, det_scores, det_classes


def _load_model(model_or_checkpoint) -> nn.Module:
    if isinstance(model_or_checkpoint, nn.Module):
        model = model_or_checkpoint
    elif isinstance(model_or_checkpoint, (str, Path)):
        path = Path(model_or_checkpoint)
        try:
            model = rdet.load_checkpoint(path)
        except (ValueError, TypeError, KeyError, FileNotFoundError) as e:
            raise ValueError(f"cannot export {path}: {e}") from e
    else:
        raise ValueError(
            f"model_or_checkpoint must be an nn.Module or a checkpoint path, got {type(model_or_checkpoint).__name__}"
        )
    missing = [a for a in ("decode_levels", "class_names", "cfg") if not hasattr(model, a)]
    if missing:
        raise ValueError(
            f"unsupported model {type(model).__name__}: export needs a detector with "
            f"decode_levels(images) -> (boxes, scores, num_per_level), class_names and cfg (rdet RotatedRetinaNet "
            f"or R3Det); "
            f"missing {missing}"
        )
    return model


def _image_size(imgsz) -> tuple[int, int]:
    size = (imgsz, imgsz) if isinstance(imgsz, int) else tuple(imgsz)
    if len(size) != 2 or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in size):
        raise ValueError(f"imgsz must be a positive int or (height, width), got {imgsz!r}")
    if size[0] % STRIDE or size[1] % STRIDE:
        raise ValueError(
            f"imgsz {size[0]}x{size[1]} is not divisible by the model stride {STRIDE} "
            f"(use e.g. {STRIDE * max(1, round(size[0] / STRIDE))})"
        )
    return size


def default_params(
    model: nn.Module, *, score_threshold=None, iou_threshold=None, max_det=None, pre_nms_topk=None, class_agnostic=False
) -> NMSParams:
    """NMS thresholds: the given ones, else the model config's ``test`` section."""
    t = model.cfg.test
    return NMSParams(
        iou_threshold=t.iou_thr if iou_threshold is None else iou_threshold,
        score_threshold=t.score_thr if score_threshold is None else score_threshold,
        max_det=t.max_per_img if max_det is None else max_det,
        pre_nms_topk=t.nms_pre if pre_nms_topk is None else pre_nms_topk,
        class_agnostic=class_agnostic,
    )


def export_onnx(
    model_or_checkpoint,
    output: str | Path,
    nms: str = "onnx",
    batch: int = 1,
    dynamic_batch: bool = False,
    imgsz: int | tuple[int, int] = 1024,
    input_dtype: str = "uint8",
    opset: int = MIN_OPSET,
    score_threshold: float | None = None,
    iou_threshold: float | None = None,
    max_det: int | None = None,
    pre_nms_topk: int | None = None,
    class_agnostic: bool = False,
) -> Path:
    """Export a detector (or an rdet checkpoint) to an ONNX file.

    Args:
        model_or_checkpoint: a model with ``decode`` (Rotated RetinaNet, R3Det) or an rdet checkpoint path.
        output: the ``.onnx`` file to write (parent folders are created).
        nms: ``'none'``, ``'plugin'`` or ``'onnx'`` (see the module docstring).
        batch: the fixed batch size (the example batch when ``dynamic_batch``).
        dynamic_batch: make the batch dimension symbolic.
        imgsz: input ``H = W`` or ``(H, W)``, divisible by 32.
        input_dtype: ``'uint8'`` or ``'float32'`` pixel values 0-255.
        opset: ONNX opset, >= 17.
        score_threshold, iou_threshold, max_det, pre_nms_topk: NMS settings; None takes the model config's
            ``test`` values (``score_thr``, ``iou_thr``, ``max_per_img``, ``nms_pre``).
        class_agnostic: NMS across classes.

    Returns:
        The output path.

    Raises:
        ValueError: bad arguments, an unsupported model, or a checkpoint whose config cannot be rebuilt.
    """
    if nms not in NMS_MODES:
        raise ValueError(f"nms must be one of {NMS_MODES}, got {nms!r}")
    if input_dtype not in INPUT_DTYPES:
        raise ValueError(f"input_dtype must be one of {INPUT_DTYPES}, got {input_dtype!r}")
    if not isinstance(opset, int) or opset < MIN_OPSET:
        raise ValueError(f"opset must be an int >= {MIN_OPSET}, got {opset!r}")
    if not isinstance(batch, int) or isinstance(batch, bool) or batch < 1:
        raise ValueError(f"batch must be an int >= 1, got {batch!r}")
    h, w = _image_size(imgsz)
    model = _load_model(model_or_checkpoint)
    params = default_params(
        model,
        score_threshold=score_threshold,
        iou_threshold=iou_threshold,
        max_det=max_det,
        pre_nms_topk=pre_nms_topk,
        class_agnostic=class_agnostic,
    )
    # Export on CPU in eval mode, then give the caller's model back as it was.
    was_training = model.training
    device = next(model.parameters()).device
    try:
        return _export(
            ExportGraph(model, nms, params).eval().cpu(),
            model,
            output,
            nms,
            params,
            batch,
            dynamic_batch,
            (h, w),
            input_dtype,
            opset,
        )
    finally:
        model.train(was_training).to(device)


def _export(
    graph: ExportGraph,
    model: nn.Module,
    output: str | Path,
    nms: str,
    params: NMSParams,
    batch: int,
    dynamic_batch: bool,
    size: tuple[int, int],
    input_dtype: str,
    opset: int,
) -> Path:
    import onnx

    h, w = size
    dtype = torch.uint8 if input_dtype == "uint8" else torch.float32
    example = torch.randint(0, 256, (batch, 3, h, w), generator=torch.Generator().manual_seed(0)).to(dtype)
    out_names = ["boxes", "scores"] if nms == "none" else list(OUTPUT_NAMES)
    dynamic_axes = {n: {0: "batch"} for n in ["images", *out_names]} if dynamic_batch else None
    register_onnx_symbolic(opset)
    nms_onnx.register_onnx_symbolic(opset)
    buf = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        # The TorchScript exporter is deprecated in favour of dynamo (which needs onnxscript); it still
        # works and supports register_custom_op_symbolic, which the plugin node needs.
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        torch.onnx.export(
            graph,
            (example,),
            buf,
            dynamo=False,
            opset_version=opset,
            input_names=["images"],
            output_names=out_names,
            dynamic_axes=dynamic_axes,
            custom_opsets={"rdet": 1} if nms == "plugin" else None,
            do_constant_folding=True,
        )
        example_out = graph(example)
    k = sum(level_sizes_k(graph.num_per_level, len(model.class_names), params.pre_nms_topk))
    if nms == "plugin" and k > MAX_PRE_NMS_TOPK:
        raise ValueError(
            f"nms='plugin': the per-level selection gives {k} candidates at {h}x{w} (pre_nms_topk "
            f"{params.pre_nms_topk} per FPN level), more than the {MAX_PRE_NMS_TOPK} the TensorRT plugin orders; "
            f"lower pre_nms_topk (--pre-nms-topk) or use nms='onnx'"
        )
    proto = onnx.load_from_string(buf.getvalue())
    if nms == "onnx":
        nms_onnx.expand_greedy_keep(proto)
    _set_output_shapes(proto, [list(o.shape) for o in example_out], dynamic_batch)
    meta = (nms, params, (h, w), input_dtype, None if dynamic_batch else batch, graph.num_per_level)
    _set_metadata(proto, model, *meta)
    onnx.checker.check_model(proto)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(proto, str(output))
    return output


def _set_output_shapes(proto, shapes: list[list[int]], dynamic_batch: bool) -> None:
    """Write the known output shapes into the graph (the exporter leaves symbolic names after NMS code)."""
    for out, shape in zip(proto.graph.output, shapes):
        dims = out.type.tensor_type.shape.dim
        del dims[:]
        for i, size in enumerate(shape):
            d = dims.add()
            if i == 0 and dynamic_batch:
                d.dim_param = "batch"
            else:
                d.dim_value = size


def _set_metadata(
    proto,
    model: nn.Module,
    nms: str,
    params: NMSParams,
    size: tuple[int, int],
    dtype: str,
    batch: int | None,
    num_per_level: list[int],
):
    meta = {
        "rdet_version": rdet.__version__,
        "class_names": json.dumps(list(model.class_names)),
        "angle_version": model.cfg.coder.angle_version,
        "box_format": "cx,cy,w,h,angle (pixels; angle in radians from +x towards +y, y down)",
        "input_size": json.dumps(list(size)),
        "input_dtype": dtype,
        "batch": json.dumps(batch),
        "input_layout": "NCHW RGB 0-255 (normalised inside the graph)",
        "nms": nms,
        "outputs": json.dumps(["boxes", "scores"] if nms == "none" else list(OUTPUT_NAMES)),
        "nms_params": json.dumps(asdict(params)),
        "num_per_level": json.dumps(list(num_per_level)),
    }
    del proto.metadata_props[:]
    for k, v in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, v


def read_metadata(path_or_proto) -> dict:
    """The ``metadata_props`` of an exported file, JSON values decoded."""
    import onnx

    proto = (
        path_or_proto
        if isinstance(path_or_proto, onnx.ModelProto)
        else onnx.load(str(path_or_proto), load_external_data=False)
    )
    meta = {p.key: p.value for p in proto.metadata_props}
    for k in ("class_names", "input_size", "outputs", "nms_params", "batch", "num_per_level"):
        if k in meta:
            meta[k] = json.loads(meta[k])
    return meta
