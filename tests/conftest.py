"""Shared fixtures: the tiny model configs and the tiny synthetic training set every CPU test builds on.

* ``tiny_config(classes=..., width=..., ...)``: a Rotated RetinaNet (or R3Det) small enough for 2 CPU cores;
* ``tiny_data``: 6 synthetic 64 x 64 scenes with 1-3 objects each (``<root>/train/{images,labelTxt}``);
* ``train_config(work_dir, ...)``: a tiny config that trains on ``tiny_data`` (3 batches of 2 per epoch).

The fixtures are session-scoped factories (a fresh :class:`Config` per call), so module-scoped fixtures
can use them too.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from rdet.config import Config, RefineConfig
from rdet.data.synthetic import make_synthetic_dataset


def _tiny(
    classes: tuple[str, ...] | str = ("plane", "ship"),
    *,
    width: int = 32,
    depth: int = 18,
    stacked_convs: int = 1,
    reg_max: int = 0,
    r3det_stages: int = 0,
    nms_pre: int = 2000,
    max_per_img: int = 2000,
    name: str = "tiny",
) -> Config:
    """ResNet-``depth`` with a ``width``-channel FPN and head of ``stacked_convs`` convs.

    Args:
        classes: class names, or ``'synthetic'`` (the 4 classes of ``rdet.data.synthetic``).
        reg_max: > 0: a distribution head (distillation).
        r3det_stages: > 0: an R3Det with that many refine stages (oc targets, horizontal init assignment,
            as the published R3Det configs).
    """
    c = Config(name=name)
    m = c.model
    m.backbone.depth = depth
    m.neck.out_channels = m.head.feat_channels = width
    m.head.stacked_convs, m.head.reg_max = stacked_convs, reg_max
    m.test.nms_pre, m.test.max_per_img = nms_pre, max_per_img
    if classes == "synthetic":
        c.data.class_list, m.head.num_classes = "synthetic", 4
    else:
        c.data.classes, m.head.num_classes = tuple(classes), len(classes)
    if r3det_stages:
        m.type, m.head.assign_iou = "r3det", "horizontal"
        m.coder.angle_version, m.coder.edge_swap, m.coder.proj_xy = "oc", False, False
        m.refine = RefineConfig(num_stages=r3det_stages, stage_loss_weights=(1.0,) * r3det_stages, stacked_convs=1)
    return c


@pytest.fixture(scope="session")
def tiny_config():
    """``tiny_config(classes=('plane', 'ship'), *, width=32, depth=18, stacked_convs=1, reg_max=0,
    r3det_stages=0, nms_pre=2000, max_per_img=2000, name='tiny') -> Config``."""
    return _tiny


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    """6 synthetic 64 x 64 scenes (1-3 objects each) in ``<root>/train``; returns ``<root>``."""
    root = tmp_path_factory.mktemp("tiny_data")
    make_synthetic_dataset(root / "train", 6, size=64, seed=0, objects=(1, 3))
    return root


@pytest.fixture(scope="session")
def train_config(tiny_data):
    """``train_config(work_dir, data=tiny_data, **tiny_options) -> Config``: a 16-channel tiny model (synthetic
    classes) training on ``data/train`` at 64 x 64, batch 2, no workers, 2 warm-up iterations, a log line per
    iteration, no evaluation, nothing frozen."""

    def make(work_dir, data: Path | None = None, **options) -> Config:
        c = _tiny("synthetic", **{"width": 16, **options})
        c.model.backbone.frozen_stages, c.model.backbone.norm_eval = 0, False
        root = Path(data or tiny_data)
        c.data.train_images, c.data.train_labels = str(root / "train/images"), str(root / "train/labelTxt")
        c.data.img_size = (64, 64)
        t = c.train
        t.batch_size, t.workers, t.warmup_iters, t.log_interval, t.eval_interval = 2, 0, 2, 1, 0
        t.work_dir = str(work_dir)
        return c

    return make
