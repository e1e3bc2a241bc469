"""EchoNet-Dynamic's training data path and loop, as the baseline of the loader and GPU benchmarks.

Rewritten from echonet/dynamic (echonet/utils/__init__.py `loadvideo`, echonet/datasets/echo.py
`Echo.__getitem__`, echonet/utils/video.py `run` and `run_epoch`), keeping what costs time:
- every item decodes the whole AVI with OpenCV (BGR -> RGB per frame), turns all of it into float32,
  normalises it in place (`-=` mean, `/=` std), pads short videos, takes one random clip (or every
  clip start for test-time augmentation) and, at training time, pads 12 pixels of zeros on each side
  and crops a window of the original size (`pad=12`);
- the DataLoader has batch 20, 4 workers, shuffle, pin_memory on CUDA and drop_last when training;
- the model is torchvision's r2plus1d_18 with a 1-output fc (bias 55.6), wrapped in DataParallel on
  CUDA, trained with SGD (lr 1e-4, momentum 0.9, weight decay 1e-4) on the MSE of EF;
- `run_epoch` moves the batch, runs the model (in blocks for TTA), and calls `loss.item()` every step.
What EchoNet-Dynamic does not have, and the benchmarks add to both sides for equal precision, is
autocast: `amp` None keeps it in fp32 as published.
"""

from __future__ import annotations

import contextlib

import cv2
import numpy as np
import torch
import torchvision
from torch.utils.data import DataLoader, Dataset

LENGTH, PERIOD, PAD, BATCH, WORKERS = 32, 2, 12, 20, 4


def loadvideo(filename: str) -> np.ndarray:
    """The whole AVI as uint8 [3, F, H, W] (RGB), decoded frame by frame with OpenCV."""
    capture = cv2.VideoCapture(filename)
    frame_count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    width, height = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
    v = np.zeros((frame_count, height, width, 3), np.uint8)
    for count in range(frame_count):
        ret, frame = capture.read()
        if not ret:
            raise ValueError(f"Failed to load frame #{count} of {filename}.")
        v[count] = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
    return v.transpose((3, 0, 1, 2))


class Echo(Dataset):
    """echonet.datasets.Echo's __getitem__ over a list of AVIs and their EF.

    Args:
        paths: AVI files.
        targets: EF of each.
        mean: per-channel mean in 0-255 units (EchoNet computes it on its training split).
        std: per-channel std in 0-255 units.
        clips: 1 for one random clip, "all" for every clip start (test-time augmentation).
        pad: pixels of zero padding before the random crop of the original size, or None.
    """

    def __init__(self, paths, targets, mean, std, clips=1, pad=None):
        self.paths, self.targets = [str(p) for p in paths], np.asarray(targets, np.float32)
        self.mean, self.std = np.asarray(mean, np.float32), np.asarray(std, np.float32)
        self.clips, self.pad = clips, pad

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, index):
        video = loadvideo(self.paths[index]).astype(np.float32)
        video -= self.mean.reshape(3, 1, 1, 1)
        video /= self.std.reshape(3, 1, 1, 1)
        c, f, h, w = video.shape
        if f < LENGTH * PERIOD:
            video = np.concatenate((video, np.zeros((c, LENGTH * PERIOD - f, h, w), video.dtype)), axis=1)
            c, f, h, w = video.shape
        if self.clips == "all":
            start = np.arange(f - (LENGTH - 1) * PERIOD)
        else:
            start = np.random.choice(f - (LENGTH - 1) * PERIOD, self.clips)
        video = tuple(video[:, s + PERIOD * np.arange(LENGTH), :, :] for s in start)
        video = video[0] if self.clips == 1 else np.stack(video)
        if self.pad is not None:
            c, length, h, w = video.shape
            temp = np.zeros((c, length, h + 2 * self.pad, w + 2 * self.pad), dtype=video.dtype)
            temp[:, :, self.pad:-self.pad, self.pad:-self.pad] = video
            i, j = np.random.randint(0, 2 * self.pad, 2)
            video = temp[:, :, i:(i + h), j:(j + w)]
        return video, self.targets[index]


def loader(dataset: Echo, train: bool, device: torch.device, workers: int = WORKERS, batch_size: int | None = None):
    """The DataLoader `run` builds for each phase of each epoch."""
    return DataLoader(dataset, batch_size=batch_size or BATCH, num_workers=workers, shuffle=True,
                      pin_memory=device.type == "cuda", drop_last=train)


def model_and_optimizer(device: torch.device) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    """r2plus1d_18 with a 1-output head (bias at the mean EF), DataParallel on CUDA, and its SGD."""
    model = torchvision.models.video.r2plus1d_18(weights=None)
    model.fc = torch.nn.Linear(model.fc.in_features, 1)
    model.fc.bias.data[0] = 55.6
    if device.type == "cuda":
        model = torch.nn.DataParallel(model)
    model.to(device)
    return model, torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9, weight_decay=1e-4)


def run_epoch(model, dataloader, train: bool, optim, device, block_size=None, amp: torch.dtype | None = None,
              scaler: torch.amp.GradScaler | None = None) -> tuple[float, int]:
    """echonet.utils.video.run_epoch without the progress bar and the prediction lists.

    `amp` (a dtype) adds autocast around the forward pass and the loss, `scaler` loss scaling for fp16;
    EchoNet-Dynamic has neither. Returns (mean loss, clips seen).
    """
    model.train(train)
    total, n = 0.0, 0
    autocast = torch.autocast(device.type, dtype=amp) if amp is not None else contextlib.nullcontext()
    with torch.set_grad_enabled(train):
        for X, outcome in dataloader:
            X, outcome = X.to(device), outcome.to(device)
            average = len(X.shape) == 6
            if average:
                batch, n_clips, c, f, h, w = X.shape
                X = X.view(-1, c, f, h, w)
            with autocast:
                if block_size is None:
                    outputs = model(X)
                else:
                    outputs = torch.cat([model(X[j:(j + block_size), ...]) for j in range(0, X.shape[0], block_size)])
                if average:
                    outputs = outputs.view(batch, n_clips, -1).mean(1)
                loss = torch.nn.functional.mse_loss(outputs.view(-1).float(), outcome)
            if train:
                optim.zero_grad()
                if scaler is not None:
                    scaler.scale(loss).backward()
                    scaler.step(optim)
                    scaler.update()
                else:
                    loss.backward()
                    optim.step()
            total += loss.item() * X.size(0)
            n += X.size(0)
    return total / max(n, 1), n
