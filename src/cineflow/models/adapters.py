"""Parameter-efficient fine-tuning: low-rank adapters (LoRA, through peft) on a backbone's attention projections,
the base weights frozen, and merging them back for export.

The adapters go inside the backbone (peft's inject_adapter_in_model), so the model keeps its own class and
everything that reads it (staged training, Grad-CAM, the checkpoint record) works unchanged; only what trains
differs: the adapters and the head."""

from __future__ import annotations

from torch import nn

from cineflow.config import ConfigError

DEFAULT_TARGETS = ("qkv", "query", "value")  # timm ViTs and torchvision MViT: qkv; Hugging Face VideoMAE: query, value
# attention modules that read their projection's weight directly instead of calling it: an adapter there never runs
BYPASSED = ("ShiftedWindowAttention3d", "ShiftedWindowAttention")


def add_adapter(model: nn.Module, spec: dict) -> nn.Module:
    """Low-rank adapters on `model.backbone`'s Linear layers named `spec["targets"]` (default: the attention
    projections it has), in place; the base weights are frozen. Returns the model.

    Args:
        model: a built model (its pretrained or `weights:` file already loaded).
        spec: models.<name>.adapter ({kind, r, alpha, dropout, targets}).
    """
    from peft import LoraConfig, inject_adapter_in_model

    linears = {name: module for name, module in model.backbone.named_modules() if isinstance(module, nn.Linear)}
    suffixes = {name.rsplit(".", 1)[-1] for name in linears}
    targets = list(spec.get("targets") or [t for t in DEFAULT_TARGETS if t in suffixes])
    chosen = [name for name in linears if name.rsplit(".", 1)[-1] in targets]
    if not chosen:
        raise ConfigError(f"models.<name>.adapter.targets: no Linear layer of the {type(model).__name__} backbone is "
                          f"named {targets or list(DEFAULT_TARGETS)}; its Linear layers end in {sorted(suffixes)[:12]}")
    for name in chosen:
        parent = model.backbone.get_submodule(name.rpartition(".")[0]) if "." in name else model.backbone
        if type(parent).__name__ in BYPASSED:
            raise ConfigError(f"models.<name>.adapter: {type(parent).__name__} reads '{name}'.weight directly, so an "
                              "adapter on it would never run; target the MLP's Linear layers instead")
    config = LoraConfig(r=spec["r"], lora_alpha=spec["alpha"], lora_dropout=spec["dropout"], target_modules=targets)
    inject_adapter_in_model(config, model.backbone)
    freeze_base(model)
    return model


def has_adapter(model: nn.Module) -> bool:
    return any(is_adapter_key(name) for name, _ in model.named_parameters())


def is_adapter_key(key: str) -> bool:
    return ".lora_" in key


def freeze_base(model: nn.Module) -> None:
    """The backbone's own weights stop training; its adapters train (the head is left as it is)."""
    for name, p in model.backbone.named_parameters():
        p.requires_grad_(is_adapter_key(name))


def merged(model: nn.Module) -> nn.Module:
    """The model with every adapter merged into its base layer and the adapter layers gone, in place: the plain
    architecture again, for export (same outputs, up to float rounding)."""
    from peft.tuners.lora import LoraLayer

    for name, module in list(model.named_modules()):
        if isinstance(module, LoraLayer):
            module.merge()
            parent, _, attr = name.rpartition(".")
            setattr(model.get_submodule(parent) if parent else model, attr, module.get_base_layer())
    return model


def base_keys(model: nn.Module) -> set[str]:
    """The state-dict keys of the backbone's own (frozen) weights: what a checkpoint with a reference to its base
    weights file leaves out."""
    prefix = next((f"{name}." for name, child in model.named_children() if child is model.backbone), "")
    return {prefix + key for key in model.backbone.state_dict() if not is_adapter_key(key)}
