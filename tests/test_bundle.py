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
    (lambda root: rewrite(root, format="other/1"), "not a cineflow-bundle/2 manifest"),
    (lambda root: (root / "manifest.json").write_text("{not json"), "not valid JSON"),
    (lambda root: (root / "manifest.json").unlink(), "is not a cineflow bundle"),
])
def test_a_changed_or_foreign_bundle_is_refused_naming_the_file(bundle, damage, message):
    damage(bundle)
    with pytest.raises(BundleError, match=message):
        verify_bundle(bundle)


@pytest.mark.parametrize("arch, size", [("tiny3d", (8, 24, 24)), ("r2plus1d_18", (4, 32, 32)),
                                        ("frame2d", (4, 32, 32))])
def test_a_cnn_exported_to_onnx_and_torch_export_scores_as_torch_at_another_batch_size(arch, size, tmp_path):
    """Both exports' batch axes are dynamic (exported at 2, run at 3 and 1), and ONNX Runtime and the loaded
    torch.export program give torch's outputs."""
    import types

    import torch

    from cineflow.deploy.onnx import OnnxModule, export_onnx
    from cineflow.deploy.program import export_program
    from cineflow.models.architectures import build_model

    torch.manual_seed(0)
    model = build_model(arch, 2, 1, input_size=size).eval()
    trained = types.SimpleNamespace(module=model, in_channels=1, input_size=size)
    assert export_onnx(trained, tmp_path / "m.onnx") is None and export_program(trained, tmp_path / "m.pt2") is None
    program = torch.export.load(str(tmp_path / "m.pt2")).module()
    for clips in (torch.rand(3, 1, *size), torch.rand(1, 1, *size)):
        with torch.no_grad():
            expected = model(clips)
            assert torch.allclose(program(clips), expected, atol=1e-5)
        assert torch.allclose(OnnxModule(tmp_path / "m.onnx")(clips), expected, atol=1e-5)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx", "m.pt2"]  # no temporaries left


def test_a_model_that_does_not_trace_is_reported_with_the_reason_not_raised(tmp_path):
    import types

    import torch

    from cineflow.deploy.program import export_program

    class DataDependent(torch.nn.Module):
        def forward(self, clips):
            return clips.mean((2, 3, 4)) if clips.sum() > 0 else clips.amax((2, 3, 4))

    reason = export_program(types.SimpleNamespace(module=DataDependent(), in_channels=1, input_size=(2, 4, 4)),
                            tmp_path / "m.pt2")
    assert "data-dependent" in reason and list(tmp_path.iterdir()) == []


def test_models_loaded_once_are_used_by_either_runtime(tmp_path, monkeypatch):
    """An app or a server loads the fold models once (load_models, onnx_models) and passes them on each call:
    neither route loads them again."""
    import torch

    from cineflow.deploy import bundle as bundle_module

    def load_again(*args):
        raise AssertionError("loaded again")

    monkeypatch.setattr(bundle_module, "onnx_models", load_again)
    monkeypatch.setattr(bundle_module, "predict_new_videos", lambda source, models, *args: models)
    opened = bundle_module.Bundle(root=tmp_path, contract={"evaluate": {"eval_clips": 1, "block": 4}}, models=[],
                                  onnx=[], metrics=[], references=[], digest="", ignored=[])
    loaded = ["fold 0", "fold 1"]
    for runtime in ("torch", "onnx"):
        assert bundle_module.predict_with_bundle(opened, tmp_path, tmp_path, torch.device("cpu"), runtime,
                                                 models=loaded) is loaded
