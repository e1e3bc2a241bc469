"""Augmentations: each op changes what it should, nothing else, and is reproducible."""

import torch

from cineflow.config import resolve
from cineflow.data.augment import augment, augmentations


def clips(batch=4):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(batch, 1, 6, 16, 16, generator=g) * 0.5 + 0.25
    return x


def ops(**on):
    """The model's augment section with schema defaults and only the named ops switched on (p=1)."""
    section = {name: {"p": 0.0} for name in ("brightness", "contrast", "rotation", "translation", "shift", "zoom",
                                              "noise", "blur", "hflip", "temporal_crop", "frame_mask")}
    for name, params in on.items():
        section[name] = dict(params, p=1.0)
    return resolve({"models": {"m": {"augment": section}}})["models"]["m"]["augment"]


def run(x, cfg, seed=0):
    return augment(x, augmentations(cfg), torch.Generator().manual_seed(seed))


def test_nothing_on_is_the_identity():
    x = clips()
    assert torch.equal(run(x, ops()), x)


def test_hflip_brightness_contrast_noise():
    x = clips()
    assert torch.equal(run(x, ops(hflip={})), x.flip(-1))
    shifted = run(x, ops(brightness={"delta": 0.1})) - x
    per_clip = shifted.flatten(1)
    assert torch.allclose(per_clip, per_clip[:, :1].expand_as(per_clip), atol=1e-6)  # one offset per clip
    assert (per_clip[:, 0].abs() <= 0.1 + 1e-6).all() and per_clip[:, 0].abs().max() > 0
    contrasted = run(x, ops(contrast={"factor": 0.5}))
    assert torch.allclose(contrasted.mean(dim=(1, 2, 3, 4)), x.mean(dim=(1, 2, 3, 4)), atol=1e-5)
    assert not torch.allclose(contrasted.std(dim=(1, 2, 3, 4)), x.std(dim=(1, 2, 3, 4)))
    noisy = run(x, ops(noise={"std": 0.05})) - x
    assert 0.03 < float(noisy.std()) < 0.07


def test_rotation_translation_zoom_move_pixels_not_intensity():
    x = torch.zeros(2, 1, 4, 32, 32)
    x[..., 12:20, 12:20] = 1.0  # a bright square in the middle
    for name, params in (("rotation", {"degrees": 40}), ("translation", {"fraction": 0.2}), ("zoom", {"range": 0.4})):
        y = run(x, ops(**{name: params}), seed=3)
        assert not torch.allclose(y, x), name
        assert torch.allclose(y[:, :, 0], y[:, :, 3]), name  # the same transform for every frame of a clip
        assert 0.3 < float(y.sum() / x.sum()) < 2.5, name


def test_shift_moves_whole_pixels_with_a_black_border():
    x = torch.rand(16, 2, 3, 20, 24) * 0.5 + 0.5  # never black
    y = run(x, ops(shift={"pixels": 4}), seed=2)
    moved = 0
    for b in range(len(x)):
        # the shift that explains clip b: whole pixels within +-4, the same for every channel and frame
        found = [(dy, dx) for dy in range(-4, 5) for dx in range(-4, 5)
                 if torch.equal(y[b][..., max(dy, 0):20 + min(dy, 0), max(dx, 0):24 + min(dx, 0)],
                                x[b][..., max(-dy, 0):20 + min(-dy, 0), max(-dx, 0):24 + min(-dx, 0)])]
        assert len(found) == 1, b
        dy, dx = found[0]
        moved += (dy, dx) != (0, 0)
        uncovered = torch.ones(20, 24, dtype=torch.bool)
        uncovered[max(dy, 0):20 + min(dy, 0), max(dx, 0):24 + min(dx, 0)] = False
        assert (y[b][..., uncovered] == 0).all(), b  # the border the clip left is black
    assert moved >= 12  # nearly every clip moves (1 in 81 stays)


def test_temporal_crop_and_frame_mask():
    x = torch.arange(8.0).view(1, 1, 8, 1, 1).expand(2, 1, 8, 4, 4) / 10
    y = run(x, ops(temporal_crop={"min_fraction": 0.5}), seed=1)
    frames = y[:, 0, :, 0, 0]
    assert (frames.diff(dim=1) >= 0).all()  # still in time order
    assert (frames[:, -1] - frames[:, 0] < 0.7 - 1e-6).all()  # a shorter span stretched to 8 frames
    masked = run(x, ops(frame_mask={"fraction": 0.25}), seed=1)
    changed = (masked != x).any(dim=(1, 3, 4)).sum(dim=1)
    assert changed.tolist() == [2, 2]


def test_reproducible_and_probability_respected():
    x = clips(64)
    cfg = ops(brightness={"delta": 0.2}, rotation={"degrees": 15}, noise={"std": 0.02}, frame_mask={})
    assert torch.equal(run(x, cfg, seed=7), run(x, cfg, seed=7))
    assert not torch.equal(run(x, cfg, seed=7), run(x, cfg, seed=8))
    half = ops()
    half["hflip"] = {"p": 0.5}
    flipped = (run(x, half) != x).flatten(1).any(1).float().mean()
    assert 0.25 < float(flipped) < 0.75


def test_the_studies_augmentations_draw_from_their_configured_sets():
    x = clips(batch=64)
    scaled = run(x, ops(brightness={"delta": 0.1, "mode": "multiply"})) / x  # x (0.9-1.1), one factor per clip
    factors = scaled.flatten(1)
    assert torch.allclose(factors, factors[:, :1].expand_as(factors), atol=1e-5)
    assert 0.9 - 1e-5 <= float(factors.min()) and float(factors.max()) <= 1.1 + 1e-5 and factors.std() > 0.02
    noise = (run(x, ops(noise={"std": [0.01, 0.1]})) - x).flatten(1).std(1)  # a std per clip from the range
    assert 0.005 < float(noise.min()) and float(noise.max()) < 0.12 and float(noise.max() - noise.min()) > 0.03
    # rotation by a fixed set: a square's corner pixel shows which angle was drawn
    square = torch.zeros(64, 1, 2, 33, 33)
    square[..., 8:25, 8:25] = 1.0
    turned = run(square, ops(rotation={"angles": [0, 45]}))
    corners = turned[:, 0, 0, 8, 8]
    assert set(corners.round().tolist()) == {0.0, 1.0}  # 45 degrees clears the corner, 0 keeps it
    assert torch.equal(turned[corners > 0.5], square[corners > 0.5])  # 0: untouched
    blurred = run(x, ops(blur={"sigma": [0.5, 2.0]}))
    assert torch.allclose(blurred.mean(dim=(3, 4)), x.mean(dim=(3, 4)), atol=0.05)  # blur keeps the mean...
    assert (blurred.std(dim=(3, 4)) < x.std(dim=(3, 4))).all()  # ...and smooths every frame
    assert torch.equal(run(x, ops(blur={"sigma": [0.5, 2.0]}), seed=1), run(x, ops(blur={"sigma": [0.5, 2.0]}), seed=1))
