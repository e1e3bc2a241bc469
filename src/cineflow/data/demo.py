"""Synthetic echo-like clips whose ejection fraction can only be read from motion.

Each patient has an EF and a chamber geometry; each clip has its own heart rate, starting
phase and speckle. The chamber's *mean* size is drawn independently of EF and the contraction
oscillates around it, so a single-frame statistic (or the clip's mean chamber area) carries no
label information: a model has to see the chamber move.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from cineflow.config import DemoConfig
from cineflow.data.video_io import write_avi
from cineflow.io import write_csv

LABEL_COLUMNS = ["path", "label", "group", "ef", "augment"]
SUBGROUP_COLUMNS = ["site", "sex"]  # written to labels.csv; used where data.subgroups names them


def amplitude_for_ef(ef_percent: np.ndarray | float) -> np.ndarray | float:
    """Relative radius oscillation a such that ((1-a)/(1+a))^3 = ESV/EDV = 1 - EF."""
    ratio = np.cbrt(1.0 - np.asarray(ef_percent) / 100.0)
    return (1.0 - ratio) / (1.0 + ratio)


def plan(cfg: DemoConfig, seed: int, classes: list[str]) -> pd.DataFrame:
    """Every demo video with its generative parameters; cheap, so the DAG can be known at parse time.

    Site and sex come from a stream of their own, so adding them left every other draw as it was."""
    negative, positive = classes[0], classes[1]
    rng = np.random.default_rng(seed)
    who = np.random.default_rng([seed, 1])
    rows = []
    for p in range(cfg.n_patients):
        ef = rng.uniform(*cfg.ef_range)
        patient = dict(
            group=f"patient_{p:03d}",
            site=str(who.choice(cfg.sites)),
            sex=str(who.choice(["F", "M"])),
            ef=round(float(ef), 2),
            label=negative if ef >= cfg.ef_threshold else positive,
            scale=rng.uniform(0.72, 1.05),
            cx=rng.uniform(-0.06, 0.06),
            cy=rng.uniform(-0.06, 0.06),
            angle=rng.uniform(-0.4, 0.4),
        )
        for c in range(cfg.clips_per_patient):
            clip = dict(patient, period=rng.uniform(14, 26), phase=rng.uniform(0, 2 * np.pi),
                        speckle_seed=int(rng.integers(2**31)))
            stem = f"{patient['group']}_clip{c}"
            rows.append(dict(clip, path=f"videos/{stem}.avi", augment=""))
            if rng.random() < cfg.hflip_fraction:
                rows.append(dict(clip, path=f"videos/{stem}_hflip.avi", augment="hflip"))
    for k in range(cfg.n_corrupt):
        rows.append(dict(group=f"patient_corrupt{k}", ef=60.0, label=negative, path=f"videos/corrupt_{k}.avi",
                         augment="", corrupt=True, site=cfg.sites[0], sex="F"))
    table = pd.DataFrame(rows)
    table["corrupt"] = table.get("corrupt", pd.Series(False, index=table.index)).fillna(False).astype(bool)
    return table


def render(row: pd.Series | dict, cfg: DemoConfig) -> np.ndarray:
    """[T, S, S] uint8 frames of one clip."""
    size, n = cfg.size, cfg.n_frames
    rng = np.random.default_rng(int(row["speckle_seed"]))
    yy, xx = (np.mgrid[0:size, 0:size] + 0.5) / size - 0.5
    # ultrasound-like fan: bright tissue inside a sector, black outside
    rr, theta = np.hypot(xx, yy + 0.55), np.arctan2(xx, yy + 0.55)
    fan = ((np.abs(theta) < 0.62) & (rr < 1.02)).astype(np.float32)
    static = _smooth(rng.rayleigh(0.35, (size, size)), 1.0)
    x0, y0 = xx - row["cx"], yy - row["cy"]
    cos, sin = np.cos(row["angle"]), np.sin(row["angle"])
    u, v = x0 * cos + y0 * sin, -x0 * sin + y0 * cos
    amp = amplitude_for_ef(row["ef"])
    soft = 0.8 / size
    frames = np.empty((n, size, size), np.uint8)
    for t in range(n):
        r = row["scale"] * (1.0 + amp * np.cos(2 * np.pi * t / row["period"] + row["phase"]))
        a, b = 0.14 * r, 0.22 * r
        dist = np.sqrt((u / a) ** 2 + (v / b) ** 2)
        edge = (dist - 1.0) * min(a, b)
        cavity = 1.0 / (1.0 + np.exp(edge / soft))
        wall = np.exp(-(((edge - 0.035) / 0.025) ** 2))
        tissue = 0.7 * static + 0.3 * _smooth(rng.rayleigh(0.35, (size, size)), 0.8)
        image = cfg.gain * fan * (tissue * (1 - cavity) + 0.05 * cavity + 0.35 * wall)
        frames[t] = np.clip(image * 255, 0, 255).astype(np.uint8)
    if row.get("augment") == "hflip":
        frames = frames[:, :, ::-1]
    return np.ascontiguousarray(frames)


def write_dataset(cfg: DemoConfig, seed: int, classes: list[str], root: str | Path) -> pd.DataFrame:
    """Write the videos and `root/labels.csv` (path, label, group, ef, augment, site, sex)."""
    root = Path(root)
    table = plan(cfg, seed, classes)
    for _, row in table.iterrows():
        path = root / row["path"]
        path.parent.mkdir(parents=True, exist_ok=True)
        if row["corrupt"]:
            path.write_bytes(b"RIFF\x00\x00\x00\x00AVI not really a video" + bytes(range(256)))
        else:
            write_avi(path, render(row, cfg), cfg.fps)
    labels = table[LABEL_COLUMNS + SUBGROUP_COLUMNS]
    write_csv(root / "labels.csv", labels)
    return labels


def _smooth(image: np.ndarray, sigma: float) -> np.ndarray:
    import cv2

    out = cv2.GaussianBlur(image.astype(np.float32), (0, 0), sigma)
    return out / max(float(out.mean()), 1e-6) * 0.5
