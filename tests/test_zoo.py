"""The encoders researchers start from: torchvision's whole video zoo and the echo foundation encoders. Each
builds, takes a state dict in its published key layout with every key matched, trains one step, gives a
Grad-CAM that varies over the clip, and predicts the same after a checkpoint round trip."""

import numpy as np
import pytest
import torch
from torch import nn

from cineflow.config import ConfigError, resolve
from cineflow.models.architectures import MODELS, build_model, load_weights
from cineflow.models.cam import clip_cam
from cineflow.models.torchvision_video import KINETICS_SIZE, ZOO

SMALL = {"s3d": (16, 64, 64), "mvit_v1_b": (4, 64, 64), "mvit_v2_s": (4, 64, 64), "echoprime": (4, 64, 64),
         "swin3d_t": (4, 64, 64), "swin3d_s": (4, 64, 64), "swin3d_b": (4, 64, 64), "panecho": (4, 32, 32)}


def published(arch: str) -> dict:
    """A state dict in the layout its authors publish, built here from their own module definitions (random
    values): torchvision's Kinetics nets as torchvision saves them; EchoPrime's MViT-v2-S with its 512-d head
    Linear; PanEcho's {'weights': ...} with its encoder, time encoding and task heads."""
    from torchvision.models import convnext_tiny, video

    torch.manual_seed(1)
    if arch in ZOO:
        return getattr(video, arch)(weights=None).state_dict()
    if arch == "echoprime":
        net = video.mvit_v2_s(weights=None)
        net.head[-1] = nn.Linear(net.head[-1].in_features, 512)
        return net.state_dict()
    frames = convnext_tiny(weights=None)
    frames.classifier[-1] = nn.Identity()
    layer = nn.TransformerEncoderLayer(768, 8, dim_feedforward=768, dropout=0.0, batch_first=True)
    time = nn.TransformerEncoder(layer, num_layers=4, enable_nested_tensor=False)
    state = {f"encoder.encoder.model.{k}": v for k, v in frames.state_dict().items()}
    state |= {f"encoder.transformer.{k}": v for k, v in time.state_dict().items()}
    state |= {"encoder.time_encoder.pe": torch.zeros(1, 16, 768), "EF_head.1.weight": torch.zeros(1, 768),
              "EF_head.1.bias": torch.zeros(1), "AVStenosis_head.1.weight": torch.zeros(4, 768)}
    return {"weights": state}


FIXED = ("mvit_v1_b", "mvit_v2_s", "echoprime")  # position tables built for the clip size: published at 16 x 224²
LOADED = ("r3d_18", "s3d", "mvit_v1_b", "mvit_v2_s", "swin3d_t", "echoprime", "panecho")  # one per family + both echo


def published_size(arch: str) -> tuple[int, int, int]:
    return KINETICS_SIZE if arch in FIXED else SMALL.get(arch, (4, 32, 32))


def is_left_out(key: str, arch: str) -> bool:
    """The published output layers (fc, head, classifier, PanEcho's task heads; EchoPrime's head is its 512-d
    projection, which is kept) and PanEcho's computed time encoding."""
    if arch == "echoprime":
        return False
    return key.startswith(("fc.", "head.", "classifier.")) or "_head." in key or key.endswith("time_encoder.pe")


@pytest.mark.parametrize("arch", LOADED)
def test_encoder_loads_its_published_layout_with_every_key_matched(arch, tmp_path):
    state = published(arch)
    torch.save(state, tmp_path / "published.pt")
    model = build_model(arch, 2, 3, input_size=published_size(arch))
    report = load_weights(model, tmp_path / "published.pt")  # strict: raises on a missing or unplaced key
    flat = state.get("weights", state)
    assert not report["missing"] and not report["unexpected"]
    ours = model.state_dict()
    placed = {k: f"net.{k}" if f"net.{k}" in ours else k for k in flat if not is_left_out(k, arch)}
    assert len(report["loaded"]) == len(placed)
    assert all(torch.equal(ours[mine], flat[k]) for k, mine in placed.items())
    if arch == "echoprime":  # the 512-d projection is the encoder's, loaded; the task head is new
        assert torch.equal(model.net.head[1].weight, flat["head.1.weight"]) and model.head[-1].in_features == 512


@pytest.mark.parametrize("arch", sorted(set(ZOO) - set(LOADED)))
def test_the_other_sizes_of_each_family_have_the_published_keys_and_shapes(arch):
    from torchvision.models import video

    with torch.device("meta"):  # no memory, no initialisation: only names and shapes are compared
        theirs = getattr(video, arch)(weights=None).state_dict()
        ours = build_model(arch, 2, 3, input_size=published_size(arch)).net.state_dict()
    kept = {k: tuple(v.shape) for k, v in theirs.items() if not is_left_out(k, arch)}
    assert kept == {k: tuple(v.shape) for k, v in ours.items()}


@pytest.mark.parametrize("arch", LOADED)
def test_encoder_trains_one_step_explains_and_predicts_after_a_checkpoint(arch, tmp_path):
    torch.manual_seed(0)
    size = SMALL.get(arch, (4, 32, 32))
    model = build_model(arch, 2, 1, input_size=size)
    x = torch.rand(2, 1, *size)
    nn.functional.cross_entropy(model(x), torch.tensor([0, 1])).backward()
    head = [m for m in model.head.modules() if isinstance(m, nn.Linear)][-1]
    before = head.weight.detach().clone()
    torch.optim.SGD(model.parameters(), lr=1e-3).step()
    assert not torch.equal(before, head.weight)

    model.eval()
    with torch.no_grad():  # output 1 = -output 0: an untrained net's map for one output can be all zero (a ReLU of a
        head.weight[1] = -head.weight[0]  # sum that is negative everywhere), but then not the other's
        head.bias.zero_()
    heats = [clip_cam(model, x[0], target_output=k, layer=model.cam_layer) for k in (0, 1)]
    assert all(h.shape == size and np.isfinite(h).all() for h in heats) and max(h.std() for h in heats) > 1e-3
    with torch.no_grad():
        expected = model(x)
    torch.save(model.state_dict(), tmp_path / "fold.pt")
    again = build_model(arch, 2, 1, input_size=size)
    again.load_state_dict(torch.load(tmp_path / "fold.pt", weights_only=True))
    with torch.no_grad():
        assert torch.allclose(again.eval()(x), expected, atol=1e-5)


def test_the_zoo_is_registered_with_its_families():
    assert set(ZOO) | {"echoprime", "panecho"} <= set(MODELS)
    assert {MODELS.meta(n)["family"] for n in ZOO} == {"resnet", "s3d", "mvit", "swin"}


def test_kinetics_weights_of_a_fixed_size_family_need_its_clip_size():
    with pytest.raises(ConfigError, match="16 x 224 x 224"):
        build_model("mvit_v2_s", 2, 3, pretrained=True, input_size=(8, 112, 112))


@pytest.mark.parametrize("arch, where", [("echoprime", "echo_prime_encoder.pt"), ("panecho", "panecho.pt")])
def test_echo_encoders_name_their_release_when_asked_for_hub_weights(arch, where):
    with pytest.raises(ConfigError, match=where):
        build_model(arch, 1, 3, pretrained=True)


def test_echo_encoders_bring_their_preprocessing_contract_as_defaults():
    cfg = resolve({"models": {"ep": {"arch": "echoprime"}, "pe": {"arch": "panecho", "clip_length": 32},
                              "plain": {}}})["models"]
    assert (cfg["ep"]["clip_length"], cfg["ep"]["clip_period"], cfg["ep"]["size"]) == (16, 2, 224)
    assert np.allclose(np.array(cfg["ep"]["normalise"]["mean"]) * 255, [29.110628, 28.076836, 29.096405], atol=1e-3)
    assert cfg["ep"]["color"] == "rgb" and cfg["pe"]["normalise"] == "imagenet"
    assert cfg["pe"]["clip_length"] == 32 and cfg["pe"]["clip_period"] == 1  # what the entry sets wins
    assert cfg["plain"]["normalise"] == "fold" and cfg["plain"]["size"] is None


@pytest.mark.parametrize("backbone, size", [("vit_small_patch14_dinov2", 28), ("vit_base_patch16_siglip_224", 32)])
def test_timm_transformers_are_built_at_the_cache_size_and_explained_on_their_patch_grid(backbone, size):
    torch.manual_seed(0)
    model = build_model("frame2d", 2, 3, input_size=(3, size, size), backbone=backbone,
                        backbone_params={"depth": 1}).eval()
    x = torch.rand(1, 3, 3, size, size)
    assert model(x).shape == (1, 2)
    assert model.cam_layer == "backbone.blocks.0.norm1"
    heat = clip_cam(model, x[0], target_output=1, layer=model.cam_layer)
    assert heat.shape == (3, size, size) and heat.std() > 1e-3
