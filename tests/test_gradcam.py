import av
import numpy as np
import pandas as pd
import torch

from cineflow.data.video_io import write_mp4
from cineflow.evaluate.gradcam import clip_attention, clip_cam, overlay, select_videos, write_panels
from cineflow.evaluate.tasks import Binary, Regression
from cineflow.models.architectures import build_model


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
    frames = np.random.default_rng(0).integers(0, 255, (6, 16, 16, 1), dtype=np.uint8)
    heat = np.random.default_rng(1).random((6, 16, 16)).astype(np.float32)
    panels = overlay(frames, heat, "true A | pred B")
    assert panels.shape == (6, 64, 128, 3)
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
