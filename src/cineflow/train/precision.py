"""Mixed precision: bf16/fp16 autocast on CUDA (fp16 with loss scaling), full precision on CPU."""

from __future__ import annotations

import contextlib

import torch


class Precision:
    def __init__(self, mode: str, device: torch.device):
        self.dtype = None
        if device.type == "cuda" and mode != "off":
            bf16 = mode == "bf16" or (mode == "auto" and torch.cuda.is_bf16_supported())
            self.dtype = torch.bfloat16 if bf16 else torch.float16
        self.device = device
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.dtype == torch.float16)

    @property
    def name(self) -> str:
        return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.dtype]

    def autocast(self):
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def backward(self, loss: torch.Tensor) -> None:
        self.scaler.scale(loss).backward()

    def step(self, optimizer: torch.optim.Optimizer, parameters, clip_grad_norm: float | None) -> None:
        if clip_grad_norm:
            self.scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_([p for p in parameters if p.grad is not None], clip_grad_norm)
        self.scaler.step(optimizer)
        self.scaler.update()
        optimizer.zero_grad(set_to_none=True)
