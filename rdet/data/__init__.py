"""Data pipeline: label formats, datasets, rotated augmentations, DOTA split/merge, synthetic scenes.

``read_labels(path)`` turns any supported label file into an :class:`Annotations` record; see
:mod:`rdet.data.formats` for the formats and the strict/lenient rules.
"""

from rdet.data.annotations import Annotations
from rdet.data.classes import DIOR_R, DOTA1_0, DOTA1_5, DOTA2_0, HRSC, SYNTHETIC, get_classes
from rdet.data.formats import (FORMATS, detect_format, find_image, read_image_size, read_label_dir, read_labels,
                               remap_classes, write_dota, write_yolo_obb)

__all__ = ['Annotations', 'DIOR_R', 'DOTA1_0', 'DOTA1_5', 'DOTA2_0', 'FORMATS', 'HRSC', 'SYNTHETIC', 'detect_format',
           'find_image', 'get_classes', 'read_image_size', 'read_label_dir', 'read_labels', 'remap_classes',
           'write_dota', 'write_yolo_obb']
