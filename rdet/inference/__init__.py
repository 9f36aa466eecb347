"""Inference on scenes of any size: sliding windows, backends, merging, scene I/O and writers.

``rdet.predict`` is :func:`rdet.inference.predict.predict`; readers/writers live in :mod:`rdet.inference.io`,
the window grid and merge in :mod:`rdet.inference.tiling`.
"""

from rdet.inference.predict import PredictInfo, SceneDetections, load_backend, predict

__all__ = ["predict", "load_backend", "PredictInfo", "SceneDetections"]
