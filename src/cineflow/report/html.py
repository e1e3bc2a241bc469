"""One self-contained HTML report: data, model comparison with CIs, per-model figures, mistakes, Grad-CAM,
provenance. Every image and video is embedded as a data URI, so the file works offline."""

from __future__ import annotations

import base64
import os
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import jinja2
import numpy as np
import pandas as pd
import yaml

from cineflow.config import DataConfig
from cineflow.data.deidentify import described
from cineflow.data.layouts import leakage_warning
from cineflow.evaluate.aggregate import level_name
from cineflow.evaluate.summary import first_repeat, read_predictions
from cineflow.figures import png_bytes
from cineflow.io import read_csv, read_json, read_parquet
from cineflow.presentation import TaskView, view_of
from cineflow.provenance import code_version, hardware, package_versions
from cineflow.report import plots
from cineflow.report.model_card import ci_text, mean_sd
from cineflow.report.plots import read_index
from cineflow.tasks import Task
from cineflow.tasks.metrics import LOWER_IS_BETTER

MIME = {".mp4": "video/mp4", ".png": "image/png"}
MISTAKES_SHOWN = 30


@dataclass(frozen=True)
class ModelFiles:
    """One model's inputs of the report, as the report rule declares them (folds in order)."""
    name: str
    summary: str
    oof: str
    plots: str
    metrics: list[str]
    gradcam: list[str]
    subgroups: str
    card: str
    external: list[str]
    training_cams: list[str] = field(default_factory=list)  # the first fold's, where gradcam_every draws them


@dataclass(frozen=True)
class ReportFiles:
    """Every input of the report, as the report rule declares them."""
    models: list[ModelFiles]
    splits: list[str]
    manifest: str
    quarantine: str
    benchmarks: str
    comparison: str
    sweeps: list[str] = field(default_factory=list)  # results/sweeps/<base>.json, one per sweep
    deidentification: str | None = None  # results/deidentification.csv (the manifest rule's audit)


PARTITIONS = ["train", "val", "test"]


def data_summary(splits: dict[int, pd.DataFrame]) -> pd.DataFrame:
    """Videos per fold and partition (train, val, test), one integer column per class and their total.

    A crosstab, not a pivot table: a pivot averages (28.0) and keeps its column axis's name as an extra
    header cell ('label')."""
    tables = [table.assign(fold=fold) for fold, table in sorted(splits.items())]
    every = pd.concat(tables, ignore_index=True)
    order = {p: i for i, p in enumerate(PARTITIONS)}
    every = every.assign(order=every["partition"].map(order).fillna(len(order)))
    out = pd.crosstab([every["fold"], every["order"], every["partition"]], every["label"].astype(str))
    out = out.astype(int).droplevel("order")
    out.columns.name = None
    out["videos"] = out.sum(axis=1)
    return out.reset_index()


def task_key(task: Task) -> str:
    """Models are only ranked and compared against models of the same task, target and classes."""
    return task.name + (f" of {task.target}" if task.target else f" ({', '.join(task.classes)})")


def comparison(summaries: dict[str, dict], tasks: dict[str, Task]) -> tuple[list[str], list[dict], dict[str, str]]:
    """(metric columns, rows of mean ± sd per model with the pooled value and its 95 % CI, the best model of
    each task with two or more models).

    The best model ranks first on its task's first headline metric (ROC AUC, or MAE for regression) among
    the models of the same task, target and classes: a regression model is never ranked beside a classifier."""
    columns = list(dict.fromkeys(m for name in summaries for m in tasks[name].headline))
    rows = []
    for name, s in summaries.items():
        cells = {}
        for m in columns:
            if m not in s["metrics"]:
                cells[m] = {"mean": "–", "ci": ""}
                continue
            pooled = s["pooled"]
            cells[m] = {"mean": mean_sd(s["metrics"][m]),
                        "ci": f"pooled {pooled['metrics'][m]:.3f}" + ci_text(pooled, m)}
        rows.append({"model": name, "task": task_key(tasks[name]), **cells})
    best = {}
    for key in dict.fromkeys(task_key(t) for t in tasks.values()):
        members = [n for n in summaries if task_key(tasks[n]) == key]
        metric = tasks[members[0]].headline[0]
        sign = -1 if metric in LOWER_IS_BETTER else 1
        if len(members) > 1:
            best[key] = max(members, key=lambda n: sign * _finite(summaries[n]["metrics"][metric]["mean"], sign))
    return columns, rows, best


def nested_sections(results: list[dict], tasks: dict[str, Task], best: dict[str, str]) -> list[dict]:
    """The report's nested-selection section of each sweep (its per-outer-fold choices, the nested and naive
    estimates, the optimism); each sweep's deployable choice becomes the ★ of its task (in `best`)."""
    sections = []
    for r in results:
        key = task_key(tasks[r["choice"]])
        best[key] = r["choice"]
        per_fold = pd.DataFrame([{"outer fold": f["fold"], "chosen": f["chosen"],
                                  f"inner {r['metric']}": f["inner_best"], f"outer test {r['metric']}": f["outer"],
                                  **{f"inner mean {s}": v for s, v in f["inner_means"].items()}}
                                 for f in r["per_fold"]])
        sections.append({"sweep": r["sweep"], "metric": r["metric"], "choice": r["choice"],
                         "settings": [{"model": m, "setting": ", ".join(f"{k}={v}" for k, v in s.items())}
                                      for m, s in r["settings"].items()],
                         "per_fold": per_fold.to_html(index=False, classes="table nested", border=0,
                                                      float_format="%.4f"),
                         "nested": r["nested_estimate"], "naive": r["naive_estimate"],
                         "naive_choice": r["naive_choice"],
                         "optimism": r["optimism"], "naive_optimism": r["naive_optimism"]})
    return sections


def comparison_rows(result: dict) -> list[dict]:
    """The report's rows of results/comparison.json."""
    def fmt(v):
        return "–" if v is None or v != v else f"{v:.3g}" if abs(v) < 1e-3 and v else f"{v:.3f}"

    return [{"pair": f"{r['models'][0]} − {r['models'][1]}", "level": r.get("level", "video"), "metric": r["metric"],
             "test": r["test"].replace("_", " "),
             "estimates": " vs ".join(fmt(v) for v in r["values"]), "difference": fmt(r["difference"]),
             "ci": f"[{fmt(r['ci95'][0])}, {fmt(r['ci95'][1])}]", "p": fmt(r["p_value"]),
             "p_holm": fmt(r.get("p_value_holm"))} for r in result["pairs"]]


def external_rows(externals: dict[str, list[dict]], summaries: dict[str, dict], tasks: dict[str, Task]
                  ) -> tuple[list[str], list[dict]]:
    """(tested-on columns, one row per trained model): each model's first headline metric with its CI on its
    own pooled test folds and on every external set."""
    names = list(dict.fromkeys(e["external"] for found in externals.values() for e in found))
    rows = []
    for model, found in externals.items():
        metric = tasks[model].headline[0]
        pooled = summaries[model]["pooled"]
        cells = {"internal": _cell(pooled, metric)}
        for e in found:
            cells[e["external"]] = _cell(e, metric, e["shift"]["fraction_in_distribution"])
        rows.append({"model": model, "metric": metric, "cells": cells})
    return names, rows


def _cell(result: dict, metric: str, in_distribution: float | None = None) -> str:
    text = (f"{result['metrics'][metric]:.3f}"
            + ci_text(result, metric) + f" (n={result['n']}")
    return text + (f", {in_distribution:.0%} in distribution)" if in_distribution is not None else ")")


def _finite(value: float, sign: int) -> float:
    return value if value == value else -sign * float("inf")


def benchmarks(directory: Path) -> pd.DataFrame:
    """Wall time and peak memory of each job, from the rules' benchmark files."""
    rows = []
    for path in sorted(directory.rglob("*.tsv")):
        table = pd.read_csv(path, sep="\t")
        rows.append({"job": str(path.relative_to(directory).with_suffix("")), "seconds": float(table["s"].iloc[-1]),
                     "max_rss_mb": float(table["max_rss"].iloc[-1]) if "max_rss" in table else float("nan")})
    return pd.DataFrame(rows, columns=["job", "seconds", "max_rss_mb"])


def file_uri(path: Path) -> str:
    return f"data:{MIME[path.suffix]};base64," + base64.b64encode(path.read_bytes()).decode()


def cam_anchor(model: str, fold: int, video_id: str) -> str:
    return "cam-" + re.sub(r"[^A-Za-z0-9_-]", "_", f"{model}-{fold}-{video_id}")


def mistakes_table(view: TaskView, oof: pd.DataFrame, model: str, cams: set[tuple[int, str]]) -> list[dict]:
    """Rows of the misclassification table (regression: the largest errors), with a link to the CAM."""
    rows = []
    for r in view.mistakes(oof).head(MISTAKES_SHOWN).itertuples(index=False):
        rows.append({"video_id": r.video_id, "fold": int(r.fold), "group": r.group, **view.mistake_cells(r),
                     "uncertainty": "–" if pd.isna(r.uncertainty) else f"{r.uncertainty:.3f}",
                     "cam": cam_anchor(model, r.fold, r.video_id) if (r.fold, r.video_id) in cams else ""})
    return rows


def origin_rows(model: str, fold_metrics: list[dict]) -> pd.DataFrame:
    """Where each fold's results came from: config hash, code version and the device/host/SLURM job that
    trained and evaluated it (from the provenance the result files carry)."""
    def where(hw: dict) -> str:
        job = f", SLURM job {hw['slurm_job_id']}" if hw.get("slurm_job_id") else ""
        gpu = f" ({hw['gpu']})" if hw.get("gpu") else ""
        return f"{hw.get('device', '?')}{gpu} on {hw.get('host', '?')}{job}"

    return pd.DataFrame([{"model": model, "fold": m["fold"], "config hash": m["provenance"]["config_hash"],
                          "code version": m["provenance"]["code_version"],
                          "trained on": where(m.get("trained_on", {})),
                          "evaluated on": where(m["provenance"]["hardware"])} for m in fold_metrics])


def file_uri_of(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


def per_fold_table(view: TaskView, fold_metrics: list[dict]) -> pd.DataFrame:
    """One row per fold (and repeat): best epoch, test size, the task's cells and the headline metrics."""
    repeated, task = any(m.get("repeat") for m in fold_metrics), view.task
    return pd.DataFrame([{**({"repeat": m.get("repeat", 0)} if repeated else {}), "fold": m["fold"],
                          "best_epoch": m["best_epoch"], "n_test": m["n_test"],
                          **view.fold_cells(m), **{k: round(m["metrics"][k], 4) for k in task.headline}}
                         for m in fold_metrics])


def unit_row(units: dict | None, task: Task) -> dict | None:
    """The pooled table's patient- (unit-) level row: its name, headline values and CIs; None without
    evaluate.aggregate."""
    if units is None:
        return None
    level = level_name(units["by"])
    if units.get("skipped"):
        return {"label": f"pooled {level} level", "skipped": units["skipped"]}
    left = f", {units['n_left_out']} left out: their videos disagree on the truth" if units["n_left_out"] else ""
    return {"label": f"pooled {level} level ({units['n']} {level}s, {units['how']} of their videos{left})",
            "values": {k: units["metrics"][k] for k in task.headline},
            "ci": {k: ci_text(units, k) for k in task.headline}}


def calibration_table(summary: dict, fold_metrics: list[dict]) -> str | None:
    """Each fold's test figures before and after its recalibration (fitted on its val partition), and the
    pooled out-of-fold ones, as HTML; None where the model was not recalibrated."""
    pooled = summary.get("calibration")
    if pooled is None:
        return None

    def cells(before: dict, after: dict) -> dict:
        return {f"{k} {when}": round(d[k], 4) for k in before if k != "reliability"
                for when, d in (("before", before), ("after", after))}

    rows = [{"test videos": f"fold {m.get('name', m['fold'])}", "recalibration": m["calibration"]["method"],
             **cells(m["uncalibrated"], m["metrics"])} for m in fold_metrics if "uncalibrated" in m]
    rows.append({"test videos": "all folds, pooled", "recalibration": pooled["method"],
                 **cells(pooled["pooled"]["before"], pooled["pooled"]["after"])})
    return pd.DataFrame(rows).to_html(index=False, classes="table calibration", border=0)


def cam_rows(name: str, view: TaskView, fold_metrics: list[dict], gradcam_dirs: list[str]) -> list[dict]:
    """The model's Grad-CAMs, each a row of its fold's gradcam/index.csv with the file embedded."""
    cams = []
    for m, cam_dir in zip(fold_metrics, map(Path, gradcam_dirs)):
        k = m["fold"]
        index = read_predictions(cam_dir / "index.csv")
        cams += [dict(row, fold=k, note=view.cam_note(row), uri=file_uri(cam_dir / row["file"]),
                      image=row["file"].endswith(".png"), anchor=cam_anchor(name, k, row["video_id"]),
                      attention_uri=file_uri(cam_dir / row["attention"]) if row["attention"] else "")
                 for row in index.to_dict("records")]
    return cams


def training_cam_rows(folders: list[str]) -> list[dict]:
    """The Grad-CAMs drawn during training in the first of `folders` (train.cams), one row per followed val
    video: {video_id, label, cams: [{epoch, score, uri}] in epoch order}; [] where none were drawn."""
    if not folders:
        return []
    folder = Path(folders[0])
    tables = [read_csv(p, dtype={"video_id": str, "label": str}) for p in sorted(folder.glob("epoch_*/index.csv"))]
    if not tables:
        return []
    rows = {}
    for row in pd.concat(tables, ignore_index=True).to_dict("records"):
        video = rows.setdefault(row["video_id"], {"video_id": row["video_id"], "label": row["label"], "cams": []})
        video["cams"].append({"epoch": int(row["epoch"]), "score": float(row["score"]),
                              "uri": file_uri(folder / row["file"])})
    return list(rows.values())


def model_section(model, config: dict, report_path: str | Path | None) -> tuple[dict, dict, Task, list[dict], list]:
    """(the report's section of one model, its summary, task, external results and fold metrics), from the
    model's result files (ReportFiles.models)."""
    name, summary = model.name, read_json(model.summary)
    fold_metrics = [read_json(p) for p in model.metrics]
    first = fold_metrics[0]
    task = Task.from_dict(first["task"])
    subgroups = read_json(model.subgroups)
    forest = [plots.forest_figure(subgroups, m) for m in task.headline[:2]]
    externals = [read_json(p) for p in model.external]
    view = view_of(task)
    cams = cam_rows(name, view, fold_metrics, model.gradcam)
    plots_dir = Path(model.plots)
    oof = first_repeat(read_parquet(model.oof))
    pooled = summary["pooled"]
    section = {
        "name": name, "task": task.name,
        "per_fold": per_fold_table(view, fold_metrics).to_html(index=False, classes="table", border=0),
        "calibration": calibration_table(summary, fold_metrics),
        "units": unit_row(summary.get("patient_level"), task),
        "figures": [dict(f, uri=file_uri(plots_dir / f["file"])) for f in read_index(plots_dir)],
        "pooled": {k: pooled["metrics"][k] for k in task.headline},
        "ci": {k: ci_text(pooled, k) for k in task.headline},
        "n_pooled": pooled["n"], "n_groups": pooled["n_groups"], "bootstrap": pooled["bootstrap"],
        "video_level": {k: summary["metrics"][k]["mean"] for k in task.headline},
        "clip_level": {k: float(np.nanmean([m["clip_metrics"][k] for m in fold_metrics])) for k in task.headline},
        "mc_dropout": first["mc_dropout"], "eval_clips": first["eval_clips"],
        "repeats": {k: v for k, v in summary.get("repeats", {}).items() if k in task.headline},
        "mistakes": mistakes_table(view, oof, name, {(c["fold"], c["video_id"]) for c in cams}),
        "mistakes_heading": view.mistakes_heading(oof), "mistakes_score": view.mistake_score_header,
        "cams": cams,
        "training_cams": training_cam_rows(model.training_cams),
        "config": yaml.safe_dump(config["models"][name], sort_keys=False),
        "forest": [file_uri_of(png_bytes(f)) for f in forest if f is not None],
        "subgroup_notes": [f"{c} = {v['value']}: {v['note']}" for c, values in subgroups["subgroups"].items()
                           for v in values if v["note"]],
        "card": Path(os.path.relpath(model.card, Path(report_path).parent)).as_posix() if report_path else model.card,
        "card_text": Path(model.card).read_text(encoding="utf-8"),
        "external": [{"name": e["external"], "checks": e["checks"], "skipped": e["skipped"],
                      "shift": e["shift"]} for e in externals],
    }
    return section, summary, task, externals, fold_metrics


def build_report(files: ReportFiles, config: dict, title: str, report_path: str | Path | None = None) -> str:
    """The HTML report of `files` (the report rule's inputs); links (the model cards) are relative to
    `report_path`."""
    splits = {k: read_csv(path) for k, path in enumerate(files.splits)}
    quarantine = read_csv(files.quarantine)
    manifest = read_parquet(files.manifest)
    summaries, sections, tasks, origins, externals = {}, [], {}, [], {}
    for model in files.models:
        section, summaries[model.name], tasks[model.name], externals[model.name], fold_metrics = model_section(
            model, config, report_path)
        sections.append(section)
        origins.append(origin_rows(model.name, fold_metrics))
    columns, rows, best = comparison(summaries, tasks)
    nested = nested_sections([read_json(p) for p in files.sweeps], tasks, best)
    external_names, external_table = external_rows(externals, summaries, tasks)
    compared = read_json(files.comparison)
    template = jinja2.Environment(autoescape=jinja2.select_autoescape(["html"]), undefined=jinja2.StrictUndefined
                                  ).from_string(resources.files("cineflow.report").joinpath("templates/report.html")
                                                .read_text(encoding="utf-8"))
    return template.render(
        title=title, best=best, comparison=rows, headline=columns, sections=sections, nested=nested,
        pairs=comparison_rows(compared), multiplicity=compared["multiplicity"],
        skipped_levels=compared.get("skipped_levels", {}),
        external_names=external_names, external_table=external_table,
        leakage_warning=leakage_warning(DataConfig.from_dict(config["data"])),
        n_videos=len(manifest), n_groups=manifest["group"].nunique(),
        class_counts=manifest["label"].value_counts().sort_index().to_dict(),
        data_table=data_summary(splits).to_html(index=False, classes="table", border=0, table_id="data"),
        quarantine=quarantine.to_dict("records"),
        deidentification=described(config["data"].get("deidentify", {}),
                                   read_csv(files.deidentification) if files.deidentification else pd.DataFrame()),
        config_yaml=yaml.safe_dump(config, sort_keys=False), code_version=code_version(),
        packages=package_versions(), hardware=hardware(),
        origins=pd.concat(origins).to_html(index=False, classes="table", border=0),
        benchmarks=benchmarks(Path(files.benchmarks)).to_html(index=False, classes="table", border=0,
                                                            float_format="%.2f"),
    )
