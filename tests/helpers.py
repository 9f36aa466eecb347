"""Shared test helpers (imported by test modules; pytest puts this folder on sys.path)."""

from rdet.config import Config


def tiny_config(classes=("plane", "ship"), nms_pre: int = 2000, max_per_img: int = 2000) -> Config:
    """R-18 with a 32-channel FPN/head of one conv: a Rotated RetinaNet fast enough for CPU tests."""
    c = Config()
    c.model.backbone.depth = 18
    c.model.neck.out_channels = 32
    c.model.head.feat_channels = 32
    c.model.head.stacked_convs = 1
    c.model.head.num_classes = len(classes)
    c.model.test.nms_pre = nms_pre
    c.model.test.max_per_img = max_per_img
    c.data.classes = tuple(classes)
    return c
