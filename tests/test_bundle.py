"""A bundle's manifest check: what prediction refuses before it reads anything from the folder."""

import json

import pytest

from cineflow.deploy.bundle import FORMAT, BundleError, unlisted_files, verify_bundle
from cineflow.provenance import file_sha256


@pytest.fixture
def bundle(tmp_path):
    root = tmp_path / "bundle"
    (root / "folds" / "0").mkdir(parents=True)
    (root / "contract.json").write_text("{}")
    (root / "folds" / "0" / "model.pt").write_bytes(b"weights")
    files = {name: file_sha256(root / name) for name in ("contract.json", "folds/0/model.pt")}
    (root / "manifest.json").write_text(json.dumps({"format": FORMAT, "files": files}))
    return root


def rewrite(root, **changes):
    manifest = json.loads((root / "manifest.json").read_text())
    (root / "manifest.json").write_text(json.dumps({**manifest, **changes}))


def test_an_intact_bundle_passes_and_a_file_added_later_is_named_and_never_read(bundle):
    assert set(verify_bundle(bundle)["files"]) == {"contract.json", "folds/0/model.pt"}
    (bundle / "folds" / "0" / "extra.pt").write_bytes(b"x")
    (bundle / ".snakemake_timestamp").write_bytes(b"")
    assert unlisted_files(bundle, verify_bundle(bundle)) == ["folds/0/extra.pt"]


@pytest.mark.parametrize("damage, message", [
    (lambda root: (root / "folds" / "0" / "model.pt").write_bytes(b"weightz"), "folds/0/model.pt has changed"),
    (lambda root: (root / "folds" / "0" / "model.pt").unlink(), "folds/0/model.pt is missing"),
    (lambda root: rewrite(root, files={"../outside.txt": "0" * 64}), "outside the bundle"),
    (lambda root: rewrite(root, format="other/1"), "not a cineflow-bundle/1 manifest"),
    (lambda root: (root / "manifest.json").write_text("{not json"), "not valid JSON"),
    (lambda root: (root / "manifest.json").unlink(), "is not a cineflow bundle"),
])
def test_a_changed_or_foreign_bundle_is_refused_naming_the_file(bundle, damage, message):
    damage(bundle)
    with pytest.raises(BundleError, match=message):
        verify_bundle(bundle)


@pytest.mark.parametrize("arch, size", [("tiny3d", (8, 24, 24)), ("r2plus1d_18", (4, 32, 32)),
                                        ("frame2d", (4, 32, 32))])
def test_a_cnn_exported_to_onnx_scores_as_torch_at_another_batch_size(arch, size, tmp_path):
    """The export's batch axis is dynamic (exported at 2, run at 3), and ONNX Runtime gives torch's outputs."""
    import types

    import torch

    from cineflow.deploy.onnx import OnnxModule, export_onnx
    from cineflow.models.architectures import build_model

    torch.manual_seed(0)
    model = build_model(arch, 2, 1, input_size=size).eval()
    assert export_onnx(types.SimpleNamespace(module=model, in_channels=1, input_size=size), tmp_path / "m.onnx") is None
    clips = torch.rand(3, 1, *size)
    with torch.no_grad():
        expected = model(clips)
    assert torch.allclose(OnnxModule(tmp_path / "m.onnx")(clips), expected, atol=1e-5)
