import av
import numpy as np
import pandas as pd
import torch

from cineflow.gradcam import clip_cam, overlay, select_videos
from cineflow.models import build_model
from cineflow.tasks import Binary, Regression
from cineflow.video_io import write_mp4


def test_cam_covers_the_clip_and_is_scaled_over_it():
    torch.manual_seed(0)
    for arch, params in [("tiny3d", {"width": 4}), ("frame2d", {"backbone": "test_resnet"})]:
        model = build_model(arch, 2, 1, **params).eval()
        heat = clip_cam(model, torch.randn(1, 6, 32, 32), target_output=1, layer=model.cam_layer)
        assert heat.shape == (6, 32, 32)
        assert heat.min() >= 0 and np.isclose(heat.max(), 1, atol=1e-3)  # one scale for the whole clip


def test_mp4_is_h264_yuv420p_and_decodes(tmp_path):
    frames = np.random.default_rng(0).integers(0, 255, (6, 16, 16, 1), dtype=np.uint8)
    heat = np.random.default_rng(1).random((6, 16, 16)).astype(np.float32)
    panels = overlay(frames, heat, "true A | pred B")
    assert panels.shape == (6, 64, 128, 3)
    write_mp4(tmp_path / "cam.mp4", panels, fps=10)
    with av.open(str(tmp_path / "cam.mp4")) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264" and stream.codec_context.pix_fmt == "yuv420p"
        assert sum(1 for _ in container.decode(stream)) == 6


def test_selection_alternates_confident_correct_and_wrong():
    p = pd.DataFrame({"video_id": list("abcd"), "score": [0.99, 0.6, 0.05, 0.45],
                      "correct": [True, True, False, False], "label": "x", "prediction": "y"})
    chosen = select_videos(p, Binary(("x", "y")), threshold=0.5, n=3)
    assert chosen["video_id"].tolist() == ["a", "c", "b"]
    assert chosen["kind"].tolist() == ["confident_correct", "confident_wrong", "confident_correct"]


def test_regression_explains_the_closest_and_the_farthest_predictions():
    p = pd.DataFrame({"video_id": list("abcde"), "error": [1.0, -20.0, 3.0, 0.5, 9.0], "label": "x"})
    chosen = select_videos(p, Regression(("x", "y"), "ef"), threshold=None, n=4)
    assert chosen["video_id"].tolist() == ["d", "b", "a", "e"]
    assert chosen["kind"].tolist() == ["closest", "farthest", "closest", "farthest"]


def test_videomae_cam_maps_the_token_grid_back_onto_the_clip():
    torch.manual_seed(0)
    model = build_model("videomae", 1, 1, input_size=(4, 32, 32), hidden_size=32, num_hidden_layers=1,
                        num_attention_heads=2, intermediate_size=64, patch_size=8, tubelet_size=2).eval()
    heat = clip_cam(model, torch.randn(1, 4, 32, 32), target_output=0, layer=model.cam_layer)
    assert heat.shape == (4, 32, 32) and np.isclose(heat.max(), 1, atol=1e-3)
