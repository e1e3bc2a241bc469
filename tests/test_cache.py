"""The cache stage: decoding once, quarantine reasons, and each preprocessing step."""

import json

import cv2
import numpy as np
import pandas as pd
import pytest

from cineflow.config import CacheConfig, ConfigError
from cineflow.data.cache import cache_shard, leave_out, listed_in
from cineflow.data.preprocess import fit_frame, resample_indices, sector_mask
from cineflow.data.store import load_frames
from cineflow.data.synthetic import Degradation, degrade, with_low_quality_copies
from cineflow.data.video_io import write_avi
from helpers import settings
from helpers.media import gradient_clip, ultrasound, write_dicom, write_image


def cache(tmp_path, files: dict, **overrides) -> pd.DataFrame:
    videos = pd.DataFrame({"video_id": list(files), "path": list(files.values())})
    return cache_shard(videos, tmp_path, tmp_path / "cache", settings(CacheConfig, "cache", **overrides))


def test_cache_decodes_once_and_quarantines_bad_files(tmp_path):
    frames = np.random.default_rng(0).integers(0, 255, (9, 40, 48), dtype=np.uint8)
    write_avi(tmp_path / "ok.avi", frames, fps=25)
    (tmp_path / "empty.avi").write_bytes(b"")
    (tmp_path / "corrupt.avi").write_bytes(b"\x00garbage" * 50)
    table = cache(tmp_path, {"ok": "ok.avi", "empty": "empty.avi", "corrupt": "corrupt.avi",
                             "missing": "missing.avi"}, size=16, keep_aspect=False)
    by_id = table.set_index("video_id")
    assert by_id.loc["ok", "status"] == "ok"
    assert (by_id.loc["ok", ["n_frames", "height", "width"]].tolist()) == [9, 40, 48]
    assert by_id.loc["ok", "fps"] == 25
    cached = load_frames(by_id.loc["ok", "frames_path"])
    assert isinstance(cached, np.memmap) and cached.dtype == np.uint8 and cached.shape == (9, 16, 16, 1)
    # the cached frames are the video's frames, in order, each resized (MJPG is lossy: within 3 levels)
    resized = np.stack([cv2.resize(f, (16, 16), interpolation=cv2.INTER_AREA) for f in frames]).astype(float)
    assert np.abs(cached[..., 0] - resized).mean() < 3 < np.abs(cached[..., 0] - resized[::-1]).mean()
    assert by_id.loc["empty", "reason"] == "empty file (0 bytes)"
    assert by_id.loc["missing", "reason"] == "file not found"
    assert by_id.loc["corrupt", "status"] == "quarantined" and "corrupt" in by_id.loc["corrupt", "reason"]


def test_rgb_cache_and_max_frames(tmp_path):
    frames = np.zeros((10, 20, 20, 3), np.uint8)
    frames[..., 0] = 200  # red
    write_avi(tmp_path / "red.avi", frames, fps=10)
    cached = load_frames(cache(tmp_path, {"red": "red.avi"}, size=8, color="rgb", max_frames=4)["frames_path"][0])
    assert cached.shape == (4, 8, 8, 3)
    assert cached[..., 0].mean() > 150 and cached[..., 2].mean() < 50


def test_image_where_video_is_required_and_the_reverse(tmp_path):
    write_image(tmp_path / "xray.png", gradient_clip(1, 32)[0])
    write_avi(tmp_path / "cine.avi", gradient_clip(5, 32), 25)
    files = {"xray": "xray.png", "cine": "cine.avi"}
    by_id = cache(tmp_path, files, media="video").set_index("video_id")
    assert by_id.loc["cine", "status"] == "ok"
    assert by_id.loc["xray", "reason"] == ("a still image (1 frame) where cache.media is 'video'; remove its row "
                                           "from the table or set cache.media: any")
    # an image folder's videos are files in a folder, not rows
    videos = pd.DataFrame({"video_id": ["xray"], "path": ["xray.png"]})
    folder = cache_shard(videos, tmp_path, tmp_path / "folder", settings(CacheConfig, "cache", media="video"),
                         leave_out(listed_in("imagefolder")))
    assert folder["reason"][0].endswith("'video'; move the file out of the folder or set cache.media: any")
    by_id = cache(tmp_path, files, media="image").set_index("video_id")
    assert by_id.loc["xray", "status"] == "ok" and by_id.loc["xray", "n_frames"] == 1
    assert "a video (5 frames) where cache.media is 'image'" in by_id.loc["cine", "reason"]
    assert (cache(tmp_path, files, media="any")["status"] == "ok").all()


def test_dicom_cine_and_unsupported_syntax_through_the_cache(tmp_path):
    write_dicom(tmp_path / "cine.dcm", gradient_clip(6, 32, rgb=False), syntax="jpegls", fps=50)
    write_dicom(tmp_path / "mpeg.dcm", gradient_clip(6, 32, rgb=False), syntax="unsupported")
    by_id = cache(tmp_path, {"cine": "cine.dcm", "mpeg": "mpeg.dcm"}, size=16).set_index("video_id")
    assert by_id.loc["cine", "status"] == "ok" and by_id.loc["cine", "fps"] == 50
    assert by_id.loc["mpeg", "status"] == "quarantined"
    assert "cannot decode transfer syntax" in by_id.loc["mpeg", "reason"]


def test_crop_box_and_a_box_outside_the_frame(tmp_path):
    frames = np.zeros((4, 40, 60, 3), np.uint8)
    frames[:, 10:30, 20:40] = 255  # the region of interest is white, the rest black
    write_avi(tmp_path / "roi.avi", frames, 25)
    table = cache(tmp_path, {"roi": "roi.avi"}, crop=[20, 10, 20, 20], size=10)
    assert load_frames(table["frames_path"][0]).min() > 200
    assert json.loads(table["crop"][0]) == [20, 10, 20, 20]
    table = cache(tmp_path, {"roi": "roi.avi"}, crop=[50, 0, 20, 20])
    assert "cache.crop [50, 0, 20, 20] lies outside the 60x40 frame" in table["reason"][0]


def test_sector_mask_keeps_the_fan_and_fills_the_rest(tmp_path):
    frames, fan = ultrasound()
    mask = sector_mask(frames)
    iou = (mask & fan).sum() / (mask | fan).sum()
    assert iou > 0.9
    assert not mask[2:6, 2:14].any() and not mask[-4].any()
    write_avi(tmp_path / "echo.avi", frames, 25)
    table = cache(tmp_path, {"echo": "echo.avi"}, sector_mask=True, fill=[255, 0, 255], size=64, color="rgb")
    cached = load_frames(table["frames_path"][0]).astype(int)
    assert (np.abs(cached[:, 4, 8] - [255, 0, 255]) < 40).all()  # the burned-in text is gone
    inside = cached[:, fan & sector_mask(frames)]
    assert (np.abs(inside - [255, 0, 255]).sum(-1) > 100).mean() > 0.95  # the fan is untouched
    assert 0.2 < table["mask_fraction"][0] < 0.8
    assert sector_mask(frames[:1]) is None  # a still image has no motion: the frame stays whole


def test_keep_aspect_pads_with_the_fill_value(tmp_path):
    write_avi(tmp_path / "wide.avi", np.full((3, 20, 40, 3), 255, np.uint8), 25)
    cached = load_frames(cache(tmp_path, {"wide": "wide.avi"}, size=20, fill=[0, 0, 0])["frames_path"][0])
    assert cached[:, :4].max() < 30 and cached[:, -4:].max() < 30  # padding rows top and bottom
    assert cached[:, 6:14].min() > 220
    stretched = load_frames(cache(tmp_path, {"wide": "wide.avi"}, size=20, keep_aspect=False)["frames_path"][0])
    assert stretched.min() > 220


@pytest.mark.parametrize("source,target,n,expected", [(50, 25, 10, [0, 2, 4, 6, 8]), (25, None, 4, [0, 1, 2, 3]),
                                                       (0, 25, 3, [0, 1, 2]), (10, 20, 3, [0, 1, 2])])
def test_temporal_resampling_indices(source, target, n, expected):
    assert resample_indices(n, source, target).tolist() == expected


def test_resampling_to_a_target_fps_is_recorded(tmp_path):
    write_avi(tmp_path / "fast.avi", gradient_clip(20, 16), 50)
    row = cache(tmp_path, {"fast": "fast.avi"}, fps=25, size=16).iloc[0]
    assert row["n_frames"] == 10 and row["fps"] == 25 and row["source_fps"] == 50 and row["source_frames"] == 20
    assert json.loads(row["preprocess"])["fps"] == 25


def test_shard_store_holds_a_shard_in_one_file_that_every_reader_reads_as_the_per_video_files(tmp_path):
    """cache.store: shards writes one .npy per shard; each video's frames, as the loader, evaluation and
    normalisation read them through the manifest row, are those of cache.store: files."""
    from cineflow.data.clips import ClipDataset
    from cineflow.data.normalisation import channel_stats
    from cineflow.data.sampling import ClipSpec
    from cineflow.data.store import SHARD_FILE, video_frames
    from cineflow.models.inference import iter_clips

    rng = np.random.default_rng(1)
    files = {}
    for i, n in enumerate((7, 12, 9)):
        write_avi(tmp_path / f"v{i}.avi", rng.integers(0, 255, (n, 20, 20), dtype=np.uint8), fps=25)
        files[f"v{i}"] = f"v{i}.avi"
    (tmp_path / "bad.avi").write_bytes(b"\x00garbage" * 50)
    files["bad"] = "bad.avi"
    videos = pd.DataFrame({"video_id": list(files), "path": list(files.values())})
    tables = {store: cache_shard(videos, tmp_path, tmp_path / store, settings(CacheConfig, "cache", size=16,
                                                                                   store=store))
              for store in ("files", "shards")}
    assert sorted(p.name for p in (tmp_path / "shards").iterdir()) == [SHARD_FILE]
    assert len(list((tmp_path / "files").glob("*.npy"))) == 3
    ok = {store: t[t["status"] == "ok"].reset_index(drop=True) for store, t in tables.items()}
    assert ok["shards"]["frame_offset"].tolist() == [0, 7, 19] and (ok["files"]["frame_offset"] == 0).all()
    assert tables["shards"].set_index("video_id").loc["bad", "status"] == "quarantined"
    assert load_frames(tmp_path / "shards" / SHARD_FILE).shape == (28, 16, 16, 1)
    for a, b in zip(ok["files"].itertuples(), ok["shards"].itertuples()):
        assert np.array_equal(video_frames(a), video_frames(b))
    spec = ClipSpec("random", 4, 2)
    datasets = {store: ClipDataset(rows, np.zeros(len(rows), int), spec, seed=0) for store, rows in ok.items()}
    for i in range(3):
        assert np.array_equal(datasets["files"][i][0], datasets["shards"][i][0])
    clips = {store: [clip for _, clip in iter_clips(rows, spec, "all")] for store, rows in ok.items()}
    assert len(clips["files"]) == len(clips["shards"]) > 3
    assert all(np.array_equal(a, b) for a, b in zip(clips["files"], clips["shards"]))
    assert channel_stats(ok["files"]) == channel_stats(ok["shards"])


def test_cache_interpolation_is_the_named_filter():
    """area by default (the demo's caches unchanged); bicubic and bilinear as the studies resize."""
    frame = np.random.default_rng(0).integers(0, 255, (40, 40, 3), dtype=np.uint8)
    black = [0, 0, 0]
    for name, flag in (("area", cv2.INTER_AREA), ("bilinear", cv2.INTER_LINEAR), ("bicubic", cv2.INTER_CUBIC)):
        assert np.array_equal(fit_frame(frame, 16, False, black, name), cv2.resize(frame, (16, 16), interpolation=flag))
    assert np.array_equal(fit_frame(frame, 16, False, black), fit_frame(frame, 16, False, black, "area"))
    assert not np.array_equal(fit_frame(frame, 16, False, black, "bicubic"), fit_frame(frame, 16, False, black))


def test_synthetic_low_quality_copies_degrade_the_image_and_leave_the_fill(tmp_path):
    frames, _ = ultrasound(n_frames=6)
    write_avi(tmp_path / "echo.avi", frames, 25)
    spec = {"noise_level": 0.2, "blur_kernel": 5, "contrast_reduction": 0.5}
    videos = pd.DataFrame({"video_id": ["echo", "echo__low_quality"], "path": ["echo.avi", "echo.avi"],
                           "degrade": ["", json.dumps(spec)]})
    cfg = settings(CacheConfig, "cache", sector_mask=True, size=32)
    table = cache_shard(videos, tmp_path, tmp_path / "out", cfg)
    original, copy = (load_frames(p).astype(float) for p in table["frames_path"])
    background = np.all(original == 0, axis=(0, -1))
    assert background.any() and (copy[:, background] == 0).all()  # outside the sector: the fill, untouched
    image = ~background
    assert np.abs(copy - original)[:, image].mean() > 20  # noise of sd 0.2 (51 grey levels) and the rest
    again = cache_shard(videos, tmp_path, tmp_path / "again", cfg)
    assert (load_frames(again["frames_path"][1]) == copy).all()  # seeded by the copy's id

    # each step on its own, on a frame of 0/255 stripes inside a 2-pixel fill border
    stripes = np.zeros((1, 12, 12, 1), np.uint8)
    stripes[0, 2:10, 2:10] = np.where(np.arange(8) % 2, 255, 1)[None, :, None]
    flat = degrade(stripes, Degradation(0.0, 1, 0.5), [0], "a")[0, 2:10, 2:10, 0].astype(float)
    assert flat.max() - flat.min() == pytest.approx((255 - 1) * 0.5, abs=1)  # contrast halved about the mean
    blurred = degrade(stripes, Degradation(0.0, 5, 0.0), [0], "a")[0, 3:9, 3:9, 0].astype(float)
    assert blurred.max() - blurred.min() < 60  # 1-pixel stripes averaged by the 5 × 5 Gaussian
    noisy = degrade(np.full((1, 64, 64, 1), 128, np.uint8), Degradation(0.2, 1, 0.0), [0], "a").astype(float)
    assert noisy.std() == pytest.approx(0.2 * 255, rel=0.05)


def test_synthetic_low_quality_rows_copy_the_good_originals_only():
    table = pd.DataFrame({"video_id": ["a", "b", "b_flip", "c"], "path": ["a.dcm", "b.dcm", "b.dcm", "c.dcm"],
                          "label": ["GOOD", "GOOD", "GOOD", "POOR"], "group": ["p1", "p2", "p2", "p3"],
                          "augment": ["", "", "hflip", ""]})
    spec = {"from": "GOOD", "label": "POOR", "noise_level": 0.2, "blur_kernel": 5, "contrast_reduction": 0.5}
    out = with_low_quality_copies(table, spec, ["POOR", "GOOD"])
    copies = out[out["augment"] == "low_quality"]
    assert copies[["video_id", "path", "label", "group"]].values.tolist() == [
        ["a__low_quality", "a.dcm", "POOR", "p1"], ["b__low_quality", "b.dcm", "POOR", "p2"]]
    assert json.loads(copies["degrade"].iloc[0]) == {"blur_kernel": 5, "contrast_reduction": 0.5,
                                                     "noise_level": 0.2}
    assert (out.loc[out["augment"] != "low_quality", "degrade"] == "").all()
    assert with_low_quality_copies(table, None, ["POOR", "GOOD"]) is table
    with pytest.raises(ConfigError, match="label is 'BAD', not one of data.classes"):
        with_low_quality_copies(table, dict(spec, label="BAD"), ["POOR", "GOOD"])
    with pytest.raises(ConfigError, match=r"ids \['a__low_quality'\] are taken"):
        with_low_quality_copies(pd.concat([table, table.iloc[:1].assign(video_id="a__low_quality")]), spec,
                                ["POOR", "GOOD"])
