"""One self-contained HTML report: data, model comparison, per-model plots, Grad-CAM, provenance."""

from __future__ import annotations

import base64
import json
from importlib import resources
from pathlib import Path

import jinja2
import pandas as pd
import yaml

from . import plots
from .metrics import LOWER_IS_BETTER
from .provenance import code_version, hardware, package_versions
from .tasks import TASKS


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
    """(metric columns, rows of mean ± sd per model, best model).

    The best model ranks first on the first model's headline metric (ROC AUC, or MAE for
    regression) among the models that report it."""
    columns = list(dict.fromkeys(m for name in summaries for m in TASKS[tasks[name]].headline))
    rows = []
    for name, s in summaries.items():
        cells = {m: f"{s['metrics'][m]['mean']:.3f} ± {s['metrics'][m]['std']:.3f}" if m in s["metrics"] else "–"
                 for m in columns}
        rows.append({"model": name, **cells})
    key = TASKS[tasks[next(iter(summaries))]].headline[0]
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


def video_uri(path: Path) -> str:
    return "data:video/mp4;base64," + base64.b64encode(path.read_bytes()).decode()


def build_report(results_dir: str | Path, models: list[str], folds: list[int], config: dict,
                 benchmarks_dir: str | Path, title: str) -> str:
    results = Path(results_dir)
    splits = {k: pd.read_csv(results / "splits" / f"fold_{k}.csv", keep_default_na=False) for k in folds}
    quarantine = pd.read_csv(results / "quarantine.csv", keep_default_na=False)
    manifest = pd.read_parquet(results / "manifest.parquet")
    summaries, sections, tasks = {}, [], {}
    for name in models:
        summary = json.loads((results / name / "summary.json").read_text())
        summaries[name] = summary
        fold_metrics = [json.loads((results / name / f"fold_{k}" / "metrics.json").read_text()) for k in folds]
        predictions = {k: pd.read_csv(results / name / f"fold_{k}" / "predictions.csv", keep_default_na=False)
                       for k in folds}
        histories = {k: pd.read_csv(results / name / f"fold_{k}" / "history.csv") for k in folds}
        task = fold_metrics[0]["task"]
        tasks[name] = task
        per_fold = pd.DataFrame([{"fold": m["fold"], "best_epoch": m["best_epoch"], "n_test": m["n_test"],
                                  **({"threshold": round(m["threshold"], 4)} if m["threshold"] is not None else {}),
                                  **{k: round(m["metrics"][k], 4) for k in TASKS[task].headline}}
                                 for m in fold_metrics])
        cams = []
        for k in folds:
            cam_dir = results / name / f"fold_{k}" / "gradcam"
            index = pd.read_csv(cam_dir / "index.csv", keep_default_na=False)
            cams += [dict(row, fold=k, uri=video_uri(cam_dir / row["file"])) for row in index.to_dict("records")]
        sections.append({
            "name": name,
            "per_fold": per_fold.to_html(index=False, classes="table", border=0),
            "task": task,
            "figures": plots.task_figures(task, fold_metrics[0], predictions, summary),
            "curves": plots.learning_curves(histories, fold_metrics[0]["monitor"]),
            "cams": cams,
            "config": yaml.safe_dump(config["models"][name], sort_keys=False),
        })
    columns, rows, best = comparison(summaries, tasks)
    template = jinja2.Environment(autoescape=jinja2.select_autoescape(["html"]), undefined=jinja2.StrictUndefined
                                  ).from_string(resources.files("cineflow").joinpath("templates/report.html")
                                                .read_text(encoding="utf-8"))
    return template.render(
        title=title, best=best, comparison=rows, headline=columns, sections=sections,
        n_videos=len(manifest), n_groups=manifest["group"].nunique(),
        class_counts=manifest["label"].value_counts().sort_index().to_dict(),
        data_table=data_summary(splits).to_html(index=False, classes="table", border=0),
        quarantine=quarantine.to_dict("records"),
        config_yaml=yaml.safe_dump(config, sort_keys=False), code_version=code_version(),
        packages=package_versions(), hardware=hardware(),
        benchmarks=benchmarks(Path(benchmarks_dir)).to_html(index=False, classes="table", border=0,
                                                            float_format="%.2f"),
    )
