"""A model bundle: everything a fold ensemble needs to predict on another machine, with no results/ tree and no
config, and a manifest of SHA-256 checksums that prediction verifies before it reads anything.

Layout (`results/<model>/bundle/`):
    manifest.json          format, model, every other file with its SHA-256, what could not be exported and why
    contract.json          the preprocessing contract (frame-cache settings: sector/ROI, size, colour, fps; clip
                           spec; normalisation; channels), the task and classes, the evaluation settings, and per
                           fold its files, val-tuned threshold and recalibration
    folds/<fold>/model.pt  the fold checkpoint (weights and record; loaded weights_only: nothing is unpickled)
    folds/<fold>/model.onnx   the same model as ONNX, where the family exports
    folds/<fold>/model.pt2    the same model as a torch.export program (graph and weights; for the hospital's
                              own torch or AOTInductor stack: cineflow's prediction does not load it)
    folds/<fold>/shift_reference.npz   the input-shift reference (plain arrays, no pickles)
    model_card.md, summary.json   the model card and the run's summary with its provenance

The torch route rebuilds each fold's architecture from the installed package and loads the checkpoint's
weights; the ONNX route runs the exported graphs in ONNX Runtime. Both score with the same code as the workflow.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd
import torch

from cineflow.config import EvalConfig, GradcamConfig, section
from cineflow.evaluate.predict import predict_new_videos
from cineflow.io import atomic_dir, read_json, write_json
from cineflow.models.trained import TrainedModel, load_checkpoint
from cineflow.provenance import file_sha256, provenance

FORMAT = "cineflow-bundle/2"
MANIFEST, CONTRACT = "manifest.json", "contract.json"


class BundleError(ValueError):
    """A bundle that is incomplete, changed after it was built, or not a bundle: the message says which file."""


@dataclass(frozen=True)
class Bundle:
    """A verified bundle: its folder, contract, and per fold the checkpoint, ONNX file (or None), metrics
    (threshold, recalibration, task) and shift reference."""

    root: Path
    contract: dict
    models: list[Path]
    onnx: list[Path | None]
    metrics: list[dict]
    references: list[Path]
    digest: str  # SHA-256 of manifest.json: one number that names everything in the bundle
    ignored: list[str]  # files in the folder the manifest does not list: never read


def fold_contract(trained: TrainedModel, metrics: dict) -> dict:
    """What one fold needs besides its weights: its input contract and its decision settings."""
    return {"task": trained.task.as_dict(), "output": trained.output, "in_channels": trained.in_channels,
            "input_size": list(trained.input_size), "normalisation": trained.normalisation,
            "preprocess": trained.preprocess, "clip_spec": vars(trained.clip_spec),
            "threshold": metrics.get("threshold"), "calibration": metrics.get("calibration")}


def build_bundle(model: str, model_paths: list[str | Path], metric_paths: list[str | Path],
                 reference_paths: list[str | Path], summary: str | Path, card: str | Path, evaluate: dict,
                 out_dir: str | Path, onnx: bool = True, program: bool = True) -> dict:
    """Write the bundle of one model into `out_dir` (replaced whole, so a killed build leaves no half bundle) and
    return its manifest.

    Args:
        model: the model's name.
        model_paths, metric_paths, reference_paths: each fold's checkpoint, metrics.json and shift reference.
        summary: the model's summary.json (its provenance travels with the bundle).
        card: the model card.
        evaluate: the evaluate section (eval_clips, block: how prediction reads a video).
        out_dir: the bundle folder.
        onnx: also export each fold as ONNX (where the family allows).
        program: also export each fold as a torch.export program (model.pt2).
    """
    with atomic_dir(out_dir) as tmp:
        folds, skipped = [], {"onnx": {}, "program": {}}
        for paths in zip(model_paths, metric_paths, reference_paths):
            folds.append(bundle_fold(*paths, tmp, onnx, program, skipped))
        shutil.copyfile(summary, tmp / "summary.json")
        shutil.copyfile(card, tmp / "model_card.md")
        write_json(tmp / CONTRACT, {"model": model, "evaluate": {k: evaluate[k] for k in ("eval_clips", "block")},
                                    "folds": folds})
        files = sorted(p.relative_to(tmp).as_posix() for p in tmp.rglob("*") if p.is_file())
        manifest = {"format": FORMAT, "model": model, "files": {f: file_sha256(tmp / f) for f in files},
                    "skipped": skipped, "provenance": provenance({"model": model, "evaluate": evaluate})}
        write_json(tmp / MANIFEST, manifest)
    return manifest


def bundle_fold(model_path: str | Path, metric_path: str | Path, reference_path: str | Path, tmp: Path,
                onnx: bool, program: bool, skipped: dict[str, dict[str, str]]) -> dict:
    """Write one fold's files under `tmp`/folds/<fold>/ and return its contract entry; an export that fails is
    recorded in `skipped` (export kind -> fold -> reason)."""
    from cineflow.deploy.onnx import export_onnx  # torch's exporters are loaded only to build a bundle
    from cineflow.deploy.program import export_program

    metrics = read_json(metric_path)
    name = str(metrics.get("name", Path(model_path).parent.name.removeprefix("fold_")))
    fold_dir = tmp / "folds" / name
    fold_dir.mkdir(parents=True)
    trained = TrainedModel.load(model_path, "cpu")
    if trained.base_weights is not None:  # an adapter on a weights file elsewhere: the whole model goes along
        trained = replace(trained, base_weights=None)
        trained.save(fold_dir / "model.pt", trained.module.state_dict())
    else:
        shutil.copyfile(model_path, fold_dir / "model.pt")
    shutil.copyfile(reference_path, fold_dir / "shift_reference.npz")
    entry = {"name": name, "model": f"folds/{name}/model.pt",
             "shift_reference": f"folds/{name}/shift_reference.npz"}
    for kind, wanted, export, file in (("onnx", onnx, export_onnx, "model.onnx"),
                                       ("program", program, export_program, "model.pt2")):
        reason = export(trained, fold_dir / file) if wanted else "not asked for"
        if reason:
            skipped[kind][name] = reason
        entry[kind] = None if reason else f"folds/{name}/{file}"
    return {**entry, **fold_contract(trained, metrics)}


SHA256 = re.compile(r"^[0-9a-f]{64}$")
FOLD_FILES = ("model", "onnx", "program", "shift_reference")  # a fold's files named in the contract


def verify_bundle(root: str | Path, expect: str | None = None) -> dict:
    """The manifest of the bundle at `root` once every file it lists is there, inside the bundle, with its checksum;
    otherwise BundleError naming the file. Nothing in the folder is read before this passes, and only the files
    it lists are read after (open_bundle also holds the contract to that).

    Args:
        root: the bundle folder.
        expect: the manifest's SHA-256 as its builder published it (`--expect-manifest`), or None. The manifest
            is not signed: anyone who edits a file can re-hash it, so only a digest known from elsewhere shows
            that a received bundle is the one that was built.
    """
    root = Path(root)
    if not (root / MANIFEST).is_file():
        raise BundleError(f"{root} is not a cineflow bundle: it has no {MANIFEST} (build one with "
                          f"`snakemake results/<model>/bundle`)")
    if expect is not None:
        digest = file_sha256(root / MANIFEST)
        if digest != expect.strip().lower():
            raise BundleError(f"{root / MANIFEST} has SHA-256 {digest}, not the {expect} you expect: this is not "
                              f"the bundle that was built; refused")
    try:
        manifest = json.loads((root / MANIFEST).read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise BundleError(f"{root / MANIFEST} is not valid JSON ({error}): the bundle is damaged") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT or not isinstance(manifest.get("files"),
                                                                                            dict):
        raise BundleError(f"{root / MANIFEST}: not a {FORMAT} manifest; rebuild the bundle with this version")
    listed = manifest["files"]
    if CONTRACT not in listed:
        raise BundleError(f"{root / MANIFEST} does not list {CONTRACT}, which says how to read every other file: "
                          f"refused; rebuild the bundle")
    for name, digest in listed.items():
        if not isinstance(digest, str) or not SHA256.match(digest):
            raise BundleError(f"{root / MANIFEST}: the checksum of '{name}' is {digest!r}, not a SHA-256 (64 hex "
                              f"digits): the manifest is damaged; refused")
        path = (root / name).resolve()
        if not path.is_relative_to(root.resolve()) or name == MANIFEST:
            raise BundleError(f"{root / MANIFEST} lists '{name}', which is outside the bundle: refused")
        if not path.is_file():
            raise BundleError(f"{root}: {name} is missing; copy the whole bundle folder")
        if file_sha256(path) != digest:
            raise BundleError(f"{root}: {name} has changed since the bundle was built (SHA-256 {digest[:12]}... "
                              f"expected): refused; use the bundle as it was built")
    return manifest


def checked_contract(root: Path, manifest: dict) -> dict:
    """contract.json once every fold file it names is one the manifest lists (so inside the bundle and checked):
    BundleError naming the fold and the path otherwise."""
    try:
        contract = read_json(root / CONTRACT)
        folds = contract["folds"]
        shaped = (isinstance(folds, list) and folds and all(isinstance(f, dict) for f in folds)
                  and "eval_clips" in contract["evaluate"] and "model" in contract)
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as error:
        shaped, why = False, f" ({type(error).__name__}: {error})"
    else:
        why = ""
    if not shaped:
        raise BundleError(f"{root / CONTRACT} is not a cineflow contract{why}; rebuild the bundle")
    for i, fold in enumerate(folds):
        for key in FOLD_FILES:
            name = fold.get(key)
            if name is None and key in ("onnx", "program"):
                continue
            if not isinstance(name, str) or name not in manifest["files"]:
                raise BundleError(f"{root / CONTRACT}: fold {fold.get('name', i)}'s {key} is {name!r}, which the "
                                  f"manifest does not list: only files inside the bundle and checked are read; "
                                  f"refused")
    return contract


def unlisted_files(root: str | Path, manifest: dict) -> list[str]:
    """Files in the bundle folder that its manifest does not list (hidden ones, such as Snakemake's timestamp of a
    directory output, left out): prediction never reads them, and says so."""
    root = Path(root)
    present = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")}
    return sorted(present - set(manifest["files"]) - {MANIFEST})


def open_bundle(root: str | Path, expect: str | None = None) -> Bundle:
    """The verified bundle at `root` (verify_bundle, `expect`: the manifest's published SHA-256), with its folds'
    files and decision settings."""
    root = Path(root)
    manifest = verify_bundle(root, expect)
    contract = checked_contract(root, manifest)
    folds = contract["folds"]
    try:
        metrics = [{"task": f["task"], "threshold": f["threshold"], "calibration": f["calibration"]} for f in folds]
    except KeyError as error:
        raise BundleError(f"{root / CONTRACT}: a fold has no {error}; rebuild the bundle") from None
    return Bundle(root=root, contract=contract, models=[root / f["model"] for f in folds],
                  onnx=[root / f["onnx"] if f["onnx"] else None for f in folds], metrics=metrics,
                  references=[root / f["shift_reference"] for f in folds], digest=file_sha256(root / MANIFEST),
                  ignored=unlisted_files(root, manifest))


def onnx_models(bundle: Bundle) -> list[TrainedModel]:
    """Each fold's record with its ONNX Runtime session as the module (clear error where a fold has no ONNX)."""
    from cineflow.deploy.onnx import OnnxModule

    missing = [str(p.parent.name) for p, o in zip(bundle.models, bundle.onnx) if o is None]
    if missing:
        raise BundleError(f"{bundle.root}: folds {missing} have no ONNX export (manifest.json's skipped.onnx says "
                          f"why); use the torch route (--runtime torch)")
    return [replace(readable(bundle, m, lambda p: TrainedModel.of_checkpoint(load_checkpoint(p))),
                    module=readable(bundle, o, OnnxModule)) for m, o in zip(bundle.models, bundle.onnx)]


def readable(bundle: Bundle, path: Path, load):
    """load(path), or BundleError naming the file where it cannot be read: a truncated checkpoint or ONNX graph,
    or a checkpoint holding code or objects other than tensors (refused by torch's weights_only reader: nothing in
    it ran)."""
    import pickle

    name = path.relative_to(bundle.root).as_posix()
    try:
        return load(path)
    except pickle.UnpicklingError:
        raise BundleError(f"{bundle.root}: {name} holds objects other than weights (code or classes that a pickle "
                          f"would run): refused, nothing in it ran. Use a bundle cineflow built") from None
    except Exception as error:  # each reader raises its own kind for a damaged file
        first = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
        raise BundleError(f"{bundle.root}: {name} cannot be read ({first}): the file is damaged or not what "
                          f"its name says; rebuild the bundle") from None


def load_models(bundle: Bundle, device: torch.device) -> list[TrainedModel]:
    """The bundle's fold models loaded (torch route), e.g. once when an app starts."""
    return [readable(bundle, p, lambda path: TrainedModel.load(path, device)) for p in bundle.models]


def predict_with_bundle(bundle: Bundle, source: str | Path | pd.DataFrame, work_dir: str | Path,
                        device: torch.device, runtime: str = "torch", seed: int = 0, mc_dropout: int = 0,
                        cam_dir: str | Path | None = None, root: str | Path | None = None,
                        models: list[TrainedModel] | None = None) -> pd.DataFrame:
    """predict_new_videos with the bundle's folds, thresholds, recalibrations and references, and the evaluation
    settings it was built with: the workflow's predictions for the same videos.

    Args:
        bundle: an opened bundle (open_bundle).
        source: a folder of videos, a table with a path column, or a (video_id, path) table under `root`.
        work_dir: where new videos are cached while they are scored.
        device: where the torch route runs (the ONNX route runs on the CPU).
        runtime: "torch" (checkpoints; shift warning, MC dropout and Grad-CAM) or "onnx" (ONNX Runtime, scores).
        seed: seeds MC dropout.
        mc_dropout: MC dropout passes (torch route only).
        cam_dir: where Grad-CAMs go (torch route only), or None for none.
        root: the folder a (video_id, path) table's paths are relative to.
        models: the fold models already loaded for this runtime (load_models or onnx_models, e.g. once when an
            app starts); None: loaded here.
    """
    cfg = section(EvalConfig, "evaluate", **bundle.contract["evaluate"], mc_dropout=mc_dropout)
    if runtime == "onnx":
        if mc_dropout or cam_dir:
            raise BundleError("the ONNX route gives scores only: MC dropout and Grad-CAM need --runtime torch")
        models, references = models or onnx_models(bundle), None
    elif runtime == "torch":
        models, references = models or load_models(bundle, device), bundle.references
    else:
        raise BundleError(f"unknown runtime '{runtime}': torch or onnx")
    gradcam = section(GradcamConfig, "gradcam") if cam_dir else None
    return predict_new_videos(source, models, bundle.metrics, cfg, work_dir, device, seed, gradcam, cam_dir,
                              references, root)
