"""A region of interest drawn into the video as a closed outline of one colour (Stall Catchers' orange
vessel outline): find it and keep only its inside."""

from __future__ import annotations

import numpy as np

from cineflow.data.readers import UnreadableVideo


def outline_inside(frames: np.ndarray, color: list[int], tolerance: int, min_pixels: int = 16) -> np.ndarray:
    """Boolean [H, W] mask of the inside of the closed outline of `color`, the outline itself excluded.

    The outline is the set of pixels within `tolerance` of `color` on every channel in most of (up to 8)
    frames spread over the video: it is drawn on every frame, while content that passes through that colour
    does not stay. Video compression blurs a thin line's colour into its neighbours, so gaps of a pixel are
    closed. The inside is the largest region the outline encloses: what it separates from the frame's border.

    Args:
        frames: [T, H, W, 3] uint8 RGB.
        color: RGB of the outline.
        tolerance: the largest difference per channel that still counts as the outline.
        min_pixels: fewer outline pixels than this is no outline.
    """
    import cv2

    if frames.shape[-1] != 3:
        raise ValueError("the outline is found in RGB frames")
    picks = np.linspace(0, len(frames) - 1, min(8, len(frames))).round().astype(int)
    target = np.asarray(color, np.int16)
    hits = [(np.abs(frames[i].astype(np.int16) - target) <= tolerance).all(-1) for i in picks]
    outline = (np.mean(hits, axis=0) > 0.5).astype(np.uint8)
    if outline.sum() < min_pixels:
        raise UnreadableVideo(f"no outline of colour {list(color)} (tolerance {tolerance}) found; check "
                              "cache.roi.outline_color, raise its tolerance, or remove the video")
    kernel = np.ones((3, 3), np.uint8)
    outline = cv2.morphologyEx(outline, cv2.MORPH_CLOSE, kernel)
    # regions of what is not outline (4-connected, so a diagonal step of the line still seals it)
    count, regions, stats, _ = cv2.connectedComponentsWithStats(1 - outline, connectivity=4)
    border = set(np.unique(np.concatenate([regions[0], regions[-1], regions[:, 0], regions[:, -1]])))
    enclosed = [r for r in range(1, count) if r not in border]
    if not enclosed:
        raise UnreadableVideo(f"the outline of colour {list(color)} is not closed: nothing lies inside it; check "
                              "cache.roi.tolerance or remove the video")
    largest = max(enclosed, key=lambda r: stats[r, cv2.CC_STAT_AREA])
    return regions == largest


def bounding_box(mask: np.ndarray) -> list[int]:
    """[x, y, width, height] of a mask's True pixels."""
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    return [int(cols[0]), int(rows[0]), int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1)]
