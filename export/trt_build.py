"""Build a TensorRT engine from an exported ONNX file (TensorRT >= 10 Python API, imported lazily).

``build_engine(onnx_path, engine_path, plugin_lib=..., fp16=..., min_batch/opt_batch/max_batch)`` parses the
ONNX file (a ``plugin`` graph needs the RotatedNMS plugin library, built from ``export/plugins/rotated_nms``),
adds an optimisation profile for a dynamic batch, and writes the serialized engine plus ``<engine>.json``
(the ONNX metadata, which TensorRT engines cannot carry, read back by :class:`rdet.export.runtime.Runner`).
"""

from __future__ import annotations

import json
from pathlib import Path

from rdet.export.runtime import import_tensorrt, load_plugin_library, make_logger

# TensorRT's TopK layer takes K <= 3840. The plugin and onnx graphs select each FPN level's candidates with one
# TopK of pre_nms_topk (rdet.models.selection.level_topk); the onnx graph orders them in rounds of <= 3840.
TRT_MAX_TOPK = 3840


def check_trt_topk(meta: dict, source: str) -> None:
    """Raise ValueError when a ``plugin``/``onnx`` graph's ``pre_nms_topk`` (per FPN level) exceeds TensorRT's TopK
    limit."""
    k = (meta.get("nms_params") or {}).get("pre_nms_topk")
    if meta.get("nms") in ("onnx", "plugin") and isinstance(k, int) and k > TRT_MAX_TOPK:
        raise ValueError(
            f"{source}: pre_nms_topk {k} exceeds TensorRT's TopK limit of {TRT_MAX_TOPK} (one TopK per FPN "
            f"level): export with --pre-nms-topk {TRT_MAX_TOPK} or less (pre_nms_topk= in export_onnx)"
        )


def _batch_profile(
    meta: dict, min_batch: int | None, opt_batch: int | None, max_batch: int | None
) -> tuple[int, int, int] | None:
    """``(min, opt, max)`` for a dynamic-batch graph; None for a fixed batch (after checking the arguments)."""
    fixed = meta.get("batch")
    given = [b for b in (min_batch, opt_batch, max_batch) if b is not None]
    if any(not isinstance(b, int) or isinstance(b, bool) or b < 1 for b in given):
        raise ValueError(f"min/opt/max batch must be ints >= 1, got {min_batch}, {opt_batch}, {max_batch}")
    if fixed is not None:
        if any(b != fixed for b in given):
            raise ValueError(
                f"the ONNX graph has a fixed batch {fixed}; export with dynamic_batch=True for a "
                f"batch profile (got min/opt/max {min_batch}/{opt_batch}/{max_batch})"
            )
        return None
    lo = min_batch or 1
    hi = max_batch or max(lo, opt_batch or 1)
    opt = opt_batch or hi
    if not lo <= opt <= hi:
        raise ValueError(f"need min_batch <= opt_batch <= max_batch, got {lo} <= {opt} <= {hi}")
    return lo, opt, hi


def build_engine(
    onnx_path: str | Path,
    engine_path: str | Path,
    plugin_lib: str | Path | None = None,
    fp16: bool = False,
    min_batch: int | None = None,
    opt_batch: int | None = None,
    max_batch: int | None = None,
    workspace_gib: float = 4.0,
) -> Path:
    """Build and save a TensorRT engine.

    Args:
        onnx_path: a file written by :func:`export.onnx_export.export_onnx`.
        engine_path: output engine file (``.engine``/``.plan``/``.trt``); ``<engine_path>.json`` is written too.
        plugin_lib: ``librdet_rotated_nms_plugin.so`` (required for ``nms='plugin'`` graphs).
        fp16: allow fp16 kernels (TensorRT 10 ``BuilderFlag.FP16``; TensorRT 11+ builds strongly typed
            networks only and rejects this flag with an explanation). TF32 is always off: an fp32 engine
            computes in fp32.
        min_batch, opt_batch, max_batch: the optimisation profile of a dynamic-batch graph.
        workspace_gib: builder workspace limit.

    Returns:
        The engine path.

    Raises:
        RuntimeError: TensorRT missing, the parser or the builder failed (their messages included).
        ValueError: inconsistent arguments, or an ``nms='onnx'`` graph whose ``pre_nms_topk`` exceeds TensorRT's
            TopK limit (3840).
    """
    from rdet.export.onnx_export import read_metadata
    from rdet.export.runtime import ENGINE_SUFFIXES

    onnx_path, engine_path = Path(onnx_path), Path(engine_path)
    if not onnx_path.is_file():
        raise FileNotFoundError(f"ONNX file not found: {onnx_path}")
    if engine_path.suffix not in ENGINE_SUFFIXES:
        raise ValueError(f"engine_path must end with one of {ENGINE_SUFFIXES}, got {engine_path}")
    meta = read_metadata(onnx_path)
    if "nms" not in meta:
        raise ValueError(f"{onnx_path}: has no rdet metadata (was it written by export_onnx?)")
    check_trt_topk(meta, str(onnx_path))
    if meta["nms"] == "plugin" and plugin_lib is None:
        raise ValueError(
            f"{onnx_path} ends in the rdet::RotatedNMS plugin node: pass plugin_lib (build "
            f"export/plugins/rotated_nms with CMake), or export with nms='onnx'"
        )
    profile_batch = _batch_profile(meta, min_batch, opt_batch, max_batch)

    trt = import_tensorrt()
    logger = make_logger(trt)
    load_plugin_library(trt, plugin_lib)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # explicit batch is the only mode in TensorRT >= 10
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise RuntimeError(
            f"{onnx_path}: TensorRT {trt.__version__} could not parse the ONNX file: "
            f"{'; '.join(errors + logger.errors)}"
        )
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gib * (1 << 30)))
    if hasattr(trt.BuilderFlag, "TF32"):
        # TF32 rounds fp32 convolution inputs to 10 mantissa bits: the fp32 engine would no longer match the
        # fp32 ONNX graph (boxes and scores move, NMS keeps other boxes). fp16 is opt-in (fp16=True).
        config.clear_flag(trt.BuilderFlag.TF32)
    if fp16:
        if not hasattr(trt.BuilderFlag, "FP16"):
            raise ValueError(
                f"TensorRT {trt.__version__} builds strongly typed networks only, so fp16 needs an fp16 "
                f"ONNX graph, which rdet does not export yet: build without fp16"
            )
        config.set_flag(trt.BuilderFlag.FP16)
    if profile_batch is not None:
        profile = builder.create_optimization_profile()
        inp = network.get_input(0)
        chw = tuple(inp.shape)[1:]
        lo, opt, hi = profile_batch
        profile.set_shape(inp.name, (lo, *chw), (opt, *chw), (hi, *chw))
        config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError(
            f"{onnx_path}: TensorRT {trt.__version__} failed to build an engine: "
            f"{'; '.join(logger.errors) or 'no message'}"
        )
    engine_path.parent.mkdir(parents=True, exist_ok=True)
    engine_path.write_bytes(bytes(serialized))
    sidecar = dict(
        meta,
        tensorrt_version=trt.__version__,
        fp16=bool(fp16),
        source_onnx=str(onnx_path),
        plugin_lib=str(Path(plugin_lib).resolve()) if plugin_lib else None,
        batch_profile=list(profile_batch) if profile_batch else None,
    )
    engine_path.with_name(engine_path.name + ".json").write_text(json.dumps(sidecar, indent=2))
    return engine_path
