"""LoRA through peft: the adapters go on the attention projections, only they and the head train, the checkpoint
keeps them with a checked reference to the base weights file, and merging gives the plain model back."""

import pytest
import torch
from torch import nn

from cineflow.config import ConfigError, ModelConfig, model_stages
from cineflow.models.adapters import has_adapter, is_adapter_key, merged
from cineflow.models.architectures import build_model
from cineflow.models.trained import TrainedModel
from cineflow.train.optim import apply_trainable

LORA = {"kind": "lora", "r": 2, "alpha": 4, "dropout": 0.0, "targets": None}
VIDEOMAE_TINY = {"hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 32,
                 "patch_size": 8, "tubelet_size": 2, "hidden": 8}


@pytest.mark.parametrize("arch, params, size, adapted", [
    ("videomae", VIDEOMAE_TINY, (4, 16, 16), {"query", "value"}),
    ("frame2d", {"backbone": "vit_tiny_patch16_224", "backbone_params": {"depth": 1}}, (2, 32, 32), {"qkv"}),
    ("mvit_v2_s", {}, (4, 64, 64), {"qkv"}),
])
def test_lora_trains_the_adapters_and_head_only_and_merges_back(arch, params, size, adapted):
    torch.manual_seed(0)
    model = build_model(arch, 2, 3, input_size=size, adapter=LORA, **params)
    names = {n.split(".lora_")[0].rsplit(".", 1)[-1] for n, _ in model.named_parameters() if is_adapter_key(n)}
    assert names == adapted and has_adapter(model)
    stage = model_stages(ModelConfig.from_dict(_spec()), "loss")[0]
    model.train()
    apply_trainable(model, stage, 0)  # train: all, yet the base stays frozen
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(is_adapter_key(n) or not n.startswith(_backbone(model)) for n in trainable)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    x = torch.rand(2, 3, *size)
    nn.functional.cross_entropy(model(x), torch.tensor([0, 1])).backward()
    torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5).step()
    changed = {n for n, p in model.named_parameters() if not torch.equal(before[n], p)}
    assert any(is_adapter_key(n) for n in changed) and not any(n.startswith(_backbone(model)) and not is_adapter_key(n)
                                                               for n in changed)
    model.eval()
    with torch.no_grad():
        adapted_out = model(x)
        plain = merged(model)
        assert not has_adapter(plain) and not any("base_layer" in k for k in plain.state_dict())
        assert torch.allclose(plain(x), adapted_out, atol=1e-4)


def test_swin_attention_refuses_an_adapter_that_would_never_run():
    with pytest.raises(ConfigError, match="reads .*directly"):
        build_model("swin3d_t", 2, 3, input_size=(4, 32, 32), adapter=LORA)
    with pytest.raises(ConfigError, match="no Linear layer"):
        build_model("tiny3d", 2, 1, adapter=LORA, width=4)


def test_a_lora_fold_keeps_the_adapters_and_a_checked_reference_to_the_base(tiny_config, tiny_dataset, tmp_path):
    """A fold of a LoRA model on a weights file, trained for real: its checkpoint holds the adapters and the head
    only and names the file with its SHA-256; it rebuilds to the trained outputs, and a changed base is refused."""
    from cineflow.data.normalisation import fold_normalisation
    from cineflow.provenance import file_sha256
    from cineflow.train.fold import FoldPaths, train_fold

    manifest, _, folds = tiny_dataset  # 24 px frames: 3 x 3 patches of 8
    params = {"backbone": "vit_tiny_patch16_224", "backbone_params": {"depth": 1, "patch_size": 8}}
    torch.manual_seed(0)
    base = build_model("frame2d", 2, 3, input_size=(4, 24, 24), **params)
    torch.save(base.backbone.state_dict(), tmp_path / "vit.pt")
    cfg = ModelConfig.from_dict({**tiny_config["models"]["tiny"], "arch": "frame2d", "arch_params": params,
                                 "weights": str(tmp_path / "vit.pt"), "adapter": LORA, "epochs": 1,
                                 "clip_length": 4, "monitor": "loss", "lr": 0.01})
    paths = FoldPaths(model=tmp_path / "model.pt", last=tmp_path / "last.pt", history=tmp_path / "history.csv",
                      state=tmp_path / "state" / "state.pt")
    train_fold(cfg, tiny_config["data"]["classes"], folds[0], manifest, fold_normalisation(folds[0], manifest, 1),
               paths, seed=1, device=torch.device("cpu"))
    saved = torch.load(tmp_path / "model.pt", weights_only=True)
    assert saved["base_weights"] == {"path": str(tmp_path / "vit.pt"), "sha256": file_sha256(tmp_path / "vit.pt")}
    kept = set(saved["state_dict"])
    assert kept and all(is_adapter_key(k) or not k.startswith("backbone.") for k in kept)
    loaded = TrainedModel.load(tmp_path / "model.pt").module
    lora = [p for n, p in loaded.named_parameters() if "lora_B" in n]
    assert lora and any(p.abs().sum() > 0 for p in lora)  # trained (LoRA's B starts at zero)
    base_q = base.backbone.blocks[0].attn.qkv.weight
    assert torch.equal(loaded.backbone.blocks[0].attn.qkv.base_layer.weight, base_q)  # the base came from the file
    torch.save({k: v + 1 for k, v in base.backbone.state_dict().items()}, tmp_path / "vit.pt")
    with pytest.raises(FileNotFoundError, match="missing or changed"):
        TrainedModel.load(tmp_path / "model.pt")


def _backbone(model: nn.Module) -> str:
    return next(f"{n}." for n, m in model.named_children() if m is model.backbone)


def _spec(**over) -> dict:
    from cineflow.config import resolve

    return resolve({"models": {"m": over}})["models"]["m"]
