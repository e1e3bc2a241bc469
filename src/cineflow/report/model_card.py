"""A model card per model (Mitchell et al. 2019, "Model Cards for Model Reporting"), rendered from the template
templates/model_card.md with the result files alone: model details, intended use, factors, metrics, evaluation and
training data, quantitative analyses (pooled with CIs, subgroups, calibration, external sets), caveats and
recommendations, provenance."""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

import jinja2
import pandas as pd

from cineflow.config import DataConfig
from cineflow.data.layouts import leakage_warning
from cineflow.evaluate.aggregate import level_name
from cineflow.tasks import Task


def _value(v) -> str:
    return "–" if v is None or v != v else f"{v:.3f}"


def mean_sd(entry: dict) -> str:
    """'mean ± sd' of a metric over folds; the mean alone where the sd is undefined (a single fold)."""
    if entry["std"] != entry["std"]:
        return f"{_value(entry['mean'])} (one fold, no sd)"
    return f"{entry['mean']:.3f} ± {entry['std']:.3f}"


def ci_text(result: dict, metric: str) -> str:
    """' [lo, hi]' of `metric`'s 95 % CI in a result (pooled, a subgroup, an external set; '' when there is none),
    with the bootstrap draws that were NaN and left out beside it: a CI over the resamples where the metric was
    defined only."""
    ci, nan_draws = (result.get("ci") or {}).get(metric), (result.get("nan_draws") or {}).get(metric, 0)
    if not ci or any(x != x for x in ci):
        return ""
    return f" [{ci[0]:.3f}, {ci[1]:.3f}]" + (f" ({nan_draws} NaN draws left out)" if nan_draws else "")


def metric_table(headline: list[str], rows: list[tuple[str, dict]]) -> list[str]:
    """A markdown table: one row per (name, result with n, metrics, ci and nan_draws), one column per headline
    metric."""
    lines = ["| | n | " + " | ".join(headline) + " |", "|---|---|" + "---|" * len(headline)]
    for name, result in rows:
        cells = [f"{_value(result['metrics'].get(m))}{ci_text(result, m)}" for m in headline]
        lines.append(f"| {name} | {result['n']} | " + " | ".join(cells) + " |")
    return lines


def model_card(name: str, model_cfg: dict, summary: dict, fold_metrics: list[dict], subgroups: dict,
               externals: list[dict], manifest: pd.DataFrame, data_cfg: dict, split_cfg: dict) -> str:
    """The model card's markdown.

    Args:
        name: the model's name.
        model_cfg: its `models:` entry.
        summary: its summary.json.
        fold_metrics: its folds' metrics.json contents.
        subgroups: its subgroups.json.
        externals: its external sets' metrics.json contents.
        manifest: the training manifest (the data it saw).
        data_cfg: the data section.
        split_cfg: the splits section.
    """
    first = fold_metrics[0]
    task = Task.from_dict(first["task"])
    headline = subgroups["headline"]
    counts = manifest["label"].value_counts().sort_index()
    caveats = [w for w in [leakage_warning(DataConfig.from_dict(data_cfg))] if w]
    small = [f"{c} = {v['value']}" for c, values in subgroups["subgroups"].items() for v in values if v["ci"] is None]
    if small:
        caveats.append("Subgroups too small for a CI: " + ", ".join(small) + ".")
    if not externals:
        caveats.append("Not validated on data from another site: expect lower performance elsewhere.")
    caveats += task.caveats(counts)
    if data_cfg["layout"] == "demo":
        caveats.append("Trained on cineflow's synthetic demo data: a demonstration, not a clinical model.")
    repeats = ", ".join(f"{m} {v['std']:.3f}" for m, v in summary.get("repeats", {}).items() if m in headline)
    text = _template().render(
        name=name, cfg=model_cfg, first=first, prov=first["provenance"], n_folds=len(fold_metrics),
        what=task.describe(first), subgroups=subgroups, n_videos=len(manifest), n_groups=manifest["group"].nunique(),
        counts=counts, data=data_cfg, splits=split_cfg, pooled=summary["pooled"],
        recalibration=recalibration_line(summary.get("calibration")),
        decision=decision_line(summary["pooled"].get("decision_curve")),
        fold_spread=", ".join(f"{m} {mean_sd(summary['metrics'][m])}" for m in headline if m in summary["metrics"]),
        pooled_rows=with_units("pooled out-of-fold", summary["pooled"], summary.get("patient_level")),
        repeats=repeats, externals=externals,
        external_rows=[row for e in externals for row in with_units(e["external"], e, e.get("patient_level"))],
        external_lines=[external_line(e) for e in externals], caveats=caveats, hw=first.get("trained_on", {}),
        table=lambda rows: "\n".join(metric_table(headline, rows)),
        subgroup_rows=lambda column, values: [(f"{column} = {v['value']}", v) for v in values])
    return text


def with_units(name: str, videos: dict, units: dict | None) -> list[tuple[str, dict]]:
    """Metric-table rows: the video-level result and, where evaluate.aggregate made one, the unit level."""
    if units is None:
        return [(name, videos)]
    level = level_name(units["by"])
    if units.get("skipped"):  # the reason in the row's name, no figures (cineflow.evaluate.aggregate)
        return [(f"{name}, videos", videos), (f"{name}, {level}s: not reported, {units['skipped']}",
                                             {"n": units["n_units"], "metrics": {}})]
    return [(f"{name}, videos", videos), (f"{name}, {level}s ({units['how']} of their videos)", units)]


def recalibration_line(calibration: dict | None) -> str | None:
    """What each fold's recalibration (fitted on its val partition) changed on the pooled test videos."""
    if calibration is None:
        return None
    before, after = calibration["pooled"]["before"], calibration["pooled"]["after"]
    changes = ", ".join(f"{k} {before[k]:.3f} → {after[k]:.3f}" for k in before if k != "reliability")
    return f"Each fold recalibrated on its val partition ({calibration['method']}); pooled test {changes}."


def decision_line(curve: dict | None) -> str | None:
    """Where the decision curve says the model is worth using: the threshold probabilities at which its net
    benefit beats treating everyone and treating no one, as ranges."""
    if curve is None:
        return None
    useful = curve["beats_both"]
    if not useful:
        return "Decision curve: at no threshold probability does the model's net benefit beat treat-all and treat-none."
    runs, start = [], useful[0]
    for previous, current in zip(useful, useful[1:] + [None]):
        if current is None or current - previous > 0.011:
            runs.append(f"{start:.2f}–{previous:.2f}" if previous > start else f"{start:.2f}")
            start = current
    return ("Decision curve: the model's net benefit beats treat-all and treat-none at threshold probabilities "
            + ", ".join(runs) + ".")


def external_line(e: dict) -> str:
    """The model card's line on one external set: how much of it is in distribution, and what differs."""
    differs = [c for c in e["checks"] if c["status"] != "ok"]
    reasons = ", ".join(f"{k} ({n})" for k, n in e["shift"].get("reasons", {}).items())
    decision = decision_line(e.get("decision_curve"))
    return (f"{e['external']}: {e['shift']['fraction_in_distribution']:.0%} of videos in distribution"
            + (f" (flagged for: {reasons})" if reasons else "") + f"; {e['n_skipped']} unreadable."
            + ("" if not differs else " Differs from training: " + "; ".join(
                f"{c['check']} {c['external']} (training {c['training']})" for c in differs) + ".")
            + (f" {decision}" if decision else ""))


@lru_cache(maxsize=1)
def _template() -> jinja2.Template:
    source = resources.files("cineflow.report").joinpath("templates/model_card.md").read_text(encoding="utf-8")
    return jinja2.Environment(trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
                              undefined=jinja2.StrictUndefined).from_string(source)
