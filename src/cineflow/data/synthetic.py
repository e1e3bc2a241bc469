"""Synthetic low-quality copies of good videos, as the echo quality study pairs them (seed 001,
`create_synthetic_low_quality(video, noise_level=0.2, blur_kernel=5, contrast_reduction=0.5)`).

A copy is a row of the labels table (an augmented copy: it trains only, with its patient, as the splits treat
every augmented copy) and, when cached, its original's frames degraded. The degradation works on the cached
frames, after crop, sector mask and resize: the sector is found on the clean frames, and a blur kernel means
the same at every source resolution. Pixels at the fill colour in every frame (padding, outside the sector or
the ROI) stay as they are, so a copy differs from its original only where the original shows an image, and a
model cannot tell copies by a noisy background alone.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

from cineflow.config import ConfigError

TAG = "low_quality"  # the copies' augment tag and id suffix


@dataclass(frozen=True)
class Degradation:
    """data.synthetic_low_quality's image settings (the schema holds their defaults)."""

    noise_level: float
    blur_kernel: int
    contrast_reduction: float

    @classmethod
    def from_json(cls, text: str) -> "Degradation | None":
        """The settings a shard row carries (`degrade`), None for an empty cell (an ordinary video)."""
        return cls(**json.loads(text)) if isinstance(text, str) and text else None


def degrade(frames: np.ndarray, settings: Degradation, fill: list[int], key: str) -> np.ndarray:
    """[T, H, W, C] uint8 cached frames -> the same, blurred, with less contrast and with noise, seeded by `key`.

    Args:
        frames: the cached frames of the original.
        settings: blur kernel (odd, 1 = none), contrast reduction (0 keeps it, 1 flattens to the mean) and the
            noise's sd on intensities in [0, 1].
        fill: the cache's fill colour (cache.fill); pixels at it in every frame are left alone.
        key: what seeds the noise (the copy's id): the same copy is the same bytes on every run.
    """
    import cv2

    image = ~np.all(frames == np.asarray(fill[: frames.shape[-1]], np.uint8), axis=(0, -1))  # [H, W]
    out = frames.astype(np.float32) / 255.0
    k = settings.blur_kernel
    if k > 1:
        out = np.stack([cv2.GaussianBlur(f, (k, k), 0).reshape(f.shape) for f in out])
    mean = out[:, image].mean() if image.any() else 0.0
    out = mean + (out - mean) * (1.0 - settings.contrast_reduction)
    rng = np.random.default_rng(zlib.crc32(key.encode()))
    out = out + rng.normal(0.0, settings.noise_level, out.shape).astype(np.float32)
    degraded = np.clip(np.rint(out * 255.0), 0, 255).astype(np.uint8)
    return np.where(image[None, :, :, None], degraded, frames)


def with_low_quality_copies(table: pd.DataFrame, spec: dict | None, classes: list[str]) -> pd.DataFrame:
    """The checked labels table with a degraded copy of every original video of class spec["from"]: id
    `<id>__low_quality`, class spec["label"], augment tag `low_quality`, its original's path, group and other
    columns, and a `degrade` column (the settings as JSON; "" for the other rows). `spec` None or without a
    `from` class (data.synthetic_low_quality's default): the table as is.

    Raises ConfigError when a class is not among data.classes, when no video is of class `from`, or when a
    copy's id is taken."""
    if not spec or spec.get("from") is None:
        return table
    where = "data.synthetic_low_quality"
    for key in ("from", "label"):
        if spec[key] not in classes:
            raise ConfigError(f"{where}.{key} is {spec[key]!r}, not one of data.classes {classes}")
    originals = table[(table["label"] == spec["from"]) & (table["augment"] == "")]
    if originals.empty:
        raise ConfigError(f"{where}: no original video of class {spec['from']!r} to copy; check data.classes "
                          "and the labels, or remove the section")
    settings = Degradation(**{k: v for k, v in spec.items() if k not in ("from", "label")})
    copies = originals.assign(video_id=originals["video_id"] + f"__{TAG}", label=spec["label"], augment=TAG,
                              degrade=json.dumps(settings.__dict__, sort_keys=True))
    taken = sorted(set(copies["video_id"]) & set(table["video_id"]))
    if taken:
        raise ConfigError(f"{where}: the copies' ids {taken[:3]} are taken by videos of the table; rename those "
                          "videos or remove the section")
    return pd.concat([table.assign(degrade=""), copies], ignore_index=True)
