"""``Annotations``: the one record every label reader returns (one image, all its objects).

Objects are kept as the polygons of the file (``[N, 8]`` pixels, vertex order as written), because a
polygon is what every format can express and every geometric transform maps exactly; the rotated boxes
of ``rdet.boxes`` are fitted from them on demand (``boxes(version)``), so no angle version is baked into
the data.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from rdet.boxes import check_version, poly2obb


@dataclass
class Annotations:
    """Labels of one image.

    Attributes:
        image_path: the image file, or ``None`` when it is unknown (a label file without its image).
        width, height: image size in pixels, or ``None`` when unknown.
        polygons (np.ndarray[N, 8] float32): ``(x1, y1, ..., x4, y4)`` in pixels of the image.
        labels (np.ndarray[N] int64): indices into ``class_names``.
        class_names: the class list the labels index (the whole list, not only the classes present).
        difficult (np.ndarray[N] bool): DOTA's ``difficult`` flag (any non-zero difficulty).
        difficulty (np.ndarray[N] int64): the raw value of the file (DOTA: 0, 1, or 2 for objects cut by a
            tile edge); defaults to ``difficult`` as 0/1.
        label_path: the label file, or ``None``.
        meta: format extras (``gsd``, ``imagesource``, HRSC ``headers``, skipped lines in lenient mode).
    """

    image_path: str | None
    width: int | None
    height: int | None
    polygons: np.ndarray
    labels: np.ndarray
    class_names: list[str]
    difficult: np.ndarray
    difficulty: np.ndarray | None = None
    label_path: str | None = None
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.polygons = np.asarray(self.polygons, dtype=np.float32).reshape(-1, 8)
        n = len(self.polygons)
        self.labels = np.asarray(self.labels, dtype=np.int64).reshape(-1)
        self.difficult = np.asarray(self.difficult, dtype=bool).reshape(-1)
        if self.difficulty is None:
            self.difficulty = self.difficult.astype(np.int64)
        self.difficulty = np.asarray(self.difficulty, dtype=np.int64).reshape(-1)
        self.class_names = list(self.class_names)
        where = self.label_path or self.image_path or "Annotations"
        for name, arr in (("labels", self.labels), ("difficult", self.difficult), ("difficulty", self.difficulty)):
            if len(arr) != n:
                raise ValueError(f"{where}: {name} has {len(arr)} entries but there are {n} polygons")
        if n and (self.labels.min() < 0 or self.labels.max() >= len(self.class_names)):
            raise ValueError(
                f"{where}: labels must lie in [0, {len(self.class_names)}), got "
                f"[{self.labels.min()}, {self.labels.max()}]"
            )
        if not np.array_equal(self.difficult, self.difficulty != 0):
            raise ValueError(f"{where}: difficult must equal difficulty != 0")
        if not np.isfinite(self.polygons).all():
            raise ValueError(f"{where}: polygons contain NaN or infinity")
        for name, v in (("width", self.width), ("height", self.height)):
            if v is not None and int(v) <= 0:
                raise ValueError(f"{where}: {name} must be positive, got {v}")

    def __len__(self) -> int:
        return len(self.polygons)

    @property
    def names(self) -> list[str]:
        """Class name of each object (``[N]``)."""
        return [self.class_names[i] for i in self.labels]

    def boxes(self, version: str = "le90") -> torch.Tensor:
        """Rotated boxes fitted to the polygons (minimum-area rectangles, ``rdet.boxes.poly2obb``).

        Returns:
            Tensor[N, 5] float32: ``(cx, cy, w, h, angle)`` regularised to ``version``.
        """
        check_version(version)
        return poly2obb(torch.from_numpy(self.polygons.astype(np.float64)), version).float()

    def select(self, keep: np.ndarray) -> Annotations:
        """A copy with only the objects selected by ``keep`` (bool mask ``[N]`` or indices)."""
        return Annotations(
            self.image_path,
            self.width,
            self.height,
            self.polygons[keep],
            self.labels[keep],
            self.class_names,
            self.difficult[keep],
            self.difficulty[keep],
            self.label_path,
            dict(self.meta),
        )

    @staticmethod
    def empty(
        class_names: list[str] | tuple[str, ...],
        image_path: str | None = None,
        width: int | None = None,
        height: int | None = None,
    ) -> Annotations:
        """A record without objects."""
        return Annotations(
            image_path,
            width,
            height,
            np.zeros((0, 8), np.float32),
            np.zeros(0, np.int64),
            list(class_names),
            np.zeros(0, bool),
        )
