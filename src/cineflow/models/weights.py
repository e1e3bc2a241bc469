"""Starting weights from a local file: a cineflow checkpoint, or a plain torchvision / timm / Hugging Face state
dict whose keys are mapped onto the model's backbone (the offline alternative to `pretrained`). Keys an
architecture recomputes rather than loads (its `derived_keys`, e.g. a fixed position encoding) are skipped."""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch import nn

CLASSIFIER_KEYS = ("fc.", "head.", "heads.", "classifier.", "last_linear.")  # other models' output layers


def is_output_layer(key: str) -> bool:
    """Whether a file's key belongs to its own output layer(s): fc, head, classifier (also below a first
    prefix such as `module.`), or a multi-task model's `<task>_head` (PanEcho's 39 heads)."""
    return (key.startswith(CLASSIFIER_KEYS) or key.split(".", 1)[-1].startswith(CLASSIFIER_KEYS)
            or key.split(".", 1)[0].endswith("_head"))


def load_weights(model: nn.Module, path: str | Path, strict: bool = True) -> dict:
    """Load a state-dict file into `model`: a cineflow checkpoint, or a plain torchvision / timm / Hugging
    Face one whose keys are mapped onto the model's backbone.

    The mapping is the one that fits the most tensors (same name and shape) among: the keys as they
    are; with the backbone's attribute prepended (`fc`-less torchvision `stem.0.weight` ->
    `net.stem.0.weight`); with their first component dropped (`videomae.encoder...`, `module.`) and
    the backbone's prepended. The file's own classifier (fc, head, classifier) does not fit the new
    head and is left out. Returns {"loaded", "missing", "unexpected"} key lists.

    Args:
        model: a freshly built model.
        path: the file; a dict with the weights under `state_dict` or `model` works too.
        strict: raise when backbone parameters stay unset or keys fit nowhere, listing both.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file {path} not found (models.<name>.weights)")
    state = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model", "model_state_dict", "weights"):
        if isinstance(state.get(key), dict):
            state = state[key]
            break
    target = model.state_dict()
    backbone = next((f"{n}." for n, m in model.named_children() if m is model.backbone), "")

    def mapped(strip: bool, prefix: str) -> dict:
        out = {}
        for key, value in state.items():
            name = prefix + (key.split(".", 1)[1] if strip and "." in key else key)
            if name in target and target[name].shape == value.shape:
                out[name] = (key, value)
        return out

    best = max((mapped(strip, prefix) for strip in (False, True) for prefix in ("", backbone)), key=len)
    if not best:
        raise ValueError(f"weights file {path}: none of its {len(state)} tensors fits the model "
                         f"(its keys start {sorted(state)[:3]}; the model's {sorted(target)[:3]})")
    used = {source for source, _ in best.values()}
    missing = [k for k in target if k.startswith(backbone) and k not in best  # the head may start fresh
               and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in used and not is_output_layer(k)
                  and k not in getattr(model, "derived_keys", ())]
    if strict and (missing or unexpected):
        raise ValueError(f"weights file {path} matches the model only in part: {len(missing)} of its parameters "
                         f"missing from the file {missing[:10]}, {len(unexpected)} keys of the file that fit nowhere "
                         f"{unexpected[:10]}; check that the file is of this architecture, or set "
                         "weights_strict: false to load what matches")
    model.load_state_dict({name: value for name, (_, value) in best.items()}, strict=False)
    print(f"weights {path}: {len(best)} tensors loaded, {len(missing)} missing, {len(unexpected)} left out",
          file=sys.stderr)
    return {"loaded": sorted(best), "missing": missing, "unexpected": unexpected}
