import pytest
import torch

from cineflow.models import MODELS, build_model

CASES = {
    "tiny3d": {"width": 4},
    "frame2d": {"backbone": "test_resnet", "temporal_head": "bilstm_attention", "hidden": 8},
    "r2plus1d_18": {},
    "r3d_18": {},
    "mc3_18": {},
}


@pytest.mark.parametrize("arch", sorted(CASES))
def test_every_registered_arch_trains_one_step(arch):
    assert set(CASES) == set(MODELS)
    torch.manual_seed(0)
    model = build_model(arch, n_outputs=2, in_channels=1, **CASES[arch])
    x, y = torch.randn(2, 1, 4, 32, 32), torch.tensor([0, 1])
    out = model(x)
    assert out.shape == (2, 2)
    before = [p.detach().clone() for p in model.parameters()]
    loss = torch.nn.functional.cross_entropy(out, y)
    loss.backward()
    torch.optim.SGD(model.parameters(), lr=0.1).step()
    assert any(not torch.equal(b, p) for b, p in zip(before, model.parameters()))


@pytest.mark.parametrize("head", ["mean", "attention", "bilstm", "bilstm_attention"])
def test_temporal_heads(head):
    model = build_model("frame2d", 3, 1, backbone="test_resnet", temporal_head=head, hidden=8)
    assert model(torch.randn(2, 1, 5, 32, 32)).shape == (2, 3)
    if "attention" in head:
        w = model.head.last_weights
        assert w.shape == (2, 5) and torch.allclose(w.sum(1), torch.ones(2))


def test_offline_pretrained_error_names_both_options():
    with pytest.raises(RuntimeError, match="pretrained: false.*weights:"):
        build_model("r3d_18", 2, 1, pretrained=True)


def test_local_weights_file_is_loaded(tmp_path):
    source = build_model("tiny3d", 2, 1, width=4)
    torch.save(source.state_dict(), tmp_path / "w.pt")
    loaded = build_model("tiny3d", 2, 1, weights=str(tmp_path / "w.pt"), width=4)
    for a, b in zip(source.state_dict().values(), loaded.state_dict().values()):
        assert torch.equal(a, b)


def test_unknown_arch_lists_the_registry():
    with pytest.raises(KeyError, match="tiny3d"):
        build_model("nope", 2, 1)
