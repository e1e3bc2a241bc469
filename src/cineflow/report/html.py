"""One self-contained HTML report: data, model comparison with CIs, per-model figures, mistakes, Grad-CAM,
provenance. Every image and video is embedded as a data URI, so the file works offline."""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import jinja2
import numpy as np
import pandas as pd
import yaml

from cineflow.config import DataConfig
from cineflow.data.layouts import leakage_warning
from cineflow.evaluate.metrics import LOWER_IS_BETTER
from cineflow.evaluate.summary import read_predictions
from cineflow.evaluate.tasks import TASKS, Task
from cineflow.io import read_csv, read_json, read_parquet
from cineflow.provenance import code_version, hardware, package_versions
from cineflow.report.plots import read_index

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


@dataclass(frozen=True)
class ReportFiles:
    """Every input of the report, as the report rule declares them."""
    models: list[ModelFiles]
    splits: list[str]
    manifest: str
    quarantine: str
    benchmarks: str


def data_summary(splits: dict[int, pd.DataFrame]) -> pd.DataFrame:
    """Videos per class, partition and fold."""
    rows = []
    for fold, table in sorted(splits.items()):
        counts = table.groupby(["partition", "label"]).size()
        for (partition, label), n in counts.items():
            rows.append({"fold": fold, "partition": partition, "label": label, "videos": int(n)})
    out = pd.DataFrame(rows).pivot_table(index=["fold", "partition"], columns="label", values="videos",
                                         fill_value=0)
    return out.reset_index()


def comparison(summaries: dict[str, dict], tasks: dict[str, str]) -> tuple[list[str], list[dict], str]:
    """(metric columns, rows of mean ± sd per model with the pooled value and its 95 % CI, best model).

    The best model ranks first on the first model's headline metric (ROC AUC, or MAE for
    regression) among the models that report it."""
    columns = list(dict.fromkeys(m for name in summaries for m in TASKS.get(tasks[name]).headline))
    rows = []
    for name, s in summaries.items():
        cells = {}
        for m in columns:
            if m not in s["metrics"]:
                cells[m] = {"mean": "–", "ci": ""}
                continue
            ci = s["pooled"]["ci"].get(m)
            pooled = s["pooled"]["metrics"][m]
            cells[m] = {"mean": f"{s['metrics'][m]['mean']:.3f} ± {s['metrics'][m]['std']:.3f}",
                        "ci": f"pooled {pooled:.3f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")}
        rows.append({"model": name, **cells})
    key = TASKS.get(tasks[next(iter(summaries))]).headline[0]
    sign = -1 if key in LOWER_IS_BETTER else 1
    ranked = [n for n in summaries if key in summaries[n]["metrics"]]
    best = max(ranked, key=lambda n: sign * _finite(summaries[n]["metrics"][key]["mean"], sign))
    return columns, rows, best


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


def mistakes_table(task: Task, oof: pd.DataFrame, model: str, cams: set[tuple[int, str]]) -> list[dict]:
    """Rows of the misclassification table (regression: the largest errors), with a link to the CAM."""
    rows = []
    for r in task.mistakes(oof).head(MISTAKES_SHOWN).itertuples(index=False):
        rows.append({"video_id": r.video_id, "fold": int(r.fold), "group": r.group, **task.mistake_cells(r),
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


def build_report(files: ReportFiles, config: dict, title: str) -> str:
    """The HTML report of `files` (the report rule's inputs)."""
    splits = {k: read_csv(path) for k, path in enumerate(files.splits)}
    quarantine = read_csv(files.quarantine)
    manifest = read_parquet(files.manifest)
    summaries, sections, tasks, origins = {}, [], {}, []
    for model in files.models:
        name = model.name
        summary = read_json(model.summary)
        summaries[name] = summary
        fold_metrics = [read_json(p) for p in model.metrics]
        first = fold_metrics[0]
        task = Task.of_metrics(first)
        tasks[name] = task.name
        per_fold = pd.DataFrame([{"fold": m["fold"], "best_epoch": m["best_epoch"], "n_test": m["n_test"],
                                  **task.fold_cells(m), **{k: round(m["metrics"][k], 4) for k in task.headline}}
                                 for m in fold_metrics])
        cams = []
        for m, cam_dir in zip(fold_metrics, map(Path, model.gradcam)):
            k = m["fold"]
            index = read_predictions(cam_dir / "index.csv")
            cams += [dict(row, fold=k, note=task.cam_note(row), uri=file_uri(cam_dir / row["file"]),
                          image=row["file"].endswith(".png"),
                          anchor=cam_anchor(name, k, row["video_id"]),
                          attention_uri=file_uri(cam_dir / row["attention"]) if row["attention"] else "")
                     for row in index.to_dict("records")]
        plots_dir = Path(model.plots)
        oof = read_parquet(model.oof)
        pooled = summary["pooled"]
        sections.append({
            "name": name, "task": task.name, "per_fold": per_fold.to_html(index=False, classes="table", border=0),
            "figures": [dict(f, uri=file_uri(plots_dir / f["file"])) for f in read_index(plots_dir)],
            "pooled": {k: pooled["metrics"][k] for k in task.headline}, "ci": pooled["ci"],
            "n_pooled": pooled["n"], "n_groups": pooled["n_groups"], "bootstrap": pooled["bootstrap"],
            "video_level": {k: summary["metrics"][k]["mean"] for k in task.headline},
            "clip_level": {k: float(np.nanmean([m["clip_metrics"][k] for m in fold_metrics])) for k in task.headline},
            "mc_dropout": first["mc_dropout"], "eval_clips": first["eval_clips"],
            "mistakes": mistakes_table(task, oof, name, {(c["fold"], c["video_id"]) for c in cams}),
            "mistakes_heading": task.mistakes_heading(oof), "mistakes_score": task.mistake_score_header,
            "cams": cams,
            "config": yaml.safe_dump(config["models"][name], sort_keys=False),
        })
        origins.append(origin_rows(name, fold_metrics))
    columns, rows, best = comparison(summaries, tasks)
    template = jinja2.Environment(autoescape=jinja2.select_autoescape(["html"]), undefined=jinja2.StrictUndefined
                                  ).from_string(resources.files("cineflow.report").joinpath("templates/report.html")
                                                .read_text(encoding="utf-8"))
    return template.render(
        title=title, best=best, comparison=rows, headline=columns, sections=sections,
        leakage_warning=leakage_warning(DataConfig.from_dict(config["data"])),
        n_videos=len(manifest), n_groups=manifest["group"].nunique(),
        class_counts=manifest["label"].value_counts().sort_index().to_dict(),
        data_table=data_summary(splits).to_html(index=False, classes="table", border=0),
        quarantine=quarantine.to_dict("records"),
        config_yaml=yaml.safe_dump(config, sort_keys=False), code_version=code_version(),
        packages=package_versions(), hardware=hardware(),
        origins=pd.concat(origins).to_html(index=False, classes="table", border=0),
        benchmarks=benchmarks(Path(files.benchmarks)).to_html(index=False, classes="table", border=0,
                                                            float_format="%.2f"),
    )
