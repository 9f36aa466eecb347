"""Run exported detectors: ``Runner(path).run(images) -> [{'boxes', 'scores', 'labels'}, ...]``.

Backends, chosen by the file:

* ``.onnx``: ONNX Runtime, CPU or CUDA execution provider. A ``plugin`` graph's ``rdet::RotatedNMS`` node
  runs as an onnxruntime-extensions Python custom op backed by :mod:`rdet.ops` (the same eager code as
  PyTorch); a ``none`` graph gets the same NMS applied afterwards with the thresholds in its metadata.
* ``.engine`` / ``.plan`` / ``.trt``: a TensorRT engine (``tensorrt`` imported lazily, buffers are torch
  CUDA tensors); the metadata comes from the ``<engine>.json`` sidecar that :func:`export.trt_build.build_engine`
  writes, and ``plugin_lib`` loads the RotatedNMS plugin library (once per process) when the engine needs it.

Images: ``[B, 3, H, W]`` or ``[B, H, W, 3]`` (or one image without ``B``), RGB, 0-255, numpy or torch,
uint8, integer or float (NaN, values outside 0-255 and float images scaled to 0-1 are refused);
``H, W`` must equal the exported input size (tiling is the caller's job).
"""

from __future__ import annotations

import ctypes
import json
import threading
from pathlib import Path

import numpy as np
import torch

from rdet.export.rotated_nms_op import PLUGIN_SPEC, NMSParams, rotated_nms_batched, unpack

ENGINE_SUFFIXES = (".engine", ".plan", ".trt")
ORT_DOMAIN = "ai.onnx.contrib"  # onnxruntime-extensions registers Python ops in this domain only


def to_nchw(images, size: tuple[int, int], dtype: str) -> np.ndarray:
    """Images in any accepted layout -> ``np.ndarray [B, 3, H, W]`` of ``dtype``, after checking them.

    Pixel values must be 0-255 RGB: uint8, or an integer or float array holding values in [0, 255] (floats are
    rounded to the nearest integer for a ``uint8`` graph; a ``float32`` graph takes them as they are).

    Raises:
        ValueError: wrong shape or size, a dtype that is not integer or float, NaN or Inf values, values outside
            [0, 255], or float images whose values all lie in [0, 1] (scaled to 0-1, which the graph would
            silently misread: multiply by 255 first).
    """
    arr = images.detach().cpu().numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    if arr.dtype == np.bool_ or not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise ValueError(f"images must hold 0-255 pixel values as uint8, integer or float, got dtype {arr.dtype}")
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4:
        raise ValueError(f"images must be [B, 3, H, W], [B, H, W, 3] or one image, got shape {list(arr.shape)}")
    if arr.shape[1] != 3 and arr.shape[3] == 3:
        arr = arr.transpose(0, 3, 1, 2)
    if arr.shape[1] != 3 or tuple(arr.shape[2:]) != tuple(size):
        raise ValueError(
            f"images must be RGB of size {size[0]}x{size[1]} (the exported input size), got shape {list(arr.shape)}"
        )
    out_dtype = np.uint8 if dtype == "uint8" else np.float32
    if arr.dtype != np.uint8 and arr.size:
        if np.issubdtype(arr.dtype, np.floating):
            bad = int(np.count_nonzero(~np.isfinite(arr)))
            if bad:
                raise ValueError(f"images contain {bad} NaN or Inf value(s); pixel values must be finite, 0-255")
        lo, hi = arr.min(), arr.max()
        if lo < 0 or hi > 255:
            raise ValueError(f"images must hold pixel values in 0-255, got values from {lo} to {hi}")
        if np.issubdtype(arr.dtype, np.floating) and 0 < hi <= 1:
            raise ValueError(
                f"images hold float values in [0, {hi:g}]: they look scaled to 0-1, but the exported graph "
                f"expects 0-255 pixel values (multiply by 255)"
            )
        if dtype == "uint8":
            arr = np.rint(arr)  # explicit: float pixels are rounded, never truncated
    return np.ascontiguousarray(arr.astype(out_dtype, copy=False))


def _postprocess(meta: dict, outputs: list) -> list[dict]:
    """Graph outputs -> per-image numpy dicts; ``none`` graphs get the selection and NMS of the ``plugin`` graph
    (``predict``'s) with the thresholds and FPN level sizes of their metadata."""
    if meta["nms"] == "none":
        from rdet.export.onnx_export import detect

        boxes, scores = (torch.from_numpy(np.asarray(o)) for o in outputs)
        # files from before num_per_level was recorded: one level, i.e. one global top-k
        levels = meta.get("num_per_level") or [boxes.shape[1]]
        version = meta.get("angle_version", "le90")
        outputs = [o.numpy() for o in detect(boxes, scores, levels, "plugin", NMSParams(**meta["nms_params"]), version)]
    return unpack(*[np.asarray(o) for o in outputs])


# ---------------------------------------------------------------------------------- ONNX Runtime
_PYOP_REGISTERED = False


def _register_pyop() -> None:
    """Register ``RotatedNMS`` with onnxruntime-extensions, backed by the eager ``rdet.ops`` implementation."""
    global _PYOP_REGISTERED
    if _PYOP_REGISTERED:
        return
    from onnxruntime_extensions import PyCustomOpDef, onnx_op

    kinds = {"float": PyCustomOpDef.dt_float, "int": PyCustomOpDef.dt_int64, "string": PyCustomOpDef.dt_string}
    attrs = {f["name"]: kinds[f["type"]] for f in PLUGIN_SPEC["fields"] + PLUGIN_SPEC["parser_attributes"]}

    @onnx_op(
        op_type=PLUGIN_SPEC["op_type"],
        inputs=[PyCustomOpDef.dt_float, PyCustomOpDef.dt_float],
        outputs=[PyCustomOpDef.dt_int32, PyCustomOpDef.dt_float, PyCustomOpDef.dt_float, PyCustomOpDef.dt_int32],
        attrs=attrs,
    )
    def rotated_nms(boxes, scores, **kw):
        p = NMSParams(
            float(kw["iou_threshold"]),
            float(kw["score_threshold"]),
            int(kw["max_det"]),
            int(kw["pre_nms_topk"]),
            bool(int(kw["class_agnostic"])),
        )
        out = rotated_nms_batched(
            torch.from_numpy(np.ascontiguousarray(boxes)), torch.from_numpy(np.ascontiguousarray(scores)), p
        )
        return tuple(o.numpy() for o in out)

    _PYOP_REGISTERED = True


def _retarget_plugin_domain(proto) -> bool:
    """Move ``rdet::RotatedNMS`` nodes into onnxruntime-extensions' domain (in memory). Returns whether any."""
    found = False
    for node in proto.graph.node:
        if node.domain == PLUGIN_SPEC["onnx_domain"] and node.op_type == PLUGIN_SPEC["op_type"]:
            node.domain = ORT_DOMAIN
            found = True
    if found:
        for imp in proto.opset_import:
            if imp.domain == PLUGIN_SPEC["onnx_domain"]:
                imp.domain = ORT_DOMAIN
    return found


class OrtBackend:
    """ONNX Runtime session of an exported ``.onnx`` file."""

    def __init__(self, path: Path, device: str = "cpu"):
        import onnx
        import onnxruntime as ort

        from rdet.export.onnx_export import read_metadata

        try:
            proto = onnx.load(str(path))
        except Exception as e:  # noqa: BLE001 - re-raised with the path
            raise ValueError(f"{path}: not a readable ONNX file ({e})") from e
        self.meta = read_metadata(proto)
        if "nms" not in self.meta:
            raise ValueError(f"{path}: has no rdet metadata (was it written by export_onnx?)")
        opts = ort.SessionOptions()
        if _retarget_plugin_domain(proto):
            from onnxruntime_extensions import get_library_path

            _register_pyop()
            opts.register_custom_ops_library(get_library_path())
        available = ort.get_available_providers()
        if device == "cpu":
            providers = ["CPUExecutionProvider"]
        elif device.startswith("cuda"):
            if "CUDAExecutionProvider" not in available:
                raise ValueError(
                    f"device={device!r} but this onnxruntime has no CUDAExecutionProvider "
                    f"(available: {available}; install onnxruntime-gpu)"
                )
            idx = int(device.split(":")[1]) if ":" in device else 0
            providers = [("CUDAExecutionProvider", {"device_id": idx}), "CPUExecutionProvider"]
        else:
            raise ValueError(f"device must be 'cpu' or 'cuda[:N]', got {device!r}")
        try:
            self.session = ort.InferenceSession(proto.SerializeToString(), opts, providers=providers)
        except Exception as e:  # noqa: BLE001 - re-raised with the path
            raise RuntimeError(f"{path}: ONNX Runtime could not load the model: {e}") from e
        self.input_name = self.session.get_inputs()[0].name

    def __call__(self, batch: np.ndarray) -> list:
        return self.session.run(None, {self.input_name: batch})


# --------------------------------------------------------------------------------------- TensorRT
def import_tensorrt():
    """``import tensorrt`` with an error that says what is missing."""
    try:
        import tensorrt
    except ImportError as e:
        raise RuntimeError(
            f"TensorRT is not installed: `pip install tensorrt` (TensorRT >= 10, a CUDA GPU and driver needed) ({e})"
        ) from e
    return tensorrt


_PLUGIN_LOCK = threading.Lock()
_LOADED_PLUGINS: dict[str, str] = {}  # resolved library path -> how its creator became available


def plugin_creator_registered(registry) -> bool:
    """Whether TensorRT's plugin ``registry`` holds the ``RotatedNMS`` creator (namespace ``rdet``, version 1)."""
    name, version, namespace = (PLUGIN_SPEC[k] for k in ("plugin_name", "plugin_version", "plugin_namespace"))
    get_creator = getattr(registry, "get_creator", None)  # TensorRT >= 10: IPluginCreatorV3One creators too
    if get_creator is not None:
        return get_creator(name, version, namespace) is not None
    creators = getattr(registry, "all_creators", None) or getattr(registry, "plugin_creator_list", None) or []
    return any((c.name, c.plugin_version, c.plugin_namespace) == (name, version, namespace) for c in creators)


def load_plugin_library(trt, plugin_lib: str | Path | None) -> str | None:
    """Make the RotatedNMS plugin available to TensorRT, loading ``plugin_lib`` at most once per process.

    TensorRT refuses to register the same creator twice (a second ``load_library`` of the library fails), so
    nothing is loaded when the creator is already registered (the library was loaded before, from this or
    another path, or preloaded). Otherwise the library is opened with ``ctypes`` (it then registers itself
    with the TensorRT already in this process) and, only if its creator is still missing, passed to
    ``IPluginRegistry.load_library``. Thread-safe.

    Returns:
        None when ``plugin_lib`` is None, else how the creator became available: ``'already registered'``,
        ``'registered on load'`` or ``'load_library'``.

    Raises:
        FileNotFoundError: no such file. RuntimeError: the library cannot be loaded or registers nothing.
    """
    if plugin_lib is None:
        return None
    path = Path(plugin_lib)
    if not path.is_file():
        raise FileNotFoundError(f"plugin library not found: {path} (build export/plugins/rotated_nms with CMake)")
    key = str(path.resolve())
    with _PLUGIN_LOCK:
        if key in _LOADED_PLUGINS:
            return _LOADED_PLUGINS[key]
        registry = trt.get_plugin_registry()
        if plugin_creator_registered(registry):
            how = "already registered"
        else:
            try:
                ctypes.CDLL(key)  # load-time registration; keeps TensorRT's own lock out of our initializer
            except OSError as e:
                raise RuntimeError(f"{path}: cannot load the plugin library: {e}") from e
            if plugin_creator_registered(registry):
                how = "registered on load"
            elif registry.load_library(key) is not None and plugin_creator_registered(registry):
                how = "load_library"
            else:
                raise RuntimeError(
                    f"{path}: TensorRT {getattr(trt, '__version__', '?')} could not register the RotatedNMS "
                    f"plugin from this library (built for another TensorRT version?)"
                )
        _LOADED_PLUGINS[key] = how
        return how


def make_logger(trt):
    """A ``trt.ILogger`` that keeps error messages (``.errors``), so they can be raised with the file path."""
    serious = (trt.ILogger.Severity.INTERNAL_ERROR, trt.ILogger.Severity.ERROR)

    class Logger(trt.ILogger):
        def __init__(self):
            trt.ILogger.__init__(self)
            self.errors: list[str] = []

        def log(self, severity, msg):
            if severity in serious:
                self.errors.append(str(msg))

    return Logger()


class TensorRTBackend:
    """A deserialised TensorRT engine run with torch CUDA buffers."""

    def __init__(self, path: Path, device: str = "cuda", plugin_lib: str | Path | None = None):
        trt = import_tensorrt()
        if not torch.cuda.is_available():
            raise RuntimeError(f"{path}: running a TensorRT engine needs a CUDA GPU visible to torch")
        sidecar = path.with_name(path.name + ".json")
        if not sidecar.is_file():
            raise ValueError(f"{path}: metadata {sidecar} not found (build_engine writes it next to the engine)")
        self.meta = json.loads(sidecar.read_text())
        if plugin_lib is None and self.meta.get("nms") == "plugin" and self.meta.get("plugin_lib"):
            plugin_lib = self.meta["plugin_lib"]
        load_plugin_library(trt, plugin_lib)
        self.device = torch.device(device if device.startswith("cuda") else "cuda")
        self.logger = make_logger(trt)
        self.runtime = trt.Runtime(self.logger)  # kept alive as long as the engine
        try:
            self.engine = self.runtime.deserialize_cuda_engine(path.read_bytes())
        except Exception as e:  # noqa: BLE001 - some versions raise instead of returning None
            self.engine = None
            self.logger.errors.append(str(e))
        if self.engine is None:
            raise RuntimeError(
                f"{path}: TensorRT {trt.__version__} could not deserialize the engine (built for "
                f"another GPU or TensorRT version, or the plugin library is not loaded): "
                f"{'; '.join(self.logger.errors) or 'no message'}"
            )
        self.context = self.engine.create_execution_context()
        self.path, self.trt = path, trt
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.outputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        order = self.meta.get("outputs", self.outputs)
        self.outputs.sort(key=lambda n: order.index(n) if n in order else len(order))

    def _torch_dtype(self, name: str) -> torch.dtype:
        t = self.trt.DataType
        table = {
            t.FLOAT: torch.float32,
            t.HALF: torch.float16,
            t.INT32: torch.int32,
            t.INT64: torch.int64,
            t.UINT8: torch.uint8,
            t.BOOL: torch.bool,
        }
        return table[self.engine.get_tensor_dtype(name)]

    def __call__(self, batch: np.ndarray) -> list:
        x = torch.from_numpy(batch).to(self.device)
        if not self.context.set_input_shape(self.inputs[0], tuple(x.shape)):
            raise ValueError(f"{self.path}: input shape {list(x.shape)} is outside the engine's profile")
        self.context.set_tensor_address(self.inputs[0], x.data_ptr())
        outs = []
        for name in self.outputs:
            out = torch.empty(
                tuple(self.context.get_tensor_shape(name)), dtype=self._torch_dtype(name), device=self.device
            )
            self.context.set_tensor_address(name, out.data_ptr())
            outs.append(out)
        stream = torch.cuda.current_stream(self.device)
        self.logger.errors.clear()
        if not self.context.execute_async_v3(stream.cuda_stream):
            raise RuntimeError(f"{self.path}: TensorRT execution failed: {'; '.join(self.logger.errors)}")
        stream.synchronize()
        return [o.float().cpu().numpy() if o.is_floating_point() else o.cpu().numpy() for o in outs]


# ----------------------------------------------------------------------------------------- Runner
class Runner:
    """One interface for every exported format.

    Args:
        path: an exported ``.onnx`` file or a TensorRT engine (``.engine``/``.plan``/``.trt``).
        device: ``'cpu'`` or ``'cuda[:N]'`` (engines always run on CUDA).
        plugin_lib: the RotatedNMS plugin library for TensorRT engines (default: the path recorded at build).
        batch_size: images per call of the backend (None: the exported batch, or all at once when dynamic).

    Attributes:
        meta: the export metadata (``class_names``, ``input_size``, ``nms``, ``nms_params``, ...).
    """

    def __init__(
        self, path: str | Path, device: str = "cpu", plugin_lib: str | Path | None = None, batch_size: int | None = None
    ):
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"exported model not found: {path}")
        if path.suffix in ENGINE_SUFFIXES:
            self.backend = TensorRTBackend(path, "cuda" if device == "cpu" else device, plugin_lib)
        elif path.suffix == ".onnx":
            self.backend = OrtBackend(path, device)
        else:
            raise ValueError(f"{path}: unknown format {path.suffix!r} (expected .onnx or {', '.join(ENGINE_SUFFIXES)})")
        self.meta = self.backend.meta
        self.path = path
        self.input_size = tuple(self.meta["input_size"])
        self.class_names = list(self.meta["class_names"])
        self.fixed_batch = self.meta.get("batch")  # None when dynamic
        profile = self.meta.get("batch_profile")  # engines of dynamic graphs: (min, opt, max)
        self.batch_size = batch_size or self.fixed_batch or (profile[2] if profile else None)

    def run(self, images) -> list[dict]:
        """Detect objects.

        Args:
            images: ``[B, 3, H, W]`` / ``[B, H, W, 3]`` / one image, RGB 0-255 (numpy or torch; checks in
                :func:`to_nchw`). ``B`` may be 0.

        Returns:
            One dict per image (an empty list for an empty batch): ``boxes`` (np.ndarray [K, 5]
            ``(cx, cy, w, h, angle)``), ``scores`` [K], ``labels`` [K] int64, by decreasing score.
        """
        x = to_nchw(images, self.input_size, self.meta["input_dtype"])
        if x.shape[0] == 0:  # an empty batch: nothing to run
            return []
        step = self.batch_size or x.shape[0]
        results: list[dict] = []
        for s in range(0, x.shape[0], step):
            chunk = x[s : s + step]
            n = chunk.shape[0]
            if self.fixed_batch and n < self.fixed_batch:  # a fixed-batch graph: pad the last chunk
                chunk = np.concatenate([chunk, np.zeros((self.fixed_batch - n, *chunk.shape[1:]), chunk.dtype)])
            results.extend(_postprocess(self.meta, self.backend(chunk))[:n])
        return results
