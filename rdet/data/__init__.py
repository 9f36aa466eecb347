"""Data pipeline: label formats, datasets, rotated augmentations, DOTA split/merge, synthetic scenes.

``read_labels(path)`` turns any supported label file into an :class:`Annotations` record; see
:mod:`rdet.data.formats` for the formats and the strict/lenient rules. The splitter and merger
(:mod:`rdet.data.split`, :mod:`rdet.data.merge`, Task1 files in :mod:`rdet.data.task1`) use ``rdet.ops``
and are imported from their modules.
"""

from rdet.data.annotations import Annotations
from rdet.data.classes import DIOR_R, DOTA1_0, DOTA1_5, DOTA2_0, HRSC, SYNTHETIC, get_classes
from rdet.data.dataset import RotatedDataset, collate, read_image
from rdet.data.formats import (
    FORMATS,
    detect_format,
    find_image,
    read_image_size,
    read_label_dir,
    read_labels,
    remap_classes,
    write_dota,
    write_yolo_obb,
)
from rdet.data.synthetic import make_synthetic_dataset

__all__ = [
    "Annotations",
    "DIOR_R",
    "DOTA1_0",
    "DOTA1_5",
    "DOTA2_0",
    "FORMATS",
    "HRSC",
    "SYNTHETIC",
    "RotatedDataset",
    "collate",
    "detect_format",
    "find_image",
    "get_classes",
    "make_synthetic_dataset",
    "read_image",
    "read_image_size",
    "read_label_dir",
    "read_labels",
    "remap_classes",
    "write_dota",
    "write_yolo_obb",
]
