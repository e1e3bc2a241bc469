"""Clip sampling modes, and evaluation over all clips in bounded memory."""

import numpy as np
import pandas as pd
import pytest
import torch

from cineflow.config import ConfigError
from cineflow.data.clips import ClipDataset
from cineflow.data.sampling import ClipSpec, eval_clips, train_clip
from cineflow.models.inference import predict_videos


def test_random_clip_has_period_and_pads_short_videos():
    spec = ClipSpec("random", length=4, period=2)
    for seed in range(20):
        clip = train_clip(30, spec, np.random.default_rng(seed))
        assert (np.diff(clip) == 2).all() and 0 <= clip[0] <= 30 - 7
    assert train_clip(5, spec, np.random.default_rng(0)).tolist() == [0, 2, 4, -1]  # -1: zero padding
    spread = eval_clips(30, spec, 3)
    assert [c[0] for c in spread] == [0, 12, 23]
    every = eval_clips(30, spec, "all")
    assert len(every) == 30 - 7 + 1 and [c[0] for c in every] == list(range(24))


def test_uniform_spreads_frames_over_the_whole_video():
    spec = ClipSpec("uniform", length=4)
    [clip] = eval_clips(100, spec)
    assert clip.tolist() == [12, 37, 62, 87]
    for seed in range(10):
        clip = train_clip(100, spec, np.random.default_rng(seed))
        assert [a // 25 for a in clip] == [0, 1, 2, 3]  # one frame from each quarter
    assert eval_clips(2, spec)[0].tolist() == [0, 0, 1, 1]  # short video: frames repeat, nothing padded


def test_center_window_forward_and_backward():
    spec = ClipSpec("center", length=4, period=1, offset=3)
    forward, backward = eval_clips(20, spec)
    assert forward.tolist() == [11, 12, 13, 14] and backward.tolist() == [14, 13, 12, 11]
    picks = {tuple(train_clip(20, spec, np.random.default_rng(s))) for s in range(20)}
    assert picks == {tuple(forward), tuple(backward)}


def test_unknown_mode_lists_the_registry():
    with pytest.raises(ConfigError, match="clip_sampling: unknown clip sampler 'zigzag'; choose one of "
                                          "\\['center', 'middle_window', 'random', 'uniform'\\]"):
        eval_clips(10, ClipSpec("zigzag", 4))


def test_dataset_yields_uint8_channels_first(tmp_path):
    frames = np.arange(10 * 4 * 4, dtype=np.uint8).reshape(10, 4, 4, 1)
    np.save(tmp_path / "v.npy", frames)
    rows = pd.DataFrame({"frames_path": [str(tmp_path / "v.npy")], "n_frames": [10]})
    x, y = ClipDataset(rows, np.array([1]), ClipSpec("random", 3, 2), seed=0)[0]
    assert x.dtype == torch.uint8 and x.shape == (1, 3, 4, 4) and y == 1
    start = int(x[0, 0, 0, 0]) // 16
    assert [int(v) // 16 for v in x[0, :, 0, 0]] == [start, start + 2, start + 4]


class Recorder(torch.nn.Module):
    """Scores each clip by its mean intensity and records every batch size it is given."""

    def __init__(self):
        super().__init__()
        self.batches = []

    def forward(self, x):
        self.batches.append(x.shape[0])
        m = x.mean(dim=(1, 2, 3, 4))
        return torch.stack([-m, m], 1)  # logits: softmax(p1) grows with brightness


def test_all_clips_are_averaged_in_bounded_blocks(tmp_path):
    rng = np.random.default_rng(0)
    rows = []
    for i, n in enumerate([300, 12, 40]):  # a long video among short ones
        np.save(tmp_path / f"{i}.npy", rng.integers(0, 255, (n, 6, 6, 1), dtype=np.uint8))
        rows.append({"frames_path": str(tmp_path / f"{i}.npy"), "n_frames": n})
    rows = pd.DataFrame(rows)
    spec = ClipSpec("random", length=8, period=2)
    model = Recorder()
    probs = predict_videos(model, rows, [0.5], [0.25], spec, "all", torch.device("cpu"), block=5)
    assert max(model.batches) <= 5  # memory bounded by the block, whatever the number of clips
    assert sum(model.batches) == sum(len(eval_clips(n, spec, "all")) for n in rows["n_frames"])
    # the same scores as one clip at a time
    one_by_one = predict_videos(Recorder(), rows, [0.5], [0.25], spec, "all", torch.device("cpu"), block=1)
    assert np.allclose(probs, one_by_one, atol=1e-6) and probs.shape == (3, 2)


def test_a_fused_model_gets_both_reads_side_by_side():
    spec = ClipSpec("center", length=4, period=1, offset=3, fused=True)
    assert [c.tolist() for c in eval_clips(10, spec)] == [[6, 7, 8, 9, 9, 8, 7, 6]]
    assert train_clip(10, spec, np.random.default_rng(0)).tolist() == [6, 7, 8, 9, 9, 8, 7, 6]
    random = ClipSpec("random", length=3, period=2, fused=True)
    clip = train_clip(20, random, np.random.default_rng(0))
    assert len(clip) == 6 and clip[3:].tolist() == clip[:3][::-1].tolist()


def notebook_window(total_frames: int, length: int) -> tuple[list[int], list[int]]:
    """The Stall Catchers notebook's Dataset.__getitem__ index logic, transcribed (frames stand in for paths)."""
    forward, backward = list(range(total_frames)), list(range(total_frames))[::-1]
    for sequence in (forward, backward):  # _pad_to_length: insert the first element in front
        left_pad = sequence[0]
        while len(sequence) < length:
            sequence.insert(0, left_pad)
    total_image = len(forward)
    if length <= total_image < length + int(length // 2):
        start_i = total_image // 2 - length // 2
    elif total_image >= length + int(length // 2):
        start_i = (total_image // 2 - length // 2 + int((length // 2) // 2)) - 1
    else:
        start_i = 0
    return forward[start_i:start_i + length], backward[start_i:start_i + length]


@pytest.mark.parametrize("length", [40, 7])
def test_middle_window_is_the_stall_catchers_notebooks(length):
    """Every video length, short (padded with its first frame, the backward read with its last) and long."""
    spec = ClipSpec("middle_window", length=length)
    for n in range(1, 4 * length):
        forward, backward = notebook_window(n, length)
        assert [c.tolist() for c in eval_clips(n, spec)] == [forward, backward], n
        fused = eval_clips(n, ClipSpec("middle_window", length=length, fused=True))
        assert [c.tolist() for c in fused] == [forward + backward], n
    forward, backward = notebook_window(56, 40)  # the competition's median test video: a centred window
    assert forward[0] == 8 and backward == forward[::-1]
    forward, backward = notebook_window(100, 40)  # long: the middle - 11, and a backward window of its own
    assert forward[0] == 39 and backward[0] == 60 and backward != forward[::-1]
