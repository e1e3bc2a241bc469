import av
import cv2
import numpy as np
import pandas as pd
import pytest
import torch

from cineflow.config import CacheConfig, GradcamConfig
from cineflow.data.cache import cache_shard
from cineflow.data.clips import read_clip
from cineflow.data.preprocess import SourceView, cache_config, source_view
from cineflow.data.readers import read_video
from cineflow.data.store import load_frames
from cineflow.data.video_io import write_mp4
from cineflow.evaluate.gradcam import clip_attention, on_source, real_time, select_videos
from cineflow.models.architectures import build_model
from cineflow.models.cam import clip_cam, overlay, write_panels
from cineflow.tasks import Binary, Regression
from helpers import settings
from helpers.media import ultrasound, write_dicom, write_image


def test_cam_covers_the_clip_and_is_scaled_over_it():
    torch.manual_seed(0)
    for arch, params in [("tiny3d", {"width": 4}), ("frame2d", {"backbone": "test_resnet"})]:
        model = build_model(arch, 2, 1, **params).eval()
        heat = clip_cam(model, torch.randn(1, 6, 32, 32), target_output=1, layer=model.cam_layer)
        assert heat.shape == (6, 32, 32)
        assert heat.min() >= 0 and np.isclose(heat.max(), 1, atol=1e-3)
        # one scale for the whole clip, not one per frame: some frame stays below the clip's maximum
        assert heat.reshape(len(heat), -1).max(1).min() < 0.99


def test_mp4_is_h264_yuv420p_and_decodes(tmp_path):
    frames = np.random.default_rng(0).integers(0, 255, (6, 48, 48, 1), dtype=np.uint8)
    heat = np.random.default_rng(1).random((6, 48, 48)).astype(np.float32)
    mask = np.zeros((48, 48), bool)
    mask[16:40, 16:40] = True
    panels = overlay(frames, heat, "true A | pred B", mask)
    band = panels.shape[1] - 48  # the caption's, above the frames: no text on the image
    assert panels.shape == (6, band + 48, 96, 3) and 0 < band < 40 and band % 2 == 0
    assert (panels[:, :band] == panels[0, :band]).all() and panels[0, :band].max() > 200  # white on black
    original, coloured = panels[:, band:, :48].astype(int), panels[:, band:, 48:].astype(int)
    assert (original == np.repeat(frames, 3, axis=-1)).all()  # the frames at their own size
    outside = ~mask
    assert (original[:, outside] == coloured[:, outside]).all()  # outside the mask: the frame as it is
    assert np.abs(original[:, mask] - coloured[:, mask]).mean() > 10
    write_mp4(tmp_path / "cam.mp4", panels, fps=10)
    with av.open(str(tmp_path / "cam.mp4")) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264" and stream.codec_context.pix_fmt == "yuv420p"
        assert sum(1 for _ in container.decode(stream)) == 6


def test_selection_takes_each_kind_in_turn_and_each_video_once():
    p = pd.DataFrame({"video_id": list("abcdef"), "score": [0.99, 0.6, 0.05, 0.45, 0.02, 0.52],
                      "label": list("yyxyxx"), "prediction": list("yyyxxy"),
                      "correct": [True, True, False, False, True, False], "uncertainty": np.nan})
    task = Binary(("x", "y"))
    chosen = select_videos(p, task, threshold=0.5, n=3, kinds=["confident_correct", "confident_wrong"])
    assert chosen["video_id"].tolist() == ["a", "c", "e"]
    assert chosen["kind"].tolist() == ["confident_correct", "confident_wrong", "confident_correct"]
    # default: the most confident correct video of each class, the most confident wrong, the least sure
    chosen = select_videos(p, task, threshold=0.5, n=4)
    assert chosen["video_id"].tolist() == ["a", "c", "f", "e"]
    assert chosen["kind"].tolist() == ["correct_per_class", "confident_wrong", "uncertain", "correct_per_class"]
    # with MC dropout, "uncertain" is the largest spread
    spread = p.assign(uncertainty=[0.01, 0.3, 0.02, 0.05, 0.2, 0.04])
    assert select_videos(spread, task, 0.5, n=1, kinds=["uncertain"])["video_id"].tolist() == ["b"]


def test_regression_explains_the_closest_and_the_farthest_predictions():
    p = pd.DataFrame({"video_id": list("abcde"), "error": [1.0, -20.0, 3.0, 0.5, 9.0], "label": "x",
                      "uncertainty": np.nan})
    chosen = select_videos(p, Regression(("x", "y"), "ef"), threshold=None, n=4)
    assert chosen["video_id"].tolist() == ["d", "b", "a", "e"]
    assert chosen["kind"].tolist() == ["closest", "farthest", "closest", "farthest"]
    # kinds of another task are skipped
    chosen = select_videos(p, Regression(("x", "y"), "ef"), None, n=2, kinds=["confident_wrong", "farthest"])
    assert chosen["video_id"].tolist() == ["b", "e"]


def test_videomae_cam_maps_the_token_grid_back_onto_the_clip():
    torch.manual_seed(0)
    model = build_model("videomae", 1, 1, input_size=(4, 32, 32), hidden_size=32, num_hidden_layers=1,
                        num_attention_heads=2, intermediate_size=64, patch_size=8, tubelet_size=2).eval()
    heat = clip_cam(model, torch.randn(1, 4, 32, 32), target_output=0, layer=model.cam_layer)
    assert heat.shape == (4, 32, 32) and np.isclose(heat.max(), 1, atol=1e-3)


def test_video_cnns_get_a_cam_for_every_frame_although_they_downsample_time():
    torch.manual_seed(0)
    for arch in ("r2plus1d_18", "r3d_18", "mc3_18"):
        model = build_model(arch, 2, 1).eval()
        clip = torch.randn(1, 8, 32, 32)
        heats = [clip_cam(model, clip, target_output=k, layer=model.cam_layer) for k in (0, 1)]
        assert all(h.shape == (8, 32, 32) for h in heats), arch  # layer4 has 1 time step: upsampled back to 8
        # Grad-CAM's ReLU may leave nothing for one output, never for both; what is left spans the scale
        assert any(np.isclose(h.max(), 1, atol=1e-3) for h in heats), arch
        assert all(np.isclose(h.max(), 1, atol=1e-3) or h.max() == 0 for h in heats), arch


def test_attention_models_report_one_weight_per_frame():
    torch.manual_seed(0)
    frame = build_model("frame2d", 2, 1, backbone="test_resnet", temporal_head="bilstm_attention", hidden=8).eval()
    mae = build_model("videomae", 1, 1, input_size=(4, 32, 32), hidden_size=32, num_hidden_layers=1,
                      num_attention_heads=2, intermediate_size=64, patch_size=8, tubelet_size=2).eval()
    mean = build_model("frame2d", 2, 1, backbone="test_resnet", temporal_head="mean").eval()
    for model, frames in ((frame, 6), (mae, 4)):
        weights = clip_attention(model, torch.randn(1, frames, 32, 32))
        assert weights.shape == (frames,) and np.isclose(weights.sum(), 1, atol=1e-5)
    assert clip_attention(mean, torch.randn(1, 6, 32, 32)) is None


def test_one_frame_clips_are_written_as_png(tmp_path):
    panels = overlay(np.zeros((1, 16, 16, 1), np.uint8), np.zeros((1, 16, 16), np.float32), "x")
    assert write_panels(tmp_path / "img", panels, fps=10) == "img.png"
    assert (tmp_path / "img.png").read_bytes()[:4] == b"\x89PNG" and not (tmp_path / "img.mp4").exists()
    assert write_panels(tmp_path / "clip", np.repeat(panels, 3, axis=0), fps=10) == "clip.mp4"


def cached(tmp_path, name: str, source: str, **cache) -> dict:
    """One video through the frame cache: its manifest row."""
    videos = pd.DataFrame({"video_id": [name], "path": [source]})
    row = cache_shard(videos, tmp_path, tmp_path / "cache", settings(CacheConfig, "cache", **cache)).iloc[0]
    assert row["status"] == "ok", row["reason"]
    return row.to_dict()


def decoded(path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(container.streams.video[0])])


def test_a_dicom_cine_is_explained_at_its_own_size_and_only_inside_its_sector(tmp_path):
    """A 320 x 240 cine loop cached at 48 px with its sector masked: the CAM of the cached clip comes back on the
    source frames the clip was taken from, 640 x 240 side by side, in real time, coloured only in the fan."""
    frames, fan = ultrasound(24, size=240, width=320)
    write_dicom(tmp_path / "echo.dcm", frames[..., 0], fps=25)
    row = cached(tmp_path, "echo", "echo.dcm", size=48, sector_mask=True)
    cache = cache_config(row["preprocess"])
    indices = np.arange(0, 16, 2)  # an 8-frame clip, every second frame
    raw = read_clip(load_frames(row["frames_path"]), indices)
    heat = np.ones((8, 48, 48), np.float32)  # heat everywhere, padding included: only the fan may keep it
    panels, rate, drawn = on_source(row, cache, indices, heat, raw, "EF 55 | pred 52", settings(GradcamConfig, "gradcam"))
    band = panels.shape[1] - 240  # the caption above
    assert panels.shape == (8, band + 240, 640, 3) and 0 < band < 40 and drawn == "source 320x240"
    assert rate == pytest.approx(12.5)  # 25 fps, every second frame
    source, _ = read_video(tmp_path / "echo.dcm", cache.reader, grey=True)
    view = source_view(source, 25.0, cache)
    assert (view.mask & fan).sum() / (view.mask | fan).sum() > 0.9  # the sector, in source pixels
    frames = panels[:, band:]
    assert (frames[:, :, :320, 0] == source[view.keep[indices], :, :, 0]).all()  # the source frames themselves
    original, coloured = frames[:, :, :320].astype(int), frames[:, :, 320:].astype(int)
    outside, inside = ~view.mask, view.mask
    assert (original[:, outside] == coloured[:, outside]).all()
    assert (np.abs(original[:, inside] - coloured[:, inside]).sum(-1) > 30).mean() > 0.95
    # the MP4 as a browser gets it: its size, its frames, and the colour still inside the fan only
    name = write_panels(tmp_path / "cams" / "echo", panels, rate)
    video = decoded(tmp_path / "cams" / name)
    assert video.shape == (8, band + 240, 640, 3)
    difference = np.abs(video[:, band:, :320].astype(int) - video[:, band:, 320:]).sum(-1)
    assert difference[:, outside].mean() < 6 < 60 < difference[:, inside].mean()


def test_a_crop_and_the_cache_padding_are_undone():
    """A 100 x 50 box of a 200 x 120 frame, cached at 20 px with aspect kept (5 padding rows top and bottom):
    heat on the padding lands nowhere, heat on the picture fills the box and nothing else."""
    mask = np.zeros((120, 200), bool)
    mask[20:70, 10:110] = True
    view = SourceView(keep=np.arange(4), box=[10, 20, 100, 50], mask=mask, size=20, keep_aspect=True)
    padding = np.zeros((1, 20, 20), np.float32)
    padding[:, :5], padding[:, 15:] = 1, 1
    assert not view.to_source(padding).any()
    picture = 1 - padding
    back = view.to_source(picture)[0]
    assert back.shape == (120, 200) and (back[~mask] == 0).all() and (back[22:68, 12:108] > 0.99).all()


def test_a_large_image_is_drawn_at_max_side_as_png_and_a_lost_source_on_the_cache(tmp_path):
    xray = np.clip(np.random.default_rng(0).normal(120, 30, (700, 1000)), 0, 255).astype(np.uint8)
    write_image(tmp_path / "chest.png", xray)
    row = cached(tmp_path, "chest", "chest.png", size=32, media="image")
    cache, indices = cache_config(row["preprocess"]), np.array([0])
    raw = read_clip(load_frames(row["frames_path"]), indices)
    heat = np.random.default_rng(1).random((1, 32, 32)).astype(np.float32)
    cfg = settings(GradcamConfig, "gradcam")  # max_side 512
    panels, _, drawn = on_source(row, cache, indices, heat, raw, "PNEUMONIA", cfg)
    band = panels.shape[1] - 358
    assert panels.shape == (1, band + 358, 1024, 3) and 0 < band < 40 and drawn == "source 1000x700 shown at 512x358"
    assert write_panels(tmp_path / "chest_cam", panels, 10) == "chest_cam.png"
    assert cv2.imread(str(tmp_path / "chest_cam.png")).shape == (band + 358, 1024, 3)
    (tmp_path / "chest.png").unlink()  # the raw data moved away since caching: the cache is drawn, and says so
    panels, _, drawn = on_source(row, cache, indices, heat, raw, "PNEUMONIA", cfg)
    assert panels.shape[1:] == (panels.shape[1], 256, 3) and 128 < panels.shape[1] < 168  # 32 px enlarged 4x
    assert drawn == "cached frames: file not found"


def test_real_time_follows_the_source_rate_and_the_clip_stride():
    assert real_time(np.arange(0, 32, 2), 50.0) == pytest.approx(25.0)
    assert real_time(np.array([3]), 30.0) == 30.0 and real_time(np.arange(8), 0.0) == 10.0
