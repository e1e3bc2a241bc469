"""Frozen-embedding probes: heads fitted by scikit-learn and folded into the probe module give scikit-learn's own
predictions; the module returns exactly the stored embedding; a probe fold and the workflow stage run for real."""

import numpy as np
import pytest
import torch

from cineflow.config import ConfigError, ModelConfig, resolve
from cineflow.models.architectures import build_model
from cineflow.models.inference import last_linear
from cineflow.models.losses import to_scores
from cineflow.models.probe import probe_head
from cineflow.train.probe import fit_head


def _apply(layers, x):
    head = probe_head("mlp" if len(layers) == 2 else "logistic", x.shape[1], layers[-1][0].shape[0], 7)
    with torch.no_grad():
        for linear, (w, b) in zip([m for m in head.modules() if isinstance(m, torch.nn.Linear)], layers):
            linear.weight.copy_(torch.as_tensor(w)), linear.bias.copy_(torch.as_tensor(b))
        return head(torch.as_tensor(x, dtype=torch.float32))


@pytest.mark.parametrize("kind, classes", [("logistic", 2), ("logistic", 3), ("mlp", 2), ("mlp", 3)])
def test_a_fitted_head_gives_scikit_learns_probabilities_on_raw_embeddings(kind, classes):
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(0)
    x = rng.normal(5, 3, (120, 6))  # far from standard: the folded scaling matters
    y = (x[:, 0] > 5).astype(int) + (x[:, 1] > 6 if classes == 3 else 0)
    settings = {"C": 0.5, "alpha": 1e-3, "hidden": 7, "max_iter": 500}
    layers = fit_head(kind, settings, x, y, True, classes, seed=1)
    probs = to_scores(_apply(layers, x), "softmax").numpy()
    reference = (LogisticRegression(C=0.5, max_iter=500) if kind == "logistic" else
                 MLPClassifier(hidden_layer_sizes=(7,), alpha=1e-3, max_iter=500, random_state=1))
    expected = make_pipeline(StandardScaler(), reference).fit(x, y).predict_proba(x)
    assert probs.shape == (120, classes) and np.allclose(probs, expected, atol=1e-4)


def test_a_ridge_probe_recovers_a_linear_target():
    rng = np.random.default_rng(1)
    x = rng.normal(0, 2, (200, 4))
    y = 3 * x[:, 0] - x[:, 2] + 50
    layers = fit_head("ridge", {"alpha": 1e-6}, x, y, False, 1, seed=0)
    assert np.allclose(layers[0][0][0], [3, 0, -1, 0], atol=1e-4) and np.isclose(layers[0][1][0], 50, atol=1e-3)
    assert np.allclose(_apply(layers, x).numpy()[:, 0], y, atol=1e-3)


@pytest.mark.parametrize("arch, params", [("tiny3d", {"width": 4}), ("r3d_18", {}),
                                           ("frame2d", {"backbone": "test_resnet", "temporal_head": "attention"})])
def test_the_probe_module_returns_the_embedding_that_was_stored_under_its_head(arch, params):
    """The encoder inside the probe ends where embed_videos reads the embedding: the output layer's input."""
    torch.manual_seed(0)
    encoder = build_model(arch, 1, 1, input_size=(4, 24, 24), **params).eval()
    module = build_model("probe", 2, 1, input_size=(4, 24, 24), encoder_arch=arch, encoder_params=params).eval()
    module.encoder.load_state_dict(encoder.state_dict(), strict=False)
    captured = []
    last_linear(encoder).register_forward_hook(lambda m, inputs, out: captured.append(inputs[0]))
    x = torch.rand(2, 1, 4, 24, 24)
    with torch.no_grad():
        encoder(x)
        assert torch.allclose(module.encoder(x), captured[0], atol=1e-6)
        assert module(x).shape == (2, 2)


def test_a_probe_takes_its_encoders_input_contract_and_refuses_what_cannot_work():
    from cineflow.config import expand_probes

    config = resolve({"encoders": {"ep": {"arch": "echoprime"}},
                      "models": {"p": {"arch": "probe", "probe": {"encoder": "ep", "head": "logistic"}}}})
    assert expand_probes(config) == {"p": "ep"}
    p = config["models"]["p"]
    assert (p["size"], p["clip_length"], p["clip_period"], p["color"]) == (224, 16, 2, "rgb")
    assert p["arch_params"]["encoder_arch"] == "echoprime"
    with pytest.raises(ConfigError, match="not an encoders: entry"):
        expand_probes(resolve({"models": {"p": {"arch": "probe", "probe": {"encoder": "nope"}}}}))
    with pytest.raises(ConfigError, match="must be fixed"):
        expand_probes(resolve({"encoders": {"e": {}}, "models": {"p": {"arch": "probe", "probe": {"encoder": "e"}}}}))
