"""Matplotlib without a display, and figures written as PNG files: the one setup every stage that draws shares
(the report's figures, Grad-CAM's attention plots)."""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from cineflow.io import atomic_path  # noqa: E402

__all__ = ["plt", "png_bytes", "save_png"]


def png_bytes(fig) -> bytes:
    """The figure as PNG bytes (no timestamp or software tag, so the same figure gives the same bytes); closes it."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def save_png(fig, path: str | Path) -> None:
    """Write the figure as a PNG file, atomically; closes it."""
    data = png_bytes(fig)
    with atomic_path(path) as tmp:
        Path(tmp).write_bytes(data)
