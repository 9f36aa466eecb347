"""The models ``rdet bench`` times: the published configs with their variants, MMRotate's published figures
(fps and training memory), the user's own files, and the input sizes (:mod:`rdet.bench.fps` runs them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from rdet.resources import configs_dir

if TYPE_CHECKING:
    from rdet.models.detector import DenseDetector

INPUTS = {"dota": (1024, 1024), "hrsc": (512, 800)}  # (H, W): DOTA split tiles, HRSC img_size (512, 800)
RETINA_DOTA = "rotated_retinanet/rotated-retinanet-rbox-le90_r50_fpn_1x_dota.py"
RETINA_HRSC = "rotated_retinanet/rotated-retinanet-rbox-le90_r50_fpn_rr-6x_hrsc.py"


@dataclass(frozen=True)
class BenchModel:
    """A benchmark model: published configs per input, with the changes that make the variant.

    Attributes:
        configs: input key (``'dota'``/``'hrsc'``) -> config path relative to ``configs/``.
        depth: backbone depth override (None: the config's).
        narrow: 64-channel FPN and head with 2 stacked convs (the quickstart's width, for CPU runs).
        published: input key -> MMRotate's fps on one RTX 2080 Ti (batch 1, fp32, with NMS).
        published_mem: input key -> MMRotate's training "Mem (GB)" (batch 2 per GPU).
    """

    label: str
    configs: dict[str, str]
    depth: int | None = None
    narrow: bool = False
    published: dict[str, str] = field(default_factory=dict)
    published_mem: dict[str, str] = field(default_factory=dict)


# Published numbers: MMRotate configs/kld/README.md and configs/r3det/README.md (1.x tables): Rotated RetinaNet
# R-50 hbox-oc 15.7 fps / le90 16.9 fps, 3.38 GB; HRSC (800, 512) le90 38.2 / oc 39.2 fps, 1.56 GB; R3Det 12.4 fps,
# 3.54 GB; R3Det-tiny 15.6 fps (14.0 with KLD), 3.23 GB (3.44 with KLD). No speeds are published.
MODELS: dict[str, BenchModel] = {
    "retinanet-r18": BenchModel("Rotated RetinaNet R-18", {"dota": RETINA_DOTA, "hrsc": RETINA_HRSC}, depth=18),
    "retinanet-r34": BenchModel("Rotated RetinaNet R-34", {"dota": RETINA_DOTA, "hrsc": RETINA_HRSC}, depth=34),
    "retinanet-r50": BenchModel(
        "Rotated RetinaNet R-50",
        {"dota": RETINA_DOTA, "hrsc": RETINA_HRSC},
        published={"dota": "15.7-16.9", "hrsc": "38.2-39.2"},
        published_mem={"dota": "3.38", "hrsc": "1.56"},
    ),
    "retinanet-r18-ld": BenchModel(
        "Rotated RetinaNet R-18 LD student (distribution head)",
        {"dota": "ld/rotated_retinanet_distribution_hbb_kld_r18_r34_fpn_1x_dota_oc.py"},
    ),
    "retinanet-r18-narrow": BenchModel(
        "Rotated RetinaNet R-18, 64-ch FPN/head", {"dota": RETINA_DOTA, "hrsc": RETINA_HRSC}, depth=18, narrow=True
    ),
    "r3det-r50": BenchModel(
        "R3Det R-50",
        {"dota": "r3det/r3det-oc_r50_fpn_1x_dota.py"},
        published={"dota": "12.4"},
        published_mem={"dota": "3.54"},
    ),
    "r3det-tiny-r50": BenchModel(
        "R3Det-tiny R-50",
        {"dota": "r3det/r3det-tiny-oc_r50_fpn_1x_dota.py"},
        published={"dota": "14.0-15.6"},
        published_mem={"dota": "3.23-3.44"},
    ),
    "tiny": BenchModel(
        "tiny (quickstart R-18, 64-ch, 4 classes)",
        {
            "dota": "quickstart/rotated-retinanet-rbox-le90_r18_fpn_kld-stable_synthetic.py",
            "hrsc": "quickstart/rotated-retinanet-rbox-le90_r18_fpn_kld-stable_synthetic.py",
        },
    ),
}
DEFAULT_MODELS = ("retinanet-r18", "retinanet-r34", "retinanet-r50", "r3det-r50", "r3det-tiny-r50")


@dataclass
class UserModel:
    """The user's own model file for ``rdet bench --model PATH``: a checkpoint (``.pt``, or a zoo name), an ONNX
    file or a TensorRT engine. Checkpoints run every requested backend like the published models; exported
    files run as they are (``onnx``/``trt``, with the NMS they were exported with), at their fixed input size."""

    path: str
    label: str = ""
    published: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.label = self.label or Path(self.path).name

    @property
    def exported(self) -> str | None:
        """``'onnx'`` / ``'trt'`` for an exported file, ``None`` for a checkpoint."""
        suffix = Path(self.path).suffix.lower()
        return "onnx" if suffix == ".onnx" else "trt" if suffix in (".engine", ".plan", ".trt") else None

    def load(self, device: torch.device):
        """The eval-mode model on ``device`` (checkpoints), or an ``export.runtime.Runner`` (exported files)."""
        if self.exported:
            from rdet.export.runtime import Runner

            return Runner(self.path, device="cuda" if device.type == "cuda" else "cpu")
        from rdet.checkpoint import load_checkpoint

        return load_checkpoint(self.path, device=str(device)).eval()


def default_inputs(model) -> list[str]:
    """``WxH`` of a loaded user model: an exported file's fixed input, or its config's training size."""
    if hasattr(model, "input_size"):
        h, w = model.input_size
        return [f"{w}x{h}"]
    size = model.config.data.img_size
    h, w = (size, size) if isinstance(size, int) else size
    return [f"{-(-w // 32) * 32}x{-(-h // 32) * 32}"]


def parse_input(text: str) -> tuple[str, tuple[int, int]]:
    """``'dota'`` / ``'hrsc'`` / ``'WxH'`` (width first, as "800x512") -> (config key, (H, W)).

    A ``WxH`` size uses the model's DOTA config.
    """
    if text in INPUTS:
        return text, INPUTS[text]
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"input must be one of {sorted(INPUTS)} or WIDTHxHEIGHT, got {text!r}") from None
    if w <= 0 or h <= 0 or w % 32 or h % 32:
        raise ValueError(f"input {text!r}: width and height must be positive multiples of 32")
    return "dota", (h, w)


def bench_config(model: BenchModel, key: str):
    """The model's config for input ``key`` with its variant changes, no backbone weights; None if it has none."""
    from rdet.config import load_config

    if key not in model.configs:
        return None
    config = load_config(configs_dir() / model.configs[key])
    m = config.model
    m.backbone.weights = None  # random weights: speed does not depend on them, and nothing is downloaded
    if model.depth is not None:
        m.backbone.depth = model.depth
    if model.narrow:
        m.neck.out_channels, m.head.feat_channels, m.head.stacked_convs = 64, 64, 2
    return config


def build(model: BenchModel, key: str, device: torch.device) -> DenseDetector | None:
    """The eval-mode model (seeded random weights) on ``device``, or None if the model has no such input."""
    import rdet

    config = bench_config(model, key)
    if config is None:
        return None
    torch.manual_seed(0)
    return rdet.build_model(config).eval().to(device)
