"""FLOPs of a detector at an input size, and the peak FLOP/s of a device: the "physical limit" of a benchmark.

FLOPs are counted as ``2 * MACs`` of every convolution and linear layer (multiply and add both count; biases,
normalisation, activations, upsampling, anchor decoding and NMS are not counted: they are < 1 % of a
RetinaNet's arithmetic). Two independent counters:

* ``method='hooks'``: forward hooks on ``nn.Conv2d`` / ``nn.Linear`` compute ``2 * out.numel() * (C_in /
  groups) * k_h * k_w`` (conv) and ``2 * out.numel() * in_features`` (linear) from the output shapes;
* ``method='torch'``: ``torch.utils.flop_counter.FlopCounterMode`` (counts ``aten.convolution``/``mm``/...).

Models are built on the ``meta`` device, so counting a 1024 x 1024 R-50 takes a second and no memory. Example::

    .venv/bin/python -m rdet.bench.flops --models retinanet-r18 retinanet-r50 --inputs dota hrsc

gives 327.8 GFLOP (R-18) and 430.3 GFLOP (R-50) per 1024 x 1024 image with the DOTA configs (15 classes,
9 anchors per location, 256-channel FPN and head with 4 stacked convs): the head alone is 224.1 GFLOP because
it runs 8 convolutions of 256 x 256 x 3 x 3 on every FPN location (21,824 of them at 1024 px).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

# Dense (no sparsity) tensor-core peaks from the vendors' datasheets, TFLOP/s: fp16/bf16 with fp32 accumulate,
# tf32, plain fp32 (CUDA cores). First matching name wins, so specific names come first. The GeForce cards run
# fp16 with fp32 accumulate at half the fp16-accumulate rate; that half rate is what PyTorch uses.
GPU_PEAKS: list[tuple[str, dict[str, float]]] = [
    ("H100 PCIe", {"fp16": 756.0, "tf32": 378.0, "fp32": 51.2}),
    ("H100 NVL", {"fp16": 835.0, "tf32": 418.0, "fp32": 60.0}),
    ("H100", {"fp16": 989.0, "tf32": 494.0, "fp32": 67.0}),  # SXM5 ("NVIDIA H100 80GB HBM3")
    ("H200", {"fp16": 989.0, "tf32": 494.0, "fp32": 67.0}),
    ("A100", {"fp16": 312.0, "tf32": 156.0, "fp32": 19.5}),
    ("L40S", {"fp16": 362.0, "tf32": 183.0, "fp32": 91.6}),
    ("L4", {"fp16": 121.0, "tf32": 60.0, "fp32": 30.3}),
    ("A10", {"fp16": 125.0, "tf32": 62.5, "fp32": 31.2}),
    ("RTX 4090", {"fp16": 165.2, "tf32": 82.6, "fp32": 82.6}),
    ("RTX 2080 Ti", {"fp16": 53.8, "fp32": 13.4}),  # Turing: no tf32
    ("T4", {"fp16": 65.0, "fp32": 8.1}),
    ("V100", {"fp16": 125.0, "fp32": 15.7}),
]


@dataclass
class FlopCount:
    """FLOPs (``2 * MACs``) of one call.

    Attributes:
        total: all counted FLOPs.
        by_module: FLOPs per top-level child of the model (``backbone``, ``neck``, ``bbox_head``, ...), hooks only.
        method: ``'hooks'`` or ``'torch'``.
    """

    total: int
    method: str
    by_module: dict[str, int] = field(default_factory=dict)

    @property
    def gflop(self) -> float:
        return self.total / 1e9


def conv2d_flops(
    batch: int,
    in_channels: int,
    out_channels: int,
    kernel_size: tuple[int, int],
    out_size: tuple[int, int],
    groups: int = 1,
) -> int:
    """FLOPs of a 2-D convolution: ``2 * B * C_out * H_out * W_out * (C_in / groups) * k_h * k_w`` (no bias)."""
    if in_channels % groups:
        raise ValueError(f"in_channels {in_channels} is not divisible by groups {groups}")
    return (
        2 * batch * out_channels * out_size[0] * out_size[1] * (in_channels // groups) * kernel_size[0] * kernel_size[1]
    )


def linear_flops(rows: int, in_features: int, out_features: int) -> int:
    """FLOPs of ``rows`` vectors through a linear layer: ``2 * rows * in * out`` (no bias)."""
    return 2 * rows * in_features * out_features


def _top_level(model: nn.Module) -> dict[nn.Module, str]:
    """Every submodule -> the name of the top-level child that contains it ('' for the model itself)."""
    owner = {model: ""}
    for name, child in model.named_children():
        for m in child.modules():
            owner.setdefault(m, name)
    return owner


def count_flops(model: nn.Module, run: Callable[[], object], method: str = "hooks") -> FlopCount:
    """Count the FLOPs of ``run()`` (a call that uses ``model``, e.g. ``lambda: model.decode(x)``).

    Args:
        model: the module whose ``Conv2d``/``Linear`` layers are hooked (``'hooks'``) or named (``'torch'``).
        run: a zero-argument callable; it runs under ``torch.no_grad()``. Meta tensors work.
        method: ``'hooks'`` or ``'torch'`` (``FlopCounterMode``).

    Returns:
        :class:`FlopCount`.
    """
    if method not in ("hooks", "torch"):
        raise ValueError(f"method must be 'hooks' or 'torch', got {method!r}")
    if method == "torch":
        from torch.utils.flop_counter import FlopCounterMode

        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            run()
        return FlopCount(int(counter.get_total_flops()), "torch")

    owner = _top_level(model)
    by_module: dict[str, int] = {}

    def hook(module: nn.Module, inputs, output) -> None:
        if isinstance(module, nn.Conv2d):
            b, c_out, h, w = output.shape
            kh, kw = module.kernel_size
            flops = conv2d_flops(b, module.in_channels, c_out, (kh, kw), (h, w), module.groups)
        else:  # nn.Linear: every leading dim is a row
            assert isinstance(module, nn.Linear)
            flops = linear_flops(output.numel() // module.out_features, module.in_features, module.out_features)
        key = owner.get(module, "") or type(module).__name__
        by_module[key] = by_module.get(key, 0) + flops

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    try:
        with torch.no_grad():
            run()
    finally:
        for h in handles:
            h.remove()
    return FlopCount(sum(by_module.values()), "hooks", by_module)


def model_flops(config, size: tuple[int, int], batch: int = 1, method: str = "hooks") -> FlopCount:
    """FLOPs of ``model.decode`` (network + box decoding, no NMS) for ``batch`` images of ``size = (H, W)``.

    The model is built from ``config`` on the meta device (no weights are read: ``backbone.weights`` is ignored).
    """
    import copy

    import rdet

    config = copy.deepcopy(config)
    config.model.backbone.weights = None
    with torch.device("meta"):
        model = rdet.build_model(config).eval()
    x = torch.empty(batch, 3, *size, device="meta")
    return count_flops(model, lambda: model.decode(x), method)


# ------------------------------------------------------------------------------------------ device peak
def gpu_peak(name: str, precision: str) -> float | None:
    """Datasheet peak FLOP/s of a GPU (matched by ``torch.cuda.get_device_name``) at ``precision``
    (``'fp16'`` also for bf16; ``'tf32'`` falls back to ``'fp32'`` on GPUs without tf32); None if unknown."""
    for key, peaks in GPU_PEAKS:
        if key.lower() in name.lower():
            value = peaks.get(precision) or (peaks.get("fp32") if precision == "tf32" else None)
            return None if value is None else value * 1e12
    return None


def measured_matmul_peak(
    device: str = "cpu", dtype: torch.dtype = torch.float32, n: int | None = None, repeats: int = 5
) -> float:
    """The best FLOP/s of ``repeats`` square ``n x n`` matmuls: the device's practical peak (same process).

    ``n`` defaults to 2048 on CPU (0.2 s per product on 2 cores) and 8192 on CUDA.
    """
    n = n or (8192 if device.startswith("cuda") else 2048)
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    best = float("inf")
    for _ in range(repeats + 1):  # the first product warms up the library
        if device.startswith("cuda"):
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        a @ b
        if device.startswith("cuda"):
            torch.cuda.synchronize(device)
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best


HALF_BACKENDS = ("bf16", "fp16", "trt-fp16")  # benchmark backends that compute in 16 bits


@dataclass
class Peaks:
    """Peak FLOP/s per precision (``'fp32'``, ``'tf32'``, ``'fp16'``) and where each came from."""

    flops: dict[str, float] = field(default_factory=dict)
    source: dict[str, str] = field(default_factory=dict)
    measure_each: bool = False  # CPU: measure after every row (a shared machine's load changes by minutes)
    seen: dict[str, list[float]] = field(default_factory=dict)

    def for_backend(self, backend: str, device: torch.device) -> tuple[float | None, str]:
        """The peak FLOP/s for a row of ``backend`` and its precision key."""
        if backend in HALF_BACKENDS:
            key = "fp16"
        elif device.type == "cuda" and "tf32" in self.flops and torch.backends.cudnn.allow_tf32:
            key = "tf32"
        else:
            key = "fp32"
        if self.measure_each:
            value = measured_matmul_peak("cpu", torch.bfloat16 if key == "fp16" else torch.float32, repeats=3)
            self.seen.setdefault(key, []).append(value)
            return value, key
        return self.flops.get(key), key

    def describe(self) -> str:
        if self.measure_each:
            return (
                "; ".join(
                    f"{k} {min(v) / 1e12:.3g}-{max(v) / 1e12:.3g} TFLOP/s (best of 3 2048^3 "
                    f"{'bf16' if k == 'fp16' else 'fp32'} matmuls, measured after each row)"
                    for k, v in self.seen.items()
                )
                or "n/a"
            )
        return "; ".join(f"{k} {v / 1e12:.3g} TFLOP/s ({self.source[k]})" for k, v in self.flops.items())


def device_peaks(device: torch.device, override_tflops: float | None) -> Peaks:
    """Datasheet peaks on a known GPU, else the best matmul FLOP/s measured now; on CPU, measured after each row."""
    peaks = Peaks()
    if override_tflops:
        for key in ("fp32", "tf32", "fp16"):
            peaks.flops[key], peaks.source[key] = override_tflops * 1e12, "--peak-tflops"
        return peaks
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        for key in ("fp32", "tf32", "fp16"):
            value = gpu_peak(name, key)
            if value:
                peaks.flops[key], peaks.source[key] = value, f"datasheet, {name}"
        if not peaks.flops:  # unknown GPU: measure
            peaks.flops["fp32"] = measured_matmul_peak(str(device), torch.float32)
            peaks.flops["fp16"] = measured_matmul_peak(str(device), torch.float16)
            peaks.source = {k: f"measured 8192^3 matmul, {name}" for k in peaks.flops}
        return peaks
    peaks.measure_each = True
    return peaks


# ------------------------------------------------------------------------------------------ CLI
def cli(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="flops.py", description="FLOPs per image of the benchmark models (meta device)")
    ap.add_argument(
        "--models",
        nargs="+",
        default=["retinanet-r18", "retinanet-r34", "retinanet-r50", "r3det-r50", "r3det-tiny-r50"],
    )
    ap.add_argument("--inputs", nargs="+", default=["dota", "hrsc"], help="dota (1024x1024), hrsc (512x800) or HxW")
    args = ap.parse_args(argv)
    from rdet.bench.models import MODELS, bench_config, parse_input

    print("| model | input | GFLOP (hooks) | GFLOP (FlopCounterMode) | backbone | neck | head(s) |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for name in args.models:
        if name not in MODELS:
            raise ValueError(f"unknown model {name!r}; choose from {sorted(MODELS)}")
        for inp in args.inputs:
            label, size = parse_input(inp)
            config = bench_config(MODELS[name], label)
            if config is None:
                print(f"| {name} | {label} | (no config for this input) | | | | |")
                continue
            hooks, torch_count = model_flops(config, size), model_flops(config, size, method="torch")
            parts = hooks.by_module
            heads = sum(v for k, v in parts.items() if k not in ("backbone", "neck"))
            print(
                f"| {name} | {size[1]}x{size[0]} | {hooks.gflop:.1f} | {torch_count.gflop:.1f} | "
                f"{parts.get('backbone', 0) / 1e9:.1f} | {parts.get('neck', 0) / 1e9:.1f} | {heads / 1e9:.1f} |"
            )
    return 0


if __name__ == "__main__":
    sys.exit(cli())
