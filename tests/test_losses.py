import numpy as np
import pytest
import torch

from cineflow.config import ConfigError
from cineflow.models.losses import LOSSES, build_loss, n_outputs, to_scores

Y_CLASS = np.array([0, 0, 0, 1])


@pytest.mark.parametrize("name", LOSSES.names())
def test_every_loss_takes_outputs_and_targets_and_backpropagates(name):
    entry = LOSSES.meta(name)
    k = n_outputs(name, 2)
    outputs = torch.randn(4, k, requires_grad=True)
    classes = entry["task"] == "classification"
    targets = torch.tensor([0, 1, 1, 0]) if classes else torch.tensor([20.0, 35, 50, 80])
    loss = build_loss(name, 2, Y_CLASS if classes else targets.numpy())(outputs, targets)
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    assert outputs.grad.abs().sum() > 0
    scores = to_scores(outputs.detach(), entry["output"])
    assert scores.shape == ((4, 2) if classes else (4, 1))


def test_focal_with_gamma_zero_is_cross_entropy_and_down_weights_easy_videos():
    outputs, targets = torch.tensor([[4.0, -4.0], [0.1, 0.0]]), torch.tensor([0, 0])
    ce = torch.nn.functional.cross_entropy(outputs, targets)
    assert torch.isclose(build_loss("focal", 2, Y_CLASS, gamma=0)(outputs, targets), ce)
    per_video = [build_loss("focal", 2, Y_CLASS, gamma=2)(outputs[i:i + 1], targets[i:i + 1]) /
                 torch.nn.functional.cross_entropy(outputs[i:i + 1], targets[i:i + 1]) for i in range(2)]
    assert per_video[0] < 0.01 < 0.2 < per_video[1]  # the easy video keeps almost nothing


def study_code_weights(labels: torch.Tensor) -> torch.Tensor:
    """The EF study's weighted_mse_loss, line for line."""
    weights = torch.ones_like(labels)
    weights[labels < 30] = 3.0
    weights[labels < 40] = 2.0
    weights[labels > 70] = 2.5
    return weights


def test_weighted_mse_weighs_the_ef_values_as_the_studys_code_does():
    """The code's line order makes EF < 30 weigh 2 (not the 3 its text says) and EF = 70 weigh 1."""
    targets = torch.tensor([10.0, 29.9, 30.0, 39.9, 40.0, 55.0, 70.0, 70.1, 90.0])
    outputs = (targets + 1.0)[:, None]  # every squared error is 1: the loss is the mean weight
    loss = build_loss("weighted_mse", 2, np.zeros(4))
    assert loss(outputs, targets).item() == pytest.approx(study_code_weights(targets).mean().item())
    assert study_code_weights(targets).tolist() == [2, 2, 2, 2, 1, 1, 1, 2.5, 2.5]
    # the text's reading is one option away: the same rules with the first two swapped
    text = build_loss("weighted_mse", 2, np.zeros(4), rules=[["<", 40, 2.0], ["<", 30, 3.0], [">", 70, 2.5]])
    assert text(outputs, targets).item() == pytest.approx(sum([3, 3, 2, 2, 1, 1, 1, 2.5, 2.5]) / 9)
    assert build_loss("mse", 2, np.zeros(4))(outputs, targets).item() == pytest.approx(1.0)
    with pytest.raises(ConfigError, match=r"weighted_mse rule \['<<', 30, 3\]"):
        build_loss("weighted_mse", 2, np.zeros(4), rules=[["<<", 30, 3]])


def test_balanced_class_weights_follow_the_train_partition():
    loss = build_loss("cross_entropy", 2, Y_CLASS, class_weights="balanced", label_smoothing=0.1)
    assert torch.allclose(loss.weight, torch.tensor([4 / 6, 4 / 2]))
    assert loss.label_smoothing == 0.1
    assert build_loss("bce", 2, Y_CLASS, pos_weight="balanced").loss.pos_weight.item() == 3.0


def test_bad_loss_settings_name_the_key():
    with pytest.raises(ConfigError, match="loss_params"):
        build_loss("mse", 2, Y_CLASS, gamma=2)
    with pytest.raises(ConfigError, match="3 values for 2 classes"):
        build_loss("focal", 2, Y_CLASS, class_weights=[1, 2, 3])
    with pytest.raises(ConfigError, match="two classes"):
        build_loss("bce", 3, Y_CLASS)
    with pytest.raises(ConfigError, match=r"unknown loss .dice.; choose one of \[.bce."):
        build_loss("dice", 2, Y_CLASS)
