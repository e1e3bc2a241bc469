"""What the frame cache does to a video before it stores it, as pure functions of frames and settings.

Order: crop box -> drawn-outline ROI -> sector mask -> temporal resampling -> max frames -> resize (aspect kept,
padded) -> grey/RGB. `source_view` records the same steps so that a map on the cached frames can be drawn back
on the source (Grad-CAM). Every choice is returned for the video's shard-table row.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from cineflow.config import CacheConfig, schema_default
from cineflow.data.deidentify import Audit, Rules, blank_outside, clean_header, moving_outside
from cineflow.data.readers import UnreadableVideo, read_video, rgb_to_grey
from cineflow.data.roi import bounding_box, outline_inside


def crop_box(frames: np.ndarray, box: list[int] | None) -> np.ndarray:
    if not box:
        return frames
    x, y, w, h = box
    height, width = frames.shape[1:3]
    if x + w > width or y + h > height or w == 0 or h == 0:
        raise UnreadableVideo(f"cache.crop {list(box)} lies outside the {width}x{height} frame; fix the box")
    return frames[:, y: y + h, x: x + w]


def sector_mask(frames: np.ndarray, min_fraction: float = 0.05) -> np.ndarray | None:
    """Boolean [H, W] mask of the ultrasound fan: pixels that vary over time, cleaned and made convex.

    Static burned-in text and thin moving lines (ECG traces) outside the fan are left out; None when
    no sector can be found (a still image, or too little motion), so the frame is kept whole.
    """
    import cv2

    if len(frames) < 2:
        return None
    step = max(1, len(frames) // 16)  # 16 frames spread over the loop are enough to see what moves
    grey = frames[::step].mean(-1, dtype=np.float32)
    spread = grey.std(0)
    # speckle inside the fan varies a little, the heart wall a lot, the outside (text, black) barely:
    # a cut well below the typical in-fan variation keeps the whole fan, not just the wall
    moving = (spread > max(1.0, 0.35 * float(np.percentile(spread, 75)))).astype(np.uint8)
    k = max(3, round(min(moving.shape) / 40) * 2 + 1)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
    moving = cv2.morphologyEx(moving, cv2.MORPH_OPEN, kernel)
    count, components, stats, _ = cv2.connectedComponentsWithStats(moving, connectivity=8)
    if count < 2:
        return None
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    points = cv2.findNonZero((components == largest).astype(np.uint8))
    mask = np.zeros(moving.shape, np.uint8)
    cv2.fillConvexPoly(mask, cv2.convexHull(points), 1)
    if mask.mean() < min_fraction:
        return None
    return mask.astype(bool)


def resample_indices(n_frames: int, source_fps: float, target_fps: float | None) -> np.ndarray:
    """Frame indices that turn `source_fps` into `target_fps` (nearest frame); all frames when unknown."""
    if not target_fps or source_fps <= 0 or n_frames < 2:
        return np.arange(n_frames)
    times = np.arange(0, n_frames / source_fps, 1.0 / target_fps)
    return np.unique(np.minimum(np.round(times * source_fps).astype(int), n_frames - 1))


INTERPOLATIONS = {"area": 3, "bilinear": 1, "bicubic": 2}  # cv2.INTER_AREA, INTER_LINEAR, INTER_CUBIC


def fit_frame(frame: np.ndarray, size: int, keep_aspect: bool, fill: list[int], interpolation: str = "area"
              ) -> np.ndarray:
    """One [H, W, C] frame resized to size x size with cache.interpolation; with keep_aspect, scaled to fit and
    padded with `fill`."""
    import cv2

    height, width, channels = frame.shape
    flag = INTERPOLATIONS[interpolation]
    if height == width == size:
        return frame
    if not keep_aspect or height == width:
        return cv2.resize(frame, (size, size), interpolation=flag).reshape(size, size, channels)
    scale = size / max(height, width)
    h, w = max(1, round(height * scale)), max(1, round(width * scale))
    canvas = np.empty((size, size, channels), np.uint8)
    canvas[:] = fill_value(fill, channels)
    top, left = (size - h) // 2, (size - w) // 2
    resized = cv2.resize(frame, (w, h), interpolation=flag)
    canvas[top: top + h, left: left + w] = resized.reshape(h, w, channels)
    return canvas


def fill_value(fill: list[int], channels: int) -> list[int]:
    """The RGB fill, or its grey level (ITU-R 601 weights, as OpenCV converts) for 1-channel frames."""
    if channels == 3:
        return list(fill)
    return [round(0.299 * fill[0] + 0.587 * fill[1] + 0.114 * fill[2])]


def select_region(frames: np.ndarray, fps: float, cfg: CacheConfig
                  ) -> tuple[np.ndarray, np.ndarray | None, dict | None, np.ndarray]:
    """The part of a video the cache keeps, before resizing: (the frames cropped to it, in the cache's colour,
    outside the outline ROI filled; the sector mask or None; the outline ROI {fraction, box, inside} or None;
    the source index of each frame kept). Caching and the Grad-CAM's way back to the source share it."""
    frames = crop_box(frames, cfg.crop)
    roi = None
    if cfg.outline_roi:
        frames, roi = outline_roi(frames, cfg)
    if frames.shape[-1] != cfg.channels:  # read as RGB to see the outline's colour
        frames = rgb_to_grey(frames)
    mask = sector_mask(frames) if cfg.sector_mask else None
    keep = resample_indices(len(frames), fps, cfg.fps)
    if cfg.max_frames:
        keep = keep[: cfg.max_frames]
    return frames, mask, roi, keep


@dataclass(frozen=True)
class SourceView:
    """Where a cached video's frames come from in its source, so that a map computed on the cache (a Grad-CAM)
    can be drawn on the source frames at their own size, crop and aspect.

    Attributes:
        keep: the source frame index of each cached frame.
        box: [x, y, width, height] in source pixels of the region a cached frame shows (cache.crop, and the
            outline ROI's box with roi.crop).
        mask: [H, W] bool over the whole source frame: what the model sees (the box, less what lies outside the
            outline ROI or the ultrasound sector).
        size: the cached frames' side.
        keep_aspect: whether the region was scaled to fit and padded (else stretched).
    """

    keep: np.ndarray
    box: list[int]
    mask: np.ndarray
    size: int
    keep_aspect: bool

    def to_source(self, maps: np.ndarray) -> np.ndarray:
        """[T, h, w] maps on cached frames (any h, w: resized to the cache's side first) -> [T, H, W] float32 maps
        on the source frames: the cache's padding cut off, scaled back to the region, placed where the region
        lies, zero outside the mask."""
        import cv2

        x, y, width, height = self.box
        top, left, h, w = 0, 0, self.size, self.size
        if self.keep_aspect and height != width:  # as fit_frame pads
            scale = self.size / max(height, width)
            h, w = max(1, round(height * scale)), max(1, round(width * scale))
            top, left = (self.size - h) // 2, (self.size - w) // 2
        out = np.zeros((len(maps), *self.mask.shape), np.float32)
        for t, m in enumerate(np.asarray(maps, np.float32)):
            if m.shape != (self.size, self.size):
                m = cv2.resize(m, (self.size, self.size), interpolation=cv2.INTER_LINEAR)
            region = m[top: top + h, left: left + w]
            out[t, y: y + height, x: x + width] = cv2.resize(region, (width, height), interpolation=cv2.INTER_LINEAR)
        return out * self.mask


def source_view(frames: np.ndarray, fps: float, cfg: CacheConfig) -> SourceView:
    """The SourceView of a video read as the cache reads it (read_as_cached): the same crop, outline ROI, sector
    mask and frame selection as when it was cached."""
    region, sector, roi, keep = select_region(frames, fps, cfg)
    x, y = (cfg.crop or [0, 0])[:2]
    inside = np.ones(region.shape[1:3], bool) if sector is None else sector.copy()
    if roi is not None:
        rx, ry, rw, rh = roi["box"]
        if cfg.roi["crop"]:
            inside &= roi["inside"][ry: ry + rh, rx: rx + rw]
            x, y = x + rx, y + ry
        else:
            inside &= roi["inside"]
    mask = np.zeros(frames.shape[1:3], bool)
    height, width = inside.shape
    mask[y: y + height, x: x + width] = inside
    return SourceView(keep=keep, box=[int(x), int(y), int(width), int(height)], mask=mask, size=cfg.size,
                      keep_aspect=cfg.keep_aspect)


def preprocess(frames: np.ndarray, fps: float, cfg: CacheConfig) -> tuple[np.ndarray, dict]:
    """[T,H,W,C] uint8 (C = cfg.channels, as read) -> ([T', size, size, C] uint8, what was done)."""
    import cv2

    frames, mask, roi, keep = select_region(frames, fps, cfg)
    if mask is not None:
        mask_u8 = mask.astype(np.uint8)
        background = np.empty(frames.shape[1:], np.uint8)
        background[:] = fill_value(cfg.fill, frames.shape[-1])
    info = _info(fps, cfg, frames, mask, roi)
    if mask is None and frames.shape[1:3] == (cfg.size, cfg.size):  # already the cached geometry
        whole = len(keep) == len(frames) and bool((keep == np.arange(len(frames))).all())
        return np.ascontiguousarray(frames if whole else frames[keep]), info  # no copy of a whole video
    out = np.empty((len(keep), cfg.size, cfg.size, cfg.channels), np.uint8)
    for t, i in enumerate(keep):
        frame = frames[i]
        if mask is not None:
            frame = cv2.copyTo(frame, mask_u8, background.copy()).reshape(frame.shape)
        out[t] = fit_frame(frame, cfg.size, cfg.keep_aspect, cfg.fill, cfg.interpolation)
    return out, info


def outline_roi(frames: np.ndarray, cfg: CacheConfig) -> tuple[np.ndarray, dict]:
    """RGB frames with everything outside cache.roi's drawn outline (and the outline) set to `fill`, cropped
    to the inside's bounding box with roi.crop; and {fraction, box, inside (the [H, W] mask)} of the inside."""
    roi = cfg.roi
    inside = outline_inside(frames, roi["outline_color"], roi["tolerance"])
    frames = frames.copy()
    frames[:, ~inside] = fill_value(cfg.fill, frames.shape[-1])
    x, y, w, h = box = bounding_box(inside)
    if roi["crop"]:
        frames = frames[:, y: y + h, x: x + w]
    return frames, {"fraction": float(inside.mean()), "box": box, "inside": inside}


def _info(fps: float, cfg: CacheConfig, frames: np.ndarray, mask: np.ndarray | None, roi: dict | None) -> dict:
    fraction = float(mask.mean()) if mask is not None else 1.0
    info = {"fps": float(cfg.fps) if cfg.fps and fps > 0 and len(frames) > 1 else float(fps),
            "mask_fraction": fraction * (roi["fraction"] if roi else 1.0)}
    if roi and cfg.roi["crop"]:
        x, y = roi["box"][:2]
        x0, y0 = (cfg.crop or [0, 0])[:2]
        info["crop"] = json.dumps([x0 + x, y0 + y, *roi["box"][2:]])  # in source pixels
    return info


def cache_config(preprocess: dict | str) -> CacheConfig:
    """The cache settings a video was cached with, from its manifest row's `preprocess` (JSON) or a checkpoint's
    (a dict): every setting but where the frames went. A setting added after the cache was written takes the
    schema's default, which is what the cache was made with."""
    settings = json.loads(preprocess) if isinstance(preprocess, str) else preprocess
    added = {f.name for f in fields(CacheConfig)} - set(settings) - {"shards", "store", "deidentify"}
    return CacheConfig.from_dict({**{k: schema_default("cache", k) for k in added}, **settings, "shards": 1,
                                  "store": "files"})


def read_as_cached(source: str | Path, cfg: CacheConfig) -> tuple[np.ndarray, float]:
    """(frames, fps) of a video read as the cache reads it: its reader, grey where the cache is grey (RGB while an
    outline's colour must be seen), cache.source_fps where the file carries no rate (frame folders), and
    de-identified as the cache settings say (read_deidentified)."""
    frames, fps, _ = read_deidentified(source, cfg)
    return frames, fps


def read_deidentified(source: str | Path, cfg: CacheConfig, audit: Audit | None = None
                      ) -> tuple[np.ndarray, float, Audit | None]:
    """read_as_cached's (frames, fps) and, where cfg.deidentify is on, what de-identification did (`audit`, filled
    as it goes, so that it says what was found also when the video is refused; else None): a DICOM header
    cleaned before its pixels are decoded from it, and everything outside the sector or ROI and inside the
    burned_in rectangles set to the fill colour. UnreadableVideo where it cannot be done."""
    grey = cfg.channels == 1 and not cfg.outline_roi
    if not cfg.deidentify:
        frames, fps = read_video(source, cfg.reader, grey=grey, normalised=cfg.frame_normalisation)
        return frames, fps or float(cfg.source_fps or 0.0), None
    rules, audit = Rules.from_dict(cfg.deidentify), audit if audit is not None else Audit()
    frames, fps = read_video(source, cfg.reader, grey=grey, normalised=cfg.frame_normalisation,
                             clean=lambda dataset: clean_header(dataset, rules.profile, audit))
    keep, moving = where_the_image_is(frames, cfg)
    try:
        frames = blank_outside(frames, keep, rules, fill_value(cfg.fill, frames.shape[-1]), audit, moving)
    except ValueError as err:
        raise UnreadableVideo(str(err)) from None
    return frames, fps or float(cfg.source_fps or 0.0), audit


def where_the_image_is(frames: np.ndarray, cfg: CacheConfig) -> tuple[np.ndarray | None, np.ndarray | None]:
    """([H, W] bool of what de-identification keeps, or None where nothing says; [H, W] bool of what moves outside
    the sector, or None): inside cache.crop, the outline ROI with its outline (cache.roi) or else the ultrasound
    sector, found as the cache finds it (sector_mask) whether or not cache.sector_mask is on."""
    import cv2

    height, width = frames.shape[1:3]
    x, y, w, h = cfg.crop or [0, 0, width, height]
    region = crop_box(frames, cfg.crop)
    moving = None
    if cfg.outline_roi:  # the outline is kept with its inside: the cache looks for it again
        inside = outline_inside(region, cfg.roi["outline_color"], cfg.roi["tolerance"])
        local = cv2.dilate(inside.astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool)
    else:
        local = sector_mask(region)
        if local is not None:
            moving = np.zeros((height, width), bool)
            moving[y: y + h, x: x + w] = moving_outside(region, local)
    if local is None and not cfg.crop:
        return None, None
    keep = np.zeros((height, width), bool)
    keep[y: y + h, x: x + w] = True if local is None else local
    return keep, moving
