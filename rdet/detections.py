"""The detections record returned by ``model.predict`` and ``rdet.predict``."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from rdet.boxes import obb2poly


@dataclass
class Detections:
    """Detections of one image.

    Attributes:
        boxes (Tensor[N, 5]): rotated boxes in the canonical convention (:mod:`rdet.boxes`), image pixels.
        scores (Tensor[N]): confidence in [0, 1], sorted in decreasing order.
        labels (Tensor[N] int64): class indices into ``class_names``.
        class_names: names of all classes of the model.
    """

    boxes: Tensor
    scores: Tensor
    labels: Tensor
    class_names: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    def polygons(self) -> Tensor:
        """Tensor[N, 8]: corners of each box."""
        return obb2poly(self.boxes)

    def to(self, device) -> Detections:
        return Detections(self.boxes.to(device), self.scores.to(device), self.labels.to(device), self.class_names)

    def select(self, keep: Tensor) -> Detections:
        """A subset (``keep``: index or bool mask)."""
        return Detections(self.boxes[keep], self.scores[keep], self.labels[keep], self.class_names)

    @staticmethod
    def empty(class_names: list[str] | None = None, device=None) -> Detections:
        return Detections(
            torch.zeros(0, 5, device=device),
            torch.zeros(0, device=device),
            torch.zeros(0, dtype=torch.long, device=device),
            list(class_names or []),
        )

    def counts(self) -> dict[str, int]:
        """Number of detections per class name (classes without detections omitted)."""
        out: dict[str, int] = {}
        for label in self.labels.tolist():
            name = self.class_names[label] if label < len(self.class_names) else str(label)
            out[name] = out.get(name, 0) + 1
        return out
