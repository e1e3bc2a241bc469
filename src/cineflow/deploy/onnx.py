"""A fold model as ONNX, and an ONNX Runtime session behind the module interface the scoring code calls.

The export takes clips [batch, C, T, H, W] at the geometry the model was trained at, with a dynamic batch axis,
and returns the model's raw outputs (logits, or regression values); how they read (softmax, sigmoid, identity)
stays the checkpoint's, applied by the same scoring code as the torch route, so both routes differ only by the
runtimes' arithmetic.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from cineflow.io import atomic_path
from cineflow.models.trained import TrainedModel

INPUT, OUTPUT = "clips", "outputs"


def export_onnx(trained: TrainedModel, path: str | Path) -> str | None:
    """Write the fold model as ONNX at `path`; returns None, or why this family cannot be exported (the bundle
    then lists the reason and keeps the torch route for it).

    Args:
        trained: the fold model, loaded (module on the CPU, eval mode).
        path: the .onnx file to write.
    """
    try:
        import onnx  # noqa: F401  (the exporter needs it; a clear reason when the extra is missing)
    except ImportError:
        return "onnx is not installed: pip install 'cineflow[deploy]'"
    module = trained.module.cpu().eval()
    example = torch.zeros(2, trained.in_channels, *trained.input_size)
    try:
        with atomic_path(path) as tmp:
            torch.onnx.export(module, (example,), str(tmp), input_names=[INPUT], output_names=[OUTPUT],
                              dynamic_axes={INPUT: {0: "batch"}, OUTPUT: {0: "batch"}}, dynamo=False,
                              opset_version=17, external_data=False)
    except Exception as error:  # an operator the exporter lacks (3D transformers' reshapes, peft's wrappers)
        return f"{type(error).__name__}: {str(error).splitlines()[0][:300] if str(error) else ''}"
    return None


class OnnxModule(torch.nn.Module):
    """An ONNX Runtime session (CPU) where the scoring code expects a torch module: clips in, raw outputs out.

    It has no dropout layers to switch on, so MC dropout is refused by the scoring code, with its message."""

    def __init__(self, path: str | Path):
        super().__init__()
        try:
            import onnxruntime
        except ImportError as error:
            raise RuntimeError("the ONNX route needs onnxruntime: pip install 'cineflow[deploy]'") from error
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = max(1, torch.get_num_threads())
        self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        out = self.session.run([OUTPUT], {INPUT: clips.detach().cpu().float().numpy()})[0]
        return torch.from_numpy(np.asarray(out, dtype=np.float32))
