"""What one request to ``rdet serve`` may cost (kept free of heavy imports: the CLI shows these defaults)."""

from __future__ import annotations

from dataclasses import dataclass

QUEUE_SIZE = 64  # requests waiting for the model; beyond it a visitor is told the queue is full


@dataclass(frozen=True)
class Budget:
    """What one request may cost.

    Attributes:
        max_upload_mb: uploads larger than this are refused (gradio also stops them at the door).
        max_pixels: scenes with more pixels are refused from the file header, before any decode.
        max_tiles: scenes needing more windows (at the chosen tile, overlap and scale) are refused before running.
        time_limit_s: the model stops between batches once a request has run this long.
    """

    max_upload_mb: float = 100.0
    max_pixels: int = 100_000_000
    max_tiles: int = 400
    time_limit_s: float = 300.0
