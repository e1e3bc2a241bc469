"""A fold model as a `torch.export` program (`model.pt2`): the network's graph and weights in one file that
torch loads without cineflow or the family's code (`torch.export.load(path).module()(clips)`), and that
AOTInductor compiles for a C++ server.

cineflow's own prediction never loads it: torch's loader may unpickle parts of a .pt2 (tensor subclasses,
constants), and nothing read from a user's file is unpickled. Its routes are the checkpoint (weights only) and
ONNX (protobuf); the program is for the hospital's own stack.

Like the ONNX export it takes clips [batch, C, T, H, W] at the training geometry, with a dynamic batch axis, and
returns the raw outputs; how they read stays the checkpoint's (contract.json), applied by the scoring code.
"""

from __future__ import annotations

from pathlib import Path

import torch

from cineflow.io import atomic_path
from cineflow.models.trained import TrainedModel


def export_program(trained: TrainedModel, path: str | Path) -> str | None:
    """Write the fold model as a torch.export program at `path`; returns None, or why this model cannot be
    exported (the bundle lists the reason, and the checkpoint route serves it).

    Args:
        trained: the fold model, loaded (module on the CPU, eval mode).
        path: the .pt2 file to write.
    """
    module = trained.module.cpu().eval()
    example = torch.zeros(2, trained.in_channels, *trained.input_size)
    batch = torch.export.Dim("batch", min=1, max=4096)
    try:
        program = torch.export.export(module, (example,), dynamic_shapes=({0: batch},))
        with atomic_path(path, suffix=".pt2") as tmp:
            torch.export.save(program, tmp)
    except Exception as error:  # data-dependent control flow, an operator export does not trace
        return f"{type(error).__name__}: {str(error).splitlines()[0][:300] if str(error) else ''}"
    return None
