"""A bundle's manifest check: what prediction refuses before it reads anything from the folder."""

import json

import pytest

from cineflow.deploy.bundle import FORMAT, BundleError, load_models, open_bundle, unlisted_files, verify_bundle
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


def listed(root) -> dict:
    return json.loads((root / "manifest.json").read_text())["files"]


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
    (lambda root: rewrite(root, files={**listed(root), "../outside.txt": "0" * 64}), "outside the bundle"),
    (lambda root: rewrite(root, files={}), "does not list contract.json"),  # issue 45, case 1
    (lambda root: rewrite(root, files={"folds/0/model.pt": listed(root)["folds/0/model.pt"]}),
     "does not list contract.json"),  # case 2: the contract taken out of the manifest
    (lambda root: rewrite(root, files={**listed(root), "folds/0/model.pt": 12}), "not a SHA-256"),  # case 4
    (lambda root: rewrite(root, files={**listed(root), "folds/0/model.pt": "Z" * 64}), "not a SHA-256"),
    (lambda root: rewrite(root, format="other/1"), "not a cineflow-bundle/2 manifest"),
    (lambda root: (root / "manifest.json").write_text("{not json"), "not valid JSON"),
    (lambda root: (root / "manifest.json").unlink(), "is not a cineflow bundle"),
])
def test_a_changed_or_foreign_bundle_is_refused_naming_the_file(bundle, damage, message):
    damage(bundle)
    with pytest.raises(BundleError, match=message):
        verify_bundle(bundle)


def contract_bundle(root, fold: dict, extra: dict[str, bytes] | None = None) -> None:
    """A bundle whose contract has one fold with these file entries, and whose manifest lists (and hashes) the
    contract and every file in `extra` (path -> bytes, written under the root or, for '../', beside it)."""
    (root / "folds" / "0").mkdir(parents=True, exist_ok=True)
    contract = {"model": "m", "evaluate": {"eval_clips": 1, "block": 4},
                "folds": [{"name": "0", "task": {}, "threshold": 0.5, "calibration": None, "onnx": None,
                           "program": None, "shift_reference": "folds/0/shift_reference.npz", **fold}]}
    (root / "contract.json").write_text(json.dumps(contract))
    files = {"contract.json": b"", "folds/0/shift_reference.npz": b"npz", **(extra or {})}
    for name, data in files.items():
        if name != "contract.json":
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_bytes(data)
    (root / "manifest.json").write_text(json.dumps({"format": FORMAT, "files": {
        name: file_sha256(root / name) for name in files}}))


@pytest.mark.parametrize("model_path", ["/tmp/outside/model.pt", "../../outside/model.pt", "folds/0/unlisted.pt"])
def test_a_contract_that_names_a_file_the_manifest_does_not_list_is_refused(tmp_path, model_path):
    """Issue 45, case 3: the contract's fold paths set outside the bundle (or to a file not listed), the manifest
    re-hashed: refused before any model loads."""
    root = tmp_path / "deep" / "bundle"
    contract_bundle(root, {"model": model_path}, {})
    (root / "folds" / "0" / "unlisted.pt").write_bytes(b"x")
    with pytest.raises(BundleError, match=f"fold 0's model is '{model_path}', which the manifest does not list"):
        open_bundle(root)


def test_a_listed_path_outside_the_bundle_is_refused_even_when_the_contract_names_it(tmp_path):
    root = tmp_path / "deep" / "bundle"
    (tmp_path / "deep" / "outside").mkdir(parents=True)
    contract_bundle(root, {"model": "../outside/model.pt"}, {"../outside/model.pt": b"weights"})
    with pytest.raises(BundleError, match="lists '../outside/model.pt', which is outside the bundle"):
        open_bundle(root)


def test_the_manifest_can_be_pinned_to_its_published_digest(tmp_path):
    root = tmp_path / "bundle"
    contract_bundle(root, {"model": "folds/0/model.pt"}, {"folds/0/model.pt": b"w"})
    digest = file_sha256(root / "manifest.json")
    assert open_bundle(root, expect=digest.upper()).digest == digest
    with pytest.raises(BundleError, match=f"has SHA-256 {digest}, not the {'0' * 64} you expect"):
        open_bundle(root, expect="0" * 64)


def test_a_truncated_or_pickled_checkpoint_is_named_and_nothing_in_it_runs(tmp_path):
    """Cases 5 and 6: a listed model.pt cut short, and one that is a pickle which would run code; the manifest
    re-hashed for both. Each is refused with the file named; the pickle's command never ran."""
    import pickle

    import torch

    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    good = tmp_path / "good.pt"
    torch.save({"state_dict": {"w": torch.zeros(64, 64)}}, good)
    for name, data, message in (("cut", good.read_bytes()[:300], "folds/0/model.pt cannot be read"),
                                ("pickle", pickle.dumps(Exploit()), "holds objects other than weights")):
        root = tmp_path / name
        contract_bundle(root, {"model": "folds/0/model.pt"}, {"folds/0/model.pt": data})
        with pytest.raises(BundleError, match=message) as error:
            load_models(open_bundle(root), torch.device("cpu"))
        assert "weights_only" not in str(error.value) and len(str(error.value).splitlines()) == 1
    assert not marker.exists()


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
