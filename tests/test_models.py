import pytest
import torch

from cineflow.config import ConfigError
from cineflow.models.architectures import MODELS, backbone_blocks, build_model, init_output_bias

VIDEOMAE_TINY = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64,
                 "patch_size": 8, "tubelet_size": 2, "hidden": 16}
CASES = {
    "tiny3d": {"width": 4},
    "frame2d": {"backbone": "test_resnet", "temporal_head": "bilstm_attention", "hidden": 8},
    "image2d": {"backbone": "test_convnext", "hidden": 8},
    "r2plus1d_18": {},
    "r3d_18": {},
    "mc3_18": {},
    "resnext3d": {"depth": 50, "sample_duration": None},
    "videomae": VIDEOMAE_TINY,
}


@pytest.mark.parametrize("arch", sorted(CASES))
def test_every_registered_arch_trains_one_step(arch):
    from test_zoo import LOADED, ZOO

    # test_zoo trains one of each torchvision family; test_probe fits the probe head on stored embeddings
    assert set(CASES) | set(ZOO) | set(LOADED) | {"probe"} == set(MODELS)
    torch.manual_seed(0)
    frames = 1 if arch == "image2d" else 4
    model = build_model(arch, n_outputs=3, in_channels=1, input_size=(frames, 32, 32), **CASES[arch])
    x, y = torch.randn(2, 1, frames, 32, 32), torch.tensor([0, 2])
    out = model(x)
    assert out.shape == (2, 3)
    before = [p.detach().clone() for p in model.parameters()]
    loss = torch.nn.functional.cross_entropy(out, y)
    loss.backward()
    torch.optim.SGD(model.parameters(), lr=0.1).step()
    assert any(not torch.equal(b, p) for b, p in zip(before, model.parameters()))
    assert sum(p.numel() for p in model.backbone.parameters()) > 0  # two-stage fine-tuning needs the split
    assert len(backbone_blocks(model.backbone)) >= 2


@pytest.mark.parametrize("backbone", ["convnextv2_atto", "tf_efficientnetv2_b0", "regnety_002"])
def test_image_models_from_timm_take_one_frame_clips_with_the_mlp_head(backbone):
    model = build_model("image2d", 5, 1, input_size=(1, 32, 32), backbone=backbone, hidden=8)
    layers = [type(m).__name__ for m in model.head.classifier]
    assert layers == ["LayerNorm", "Dropout", "Linear", "ReLU", "Dropout", "Linear"]
    assert model(torch.randn(2, 1, 1, 32, 32)).shape == (2, 5)


def test_videomae_pools_tokens_with_attention_and_follows_the_clip_geometry():
    model = build_model("videomae", 1, 1, input_size=(4, 32, 32), **VIDEOMAE_TINY)
    assert model(torch.randn(2, 1, 4, 32, 32)).shape == (2, 1)
    w = model.last_weights  # 2 tubelets x 4 x 4 patches
    assert w.shape == (2, 32) and torch.allclose(w.sum(1), torch.ones(2))
    assert [type(m).__name__ for m in model.head] == ["LayerNorm", "Dropout", "Linear", "GELU", "Dropout", "Linear"]
    with pytest.raises(ValueError, match="tubelet_size"):
        build_model("videomae", 1, 1, input_size=(5, 32, 32), **VIDEOMAE_TINY)


@pytest.mark.parametrize("head", ["mean", "attention", "bilstm", "bilstm_attention"])
def test_temporal_heads(head):
    model = build_model("frame2d", 3, 1, backbone="test_resnet", temporal_head=head, hidden=8)
    assert model(torch.randn(2, 1, 5, 32, 32)).shape == (2, 3)
    assert isinstance(model.head.classifier[0], torch.nn.LayerNorm)  # the stabilised head
    if "attention" in head:
        w = model.head.last_weights
        assert w.shape == (2, 5) and torch.allclose(w.sum(1), torch.ones(2))


@pytest.mark.parametrize("arch,params", [("r3d_18", {}), ("frame2d", {"backbone": "resnet18"}),
                                         ("videomae", {"checkpoint": "MCG-NJU/videomae-base"})])
def test_offline_pretrained_error_names_both_options(arch, params):
    with pytest.raises(RuntimeError, match="pretrained: false.*weights:"):
        build_model(arch, 2, 3, pretrained=True, input_size=(16, 32, 32), **params)


def test_local_weights_file_is_loaded_into_a_three_channel_stem_for_grey_clips(tmp_path):
    source = build_model("frame2d", 2, 3, backbone="test_resnet")
    torch.save(source.state_dict(), tmp_path / "w.pt")
    loaded = build_model("frame2d", 2, 3, weights=str(tmp_path / "w.pt"), backbone="test_resnet")
    for a, b in zip(source.state_dict().values(), loaded.state_dict().values()):
        assert torch.equal(a, b)
    source.eval(), loaded.eval()
    grey = torch.randn(1, 1, 2, 32, 32)  # repeated to the 3 channels the weights expect
    assert torch.allclose(loaded(grey), source(grey.expand(-1, 3, -1, -1, -1)))


def test_regression_output_starts_at_the_target_mean():
    for arch, params in CASES.items():
        model = build_model(arch, 1, 1, input_size=(4, 32, 32), **params)
        init_output_bias(model, 55.0)
        assert [m for m in model.head.modules() if isinstance(m, torch.nn.Linear)][-1].bias.item() == 55.0


def test_backbone_blocks_are_the_stages_in_forward_order():
    resnet = build_model("frame2d", 2, 1, backbone="resnet18").backbone
    names = [dict(resnet.named_modules())[n] for n in ("layer4.1", "layer4.0", "layer3.1")]
    assert backbone_blocks(resnet)[-3:] == names[::-1]
    mae = build_model("videomae", 2, 1, input_size=(4, 32, 32), **VIDEOMAE_TINY).backbone
    assert backbone_blocks(mae)[-2] is mae.encoder.layer[1]  # then the final LayerNorm


def test_unknown_arch_lists_the_registry():
    with pytest.raises(ConfigError, match=r"models.<name>.arch: unknown model architecture 'nope'; choose one of "
                                          r"\[.*'tiny3d'"):
        build_model("nope", 2, 1)


def test_unknown_arch_param_names_the_key():
    with pytest.raises(ValueError, match="arch_params"):
        build_model("tiny3d", 2, 1, widht=4)


def test_videomae_pooling_and_head_depths_follow_the_config():
    model = build_model("videomae", 1, 1, input_size=(4, 32, 32), **dict(VIDEOMAE_TINY, hidden=[16, 8], pool_hidden=4))
    linears = [m for m in model.head if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(32, 16), (16, 8), (8, 1)]
    assert sum(isinstance(m, torch.nn.Dropout) for m in model.head) == 2  # after the norm and the first layer
    pool = [m for m in model.pool if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in pool] == [(32, 4), (4, 1)]
    assert model(torch.zeros(2, 1, 4, 32, 32)).shape == (2, 1)
    plain = build_model("videomae", 1, 1, input_size=(4, 32, 32), **VIDEOMAE_TINY)
    assert [k for k in plain.state_dict() if k.startswith(("head", "pool"))] == [
        "pool.weight", "pool.bias", "head.0.weight", "head.0.bias", "head.2.weight", "head.2.bias", "head.5.weight",
        "head.5.bias"]  # one width: the layout of checkpoints saved before


@pytest.mark.parametrize("mode", ["mean", "concat", "concat_mlp"])
def test_both_clip_reads_reach_the_model_and_are_fused(mode):
    """A clip arrives as its forward read then its backward read ([B, C, 2T, H, W]); each goes through the same
    backbone, and the fusion is the mode's."""
    seen = []
    model = build_model("tiny3d", 2, 1, width=4, fuse_directions=mode)
    model.model.features.register_forward_pre_hook(lambda module, args: seen.append(args[0].detach().clone()))
    model.eval()
    forward, backward = torch.randn(2, 1, 5, 16, 16), torch.randn(2, 1, 5, 16, 16)
    out = model(torch.cat([forward, backward], dim=2))
    assert len(seen) == 2 and torch.equal(seen[0], forward) and torch.equal(seen[1], backward)
    inner = model.model
    if mode == "mean":
        assert torch.allclose(out, (inner(forward) + inner(backward)) / 2)
    elif mode == "concat":  # the two pooled features side by side -> back to the backbone's width -> the head
        both = torch.cat([inner.forward_features(forward), inner.forward_features(backward)], dim=1)
        assert model.fuse.in_features == 2 * inner.num_features and torch.allclose(out, inner.head(model.fuse(both)))
    else:  # the notebook's head in place of the model's: its sizes, and the output bias lands on its last layer
        linears = [(m.in_features, m.out_features) for m in model.head.modules() if isinstance(m, torch.nn.Linear)]
        assert linears == [(inner.num_features, 512), (1024, 1024), (1024, 512), (512, 128), (128, 32), (32, 8),
                           (8, 2)]
        assert sum(isinstance(m, torch.nn.AlphaDropout) for m in model.head.modules()) == 3
        assert out.shape == (2, 2) and model.head is model.fuse
    assert model.backbone is inner.features  # stages see through
    if mode != "concat_mlp":
        assert model.head is inner.head


def test_concat_fusion_needs_a_clip_model_with_pooled_features():
    with pytest.raises(ConfigError, match="concat needs a clip model"):
        build_model("frame2d", 2, 3, backbone="test_resnet", fuse_directions="concat")


def test_plain_torchvision_and_hugging_face_weights_are_mapped_onto_the_wrapper(tmp_path):
    from torchvision.models.video import r2plus1d_18
    from transformers import VideoMAEConfig, VideoMAEModel

    plain = r2plus1d_18(num_classes=1)  # as the echo quality study saved video_quality_model.pt
    torch.save(plain.state_dict(), tmp_path / "video_quality_model.pt")
    model = build_model("r2plus1d_18", 2, 3, weights=str(tmp_path / "video_quality_model.pt"))
    assert torch.equal(model.net.layer4[1].conv2[0][0].weight, plain.layer4[1].conv2[0][0].weight)
    assert model.head[-1].out_features == 2  # its own fc (1 output) is left out; the head is new
    # a Hugging Face video classifier's encoder under `videomae.`, with a `classifier` of its own
    encoder = {k: VIDEOMAE_TINY[k] for k in VIDEOMAE_TINY if k != "hidden"}
    hf = VideoMAEModel(VideoMAEConfig(num_frames=4, image_size=16, use_mean_pooling=False, **encoder))
    state = {f"videomae.{k}": v for k, v in hf.state_dict().items()} | {"classifier.weight": torch.zeros(3, 32)}
    torch.save(state, tmp_path / "hf.pt")
    mae = build_model("videomae", 1, 3, weights=str(tmp_path / "hf.pt"), input_size=(4, 16, 16), **VIDEOMAE_TINY)
    assert all(torch.equal(mae.backbone.state_dict()[k], v) for k, v in hf.state_dict().items())
    # a partial match names what is missing and what fits nowhere, unless weights_strict is off
    partial = {k: v for k, v in plain.state_dict().items() if not k.startswith("layer4")}
    partial["extra.weight"] = torch.zeros(3)
    torch.save(partial, tmp_path / "partial.pt")
    with pytest.raises(ValueError, match=r"missing from the file \['net.layer4.*'extra.weight'.*weights_strict: false"):
        build_model("r2plus1d_18", 2, 3, weights=str(tmp_path / "partial.pt"))
    loose = build_model("r2plus1d_18", 2, 3, weights=str(tmp_path / "partial.pt"), weights_strict=False)
    assert torch.equal(loose.net.stem[0].weight, plain.stem[0].weight)


def test_hara_resnext3d_loads_the_published_kinetics_layout(tmp_path):
    """The Stall Catchers "big architecture": Hara's 3D ResNeXt, whose Kinetics checkpoints are
    {'state_dict': {'module.conv1.weight': ..., 'module.fc.weight': [400, 2048]}} (DataParallel keys)."""
    big = build_model("resnext3d", 1, 3, input_size=(40, 112, 112))
    assert big.num_features == 6144  # the study's Linear(6144, 512): 2048 x 3 time steps for 40 frames
    model = build_model("resnext3d", 1, 3, input_size=(8, 32, 32), depth=50)
    shapes = {k: tuple(v.shape) for k, v in model.net.state_dict().items()}
    assert shapes["conv1.weight"] == (64, 3, 7, 7, 7) and shapes["layer1.0.conv2.weight"] == (128, 4, 3, 3, 3)
    assert shapes["layer1.0.downsample.0.weight"] == (256, 64, 1, 1, 1) and "layer4.2.bn3.running_var" in shapes
    torch.manual_seed(3)
    published = {f"module.{k}": torch.randn_like(v) if v.is_floating_point() else v
                 for k, v in model.net.state_dict().items()}
    published.update({"module.fc.weight": torch.randn(400, 2048), "module.fc.bias": torch.randn(400)})
    torch.save({"epoch": 200, "arch": "resnext-101", "state_dict": published}, tmp_path / "resnext-kinetics.pth")
    loaded = build_model("resnext3d", 1, 3, input_size=(8, 32, 32), depth=50,
                         weights=str(tmp_path / "resnext-kinetics.pth"))
    assert torch.equal(loaded.net.layer3[1].conv2.weight, published["module.layer3.1.conv2.weight"])
    assert torch.equal(loaded.net.bn1.running_mean, published["module.bn1.running_mean"])
    with pytest.raises(ConfigError, match="no model hub serves Hara's 3D ResNeXt"):
        build_model("resnext3d", 1, 3, pretrained=True)
