"""Export a detector to ONNX: ``export_onnx(model_or_checkpoint, output, nms=..., ...)``.

The graph (TorchScript exporter, ``dynamo=False``, opset >= 17):

* input ``images``: ``[B, 3, H, W]`` RGB, NCHW, pixel values 0-255, ``uint8`` (default) or ``float32``
  (not normalised: the model's own pre-processing, ``DenseDetector.preprocess_image``, is inside the graph);
* ``nms='none'``: outputs ``boxes [B, N, 5]`` (decoded ``(cx, cy, w, h, angle)``, pixels, radians, the
  canonical convention of :mod:`rdet.boxes`) and ``scores [B, N, C]`` (sigmoid); standard ops only;
* ``nms='plugin'``: the same graph ending in one ``rdet::RotatedNMS`` node (:mod:`rdet.export.rotated_nms_op`):
  outputs ``num_dets [B, 1] int32``, ``det_boxes [B, K, 5]``, ``det_scores [B, K]``, ``det_classes [B, K] int32``;
* ``nms='onnx'``: the same four outputs from standard ONNX ops only (:mod:`rdet.export.nms_onnx`).

``metadata_props`` record: ``rdet_version``, ``class_names`` (JSON list), ``angle_version``,
``box_format``, ``input_size`` (JSON ``[H, W]``), ``input_dtype``, ``input_layout``, ``batch`` (JSON int,
``null`` when dynamic), ``nms``, ``outputs``
(JSON list) and the NMS thresholds (JSON object ``nms_params``; the runner applies them to ``none`` graphs).
"""

from __future__ import annotations

import io
import json
import warnings
from dataclasses import asdict
from pathlib import Path

import torch
from torch import Tensor, nn

import rdet
from rdet.export import nms_onnx
from rdet.export.rotated_nms_op import OUTPUT_NAMES, NMSParams, register_onnx_symbolic, rotated_nms_batched

NMS_MODES = ("none", "plugin", "onnx")
INPUT_DTYPES = ("uint8", "float32")
MIN_OPSET = 17
STRIDE = 32


class ExportGraph(nn.Module):
    """What the ONNX graph computes: the detector's ``decode`` of 0-255 RGB (its pre-processing included), then NMS.

    Args:
        model: a detector with ``decode(images) -> (boxes [B, N, 5], scores [B, N, C])``.
        nms: ``'none'``, ``'plugin'`` or ``'onnx'``.
        params: the NMS thresholds (unused for ``'none'``).
    """

    def __init__(self, model: nn.Module, nms: str, params: NMSParams):
        super().__init__()
        self.model, self.nms, self.params = model, nms, params

    def forward(self, images: Tensor) -> tuple[Tensor, ...]:
        boxes, scores = self.model.decode(images)  # normalisation (and padding) by the model itself
        if self.nms == "none":
            return boxes, scores
        if self.nms == "plugin":
            return rotated_nms_batched(boxes, scores, self.params)
        return nms_onnx.rotated_nms_onnx(boxes, scores, self.params)


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
    missing = [a for a in ("decode", "class_names", "cfg") if not hasattr(model, a)]
    if missing:
        raise ValueError(
            f"unsupported model {type(model).__name__}: export needs a detector with "
            f"decode(images) -> (boxes, scores), class_names and cfg (rdet RotatedRetinaNet or R3Det); "
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
    proto = onnx.load_from_string(buf.getvalue())
    if nms == "onnx":
        nms_onnx.expand_greedy_keep(proto)
    _set_output_shapes(proto, [list(o.shape) for o in example_out], dynamic_batch)
    _set_metadata(proto, model, nms, params, (h, w), input_dtype, None if dynamic_batch else batch)
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
    proto, model: nn.Module, nms: str, params: NMSParams, size: tuple[int, int], dtype: str, batch: int | None
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
    for k in ("class_names", "input_size", "outputs", "nms_params", "batch"):
        if k in meta:
            meta[k] = json.loads(meta[k])
    return meta
