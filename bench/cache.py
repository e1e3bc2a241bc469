"""Cache build throughput against OpenCV's default colour decode of the same files, per codec; DICOM
decoding against `ds.pixel_array`; and cache bytes against float32.

- Motion-JPEG AVIs as EchoNet-Dynamic ships them (32 videos, 128 frames, 112 x 112) and the same
  frames as H.264 MP4s. Baseline: `cv2.VideoCapture.read()` of every frame and nothing else (BGR, the
  decode any pipeline pays). cineflow: `cache_video` (decode, preprocess, write the .npy) with the
  default grey cache, with RGB, and grey with the sector mask.
- Per codec, the grey routes themselves (frames/s, decode only): OpenCV's colour decode + colour to
  grey, libjpeg's luma from raw MJPG packets, PyAV's Y plane with and without FFmpeg's threads (at
  112 x 112 and at 448 x 448: `pyav` turns the threads on from 320 x 240).
- DICOM: 8 JPEG-baseline YBR_FULL_422 cine loops (30 frames, 300 x 400), the DICOM reader (RGB and
  grey) against `ds.pixel_array`.
- The cache_shard rule's build: the same files as one shard, `resources.cache_threads` (2) videos decoded
  at once (`shard_*`), against the same sequential OpenCV decode.
Rounds are interleaved (5); a ratio is the median over rounds of the per-round ratio. The caches are
written to memory (/dev/shm, where there is one) so that the figures measure the build's own work, not
this machine's disk; `*_disk` figures write the grey and RGB caches of the AVIs to the disk instead.
Figures: throughput_ratio_vs_opencv_decode (grey, MJPG; target >= 1.0),
rgb_throughput_ratio_vs_opencv_decode (MJPG; target >= 0.8), dicom_*_speedup_vs_pixel_array.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from echonet_like import make_videos, save

from cineflow.config import CacheConfig, resolve
from cineflow.data.cache import cache_shard, cache_video
from cineflow.data.readers import _jpeg_packets, dicom, rgb_to_grey
from cineflow.data.video_io import write_mp4

ROUNDS = 5
SHARD_THREADS = 2  # resources.cache_threads' default


def opencv_decode(path: Path) -> int:
    """Decode every frame to BGR and nothing else: OpenCV's default, the floor of a plain pipeline."""
    capture = cv2.VideoCapture(str(path))
    n = 0
    while True:
        ok, _ = capture.read()
        if not ok:
            break
        n += 1
    capture.release()
    return n


def opencv_grey(path: Path) -> int:
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    return len(rgb_to_grey(np.stack(frames)))


def jpeg_luma(path: Path) -> int:
    capture = cv2.VideoCapture(str(path))
    frames = _jpeg_packets(capture, grey=True)
    capture.release()
    return len(frames) if frames is not None else 0


def pyav_luma(path: Path, threads: bool) -> int:
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO" if threads else "NONE"
        return sum(1 for frame in container.decode(stream) if frame.planes[0])


def dicom_files(folder: Path, n: int = 8) -> list[Path]:
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from helpers.media import write_dicom

    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        grey = cv2.GaussianBlur(rng.normal(90, 40, (30 * 300, 400)).clip(0, 255).astype(np.uint8), (7, 7), 2)
        frames = np.clip(grey.reshape(30, 300, 400, 1).astype(int) + np.array([6, 0, -4]), 0, 255).astype(np.uint8)
        paths.append(write_dicom(folder / f"loop_{i}.dcm", frames, "YBR_FULL_422", syntax="jpeg_baseline"))
    return paths


def rate(fn, paths, *args) -> tuple[float, int]:
    """(seconds, frames) of fn over all paths."""
    tic = time.perf_counter()
    frames = sum(fn(p, *args) for p in paths)
    return time.perf_counter() - tic, frames


def main() -> None:
    cv2.setNumThreads(1)
    work = Path(tempfile.mkdtemp(prefix="cineflow_bench_cache_"))
    avis = make_videos(work / "videos")
    mp4s = []
    for avi in avis:
        frames = np.stack([cv2.cvtColor(f, cv2.COLOR_BGR2RGB) for f in _frames(avi)])
        mp4s.append(write_mp4(work / "mp4" / f"{avi.stem}.mp4", frames, 50))
        if len(mp4s) <= 4:  # large frames, for FFmpeg's threads
            write_mp4(work / "mp4_448" / f"{avi.stem}.mp4", np.repeat(np.repeat(frames, 4, 1), 4, 2), 50)
    big = sorted((work / "mp4_448").glob("*.mp4"))
    dicoms = dicom_files(work / "dicom")
    configs = {"grey112": {"size": 112, "color": "grey"}, "rgb112": {"size": 112, "color": "rgb"},
               "grey112_sector": {"size": 112, "color": "grey", "sector_mask": True}}
    configs = {name: CacheConfig.from_dict(resolve({"cache": c})["cache"]) for name, c in configs.items()}

    shm = Path("/dev/shm")
    out = Path(tempfile.mkdtemp(prefix="cineflow_bench_cache_", dir=shm if shm.is_dir() else None))

    def cache_all(paths, name, folder=out):
        return sum(cache_video(p, folder / f"{name}_{p.suffix[1:]}" / f"{p.stem}.npy", configs[name])["n_frames"]
                   for p in paths)

    def shard_all(paths, name, folder=out):  # the cache_shard rule's build: SHARD_THREADS videos decoded at once
        videos = pd.DataFrame({"video_id": [p.stem for p in paths], "path": [p.name for p in paths]})
        table = cache_shard(videos, paths[0].parent, folder / f"shard_{name}_{paths[0].suffix[1:]}", configs[name],
                            threads=SHARD_THREADS)
        return int(table["n_frames"].sum())

    import pydicom

    tasks = {
        **{f"decode_{codec}": (opencv_decode, files) for codec, files in (("mjpg", avis), ("h264", mp4s))},
        **{f"cache_{name}_{codec}": (cache_all, files, name) for name in configs
           for codec, files in (("mjpg", avis), ("h264", mp4s))},
        **{f"shard_{name}_{codec}": (shard_all, files, name) for name in ("grey112", "rgb112")
           for codec, files in (("mjpg", avis), ("h264", mp4s))},
        "cache_grey112_mjpg_disk": (cache_all, avis, "grey112", work / "disk"),
        "cache_rgb112_mjpg_disk": (cache_all, avis, "rgb112", work / "disk"),
        "route_opencv_grey_mjpg": (opencv_grey, avis), "route_jpeg_luma_mjpg": (jpeg_luma, avis),
        "route_opencv_grey_h264": (opencv_grey, mp4s),
        "route_pyav_luma_h264": (pyav_luma, mp4s, False), "route_pyav_luma_threads_h264": (pyav_luma, mp4s, True),
        "route_pyav_luma_h264_448": (pyav_luma, big, False),
        "route_pyav_luma_threads_h264_448": (pyav_luma, big, True),
        "dicom_pixel_array": (lambda p: len(pydicom.dcmread(p).pixel_array), dicoms),
        "dicom_reader_rgb": (lambda p: len(dicom(p, False)[0]), dicoms),
        "dicom_reader_grey": (lambda p: len(dicom(p, True)[0]), dicoms),
    }
    seconds: dict[str, list[float]] = {name: [] for name in tasks}
    frames: dict[str, int] = {}
    for name, (fn, paths, *args) in tasks.items():  # warm-up: page cache, codec initialisation
        fn(paths[0], *args) if fn not in (cache_all, shard_all) else fn(paths[:2], *args)
    for _ in range(ROUNDS):  # interleaved: this machine's speed drifts, so each round times every task
        for name, (fn, paths, *args) in tasks.items():
            if fn in (cache_all, shard_all):
                tic = time.perf_counter()
                frames[name] = fn(paths, *args)
                seconds[name].append(time.perf_counter() - tic)
            else:
                s, frames[name] = rate(fn, paths, *args)
                seconds[name].append(s)

    def ratio(a: str, b: str) -> float:  # median over rounds of time(b) / time(a): a's speedup over b
        return round(float(np.median(np.divide(seconds[b], seconds[a]))), 3)

    def spread(a: str, b: str) -> float:  # (max - min) / median of the per-round ratios
        ratios = np.divide(seconds[b], seconds[a])
        return round(float((ratios.max() - ratios.min()) / np.median(ratios)), 3)

    figures = {f"{name}_frames_per_s": round(frames[name] / float(np.median(s)), 1) for name, s in seconds.items()}
    for name in configs:
        for codec in ("mjpg", "h264"):
            figures[f"throughput_ratio_{name}_{codec}"] = ratio(f"cache_{name}_{codec}", f"decode_{codec}")
    for name in ("grey112", "rgb112"):
        figures[f"throughput_ratio_{name}_mjpg_disk"] = ratio(f"cache_{name}_mjpg_disk", "decode_mjpg")
        for codec in ("mjpg", "h264"):
            figures[f"shard_throughput_ratio_{name}_{codec}"] = ratio(f"shard_{name}_{codec}", f"decode_{codec}")
            figures[f"shard_throughput_ratio_{name}_{codec}_spread"] = spread(f"shard_{name}_{codec}",
                                                                              f"decode_{codec}")
    sizes = {name: sum(p.stat().st_size for p in (out / f"{name}_avi").glob("*.npy")) for name in configs}
    float32 = frames["decode_mjpg"] * 112 * 112 * 3 * 4  # the same frames as float32 RGB, as EchoNet holds them
    save("cache", {
        # headline: the default grey cache of EchoNet's Motion-JPEG AVIs, and RGB beside it
        "throughput_ratio_vs_opencv_decode": figures["throughput_ratio_grey112_mjpg"],
        "rgb_throughput_ratio_vs_opencv_decode": figures["throughput_ratio_rgb112_mjpg"],
        "throughput_ratio_vs_opencv_decode_spread": spread("cache_grey112_mjpg", "decode_mjpg"),
        "rgb_throughput_ratio_vs_opencv_decode_spread": spread("cache_rgb112_mjpg", "decode_mjpg"),
        "h264_throughput_ratio_vs_opencv_decode": figures["throughput_ratio_grey112_h264"],
        "h264_rgb_throughput_ratio_vs_opencv_decode": figures["throughput_ratio_rgb112_h264"],
        # the cache_shard rule's build (resources.cache_threads videos at once) against the same decode
        "h264_shard_throughput_ratio_vs_opencv_decode": figures["shard_throughput_ratio_grey112_h264"],
        "h264_rgb_shard_throughput_ratio_vs_opencv_decode": figures["shard_throughput_ratio_rgb112_h264"],
        "dicom_grey_speedup_vs_pixel_array": ratio("dicom_reader_grey", "dicom_pixel_array"),
        "dicom_rgb_speedup_vs_pixel_array": ratio("dicom_reader_rgb", "dicom_pixel_array"),
        "dicom_grey_speedup_vs_pixel_array_spread": spread("dicom_reader_grey", "dicom_pixel_array"),
        "bytes_ratio_vs_float32": round(sizes["grey112"] / float32, 4),
        "bytes_ratio_vs_float32_rgb112": round(sizes["rgb112"] / float32, 4),
        **figures,
        "n_videos": len(avis), "frames_per_video": frames["decode_mjpg"] // len(avis), "rounds": ROUNDS,
        "dicom_files": len(dicoms), "dicom_frames": "30 x 300 x 400 YBR_FULL_422 JPEG baseline",
        "opencv_threads": 1, "shard_threads": SHARD_THREADS, "cache_written_to": "memory (/dev/shm)" if out.is_relative_to(shm) else "disk",
    })
    shutil.rmtree(out)


def _frames(path: Path):
    capture = cv2.VideoCapture(str(path))
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        yield frame
    capture.release()


if __name__ == "__main__":
    main()
