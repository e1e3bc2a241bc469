"""A model card per model (Mitchell et al. 2019, "Model Cards for Model Reporting"), written from the result
files alone: model details, intended use, factors, metrics, evaluation and training data, quantitative
analyses (pooled with CIs, subgroups, calibration, external sets), caveats and recommendations, provenance."""

from __future__ import annotations

import pandas as pd

from cineflow.config import DataConfig
from cineflow.data.layouts import leakage_warning


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
    task, classes, target = first["task"], first["classes"], first.get("target")
    headline = subgroups["headline"]
    pooled = summary["pooled"]
    prov = first["provenance"]
    what = (f"regression of `{target}`" if task == "regression"
            else f"{task} classification into {', '.join(classes)}"
            + (f" (positive class {first['positive_class']}, threshold tuned on val by {first['threshold_rule']})"
               if task == "binary" else ""))
    counts = manifest["label"].value_counts().sort_index()
    lines = [f"# Model card: {name}", "",
             "## Model details",
             f"- Architecture `{model_cfg['arch']}`"
             + (f" with {model_cfg['arch_params']}" if model_cfg.get("arch_params") else "") + ", "
             f"{'pretrained' if model_cfg.get('pretrained') else 'trained from scratch'}; loss `{first['loss']}`, "
             f"model selection on val `{first['monitor']}`.",
             f"- Clips of {model_cfg['clip_length']} frames every {model_cfg['clip_period']}; "
             f"{first['eval_clips']} evaluation clip(s) per video averaged"
             + (f", MC dropout with {first['mc_dropout']} passes" if first["mc_dropout"] else "") + ".",
             f"- An ensemble of {len(fold_metrics)} fold models (one per cross-validation fold); predictions on new "
             "videos average their scores.",
             f"- Code version `{prov['code_version']}`, config hash `{prov['config_hash']}`.", "",
             "## Intended use",
             f"- Task: {what}, from {'images' if model_cfg['clip_length'] == 1 else 'videos'}.",
             "- A research model: it supports, and does not replace, a clinician's reading; it has not been "
             "validated prospectively or cleared for clinical use.",
             "- Out of scope: videos unlike the training data. `cineflow-predict` and external validation flag "
             "them (`in_distribution` false, with the reasons); their predictions should not be used.", "",
             "## Factors",
             ("- Subgroups evaluated: " + ", ".join(f"`{c}`" for c in subgroups["subgroups"]) + "."
              if subgroups["subgroups"] else "- No subgroup columns were given (data.subgroups): performance across "
              "sex, site or vendor is unknown."), "",
             "## Training and evaluation data",
             f"- {len(manifest)} usable videos of {manifest['group'].nunique()} patients (groups); per class: "
             + ", ".join(f"{k} {v}" for k, v in counts.items()) + f". Layout `{data_cfg['layout']}`.",
             f"- {split_cfg['folds']}-fold cross-validation grouped by patient (no patient in two partitions), "
             f"val fraction {split_cfg['val_fraction']} of the rest, repeated {split_cfg.get('repeats', 1)} time(s). "
             "Test metrics come from the folds' test partitions, never seen in training or model selection.", "",
             "## Metrics", "",
             f"Pooled out-of-fold test predictions ({pooled['n']} videos, {pooled['n_groups']} patients); 95 % CIs "
             f"from {pooled['bootstrap']} bootstrap resamples of patients.", ""]
    lines += metric_table(headline, [("pooled out-of-fold", pooled)])
    lines += ["", "Mean ± sd over folds: " + ", ".join(
        f"{m} {mean_sd(summary['metrics'][m])}" for m in headline
        if m in summary["metrics"]) + "."]
    if "repeats" in summary:
        lines += ["", "Spread over repeated cross-validations (sd of the repeats' pooled values): " + ", ".join(
            f"{m} {v['std']:.3f}" for m, v in summary["repeats"].items() if m in headline) + "."]
    if "ece" in pooled["metrics"]:
        lines += ["", f"Calibration: expected calibration error {pooled['metrics']['ece']:.3f} "
                      f"({len(pooled['metrics'].get('reliability', []))} occupied bins)."]
    lines += ["", "## Quantitative analyses", ""]
    for column, values in subgroups["subgroups"].items():
        lines += [f"### By `{column}`", ""]
        lines += metric_table(headline, [(f"{column} = {v['value']}", v) for v in values])
        notes = [f"{column} = {v['value']}: {v['note']}" for v in values if v["note"]]
        lines += [""] + [f"- {n}" for n in notes] + ([""] if notes else [])
    if externals:
        lines += ["### External validation", ""]
        lines += metric_table(headline, [(e["external"], e) for e in externals])
        for e in externals:
            differs = [c for c in e["checks"] if c["status"] != "ok"]
            reasons = ", ".join(f"{k} ({n})" for k, n in e["shift"].get("reasons", {}).items())
            lines += ["", f"- {e['external']}: {e['shift']['fraction_in_distribution']:.0%} of videos in "
                          f"distribution" + (f" (flagged for: {reasons})" if reasons else "")
                      + f"; {e['n_skipped']} unreadable."
                      + ("" if not differs else " Differs from training: " + "; ".join(
                          f"{c['check']} {c['external']} (training {c['training']})" for c in differs) + ".")]
        lines += [""]
    else:
        lines += ["No external validation set (config `external:`): the figures above are internal.", ""]
    lines += ["## Caveats and recommendations"]
    caveats = []
    warning = leakage_warning(DataConfig.from_dict(data_cfg))
    if warning:
        caveats.append(warning)
    small = [f"{c} = {v['value']}" for c, values in subgroups["subgroups"].items() for v in values if v["ci"] is None]
    if small:
        caveats.append("Subgroups too small for a CI: " + ", ".join(small) + ".")
    if not externals:
        caveats.append("Not validated on data from another site: expect lower performance elsewhere.")
    if task != "regression" and counts.min() < 0.2 * counts.max():
        caveats.append(f"Classes are imbalanced ({counts.idxmin()} {counts.min()} of {counts.sum()}).")
    if data_cfg["layout"] == "demo":
        caveats.append("Trained on cineflow's synthetic demo data: a demonstration, not a clinical model.")
    lines += [f"- {c}" for c in caveats] or ["- None recorded."]
    hw = first.get("trained_on", {})
    lines += ["", "## Provenance",
              f"- Trained on {hw.get('device', '?')} ({hw.get('gpu') or hw.get('cpu', '')}) on {hw.get('host', '?')}; "
              f"torch {prov['packages'].get('torch', '?')}, cineflow code `{prov['code_version']}`.",
              f"- Result files: `results/{name}/summary.json`, `results/{name}/subgroups.json`, "
              f"`results/{name}/fold_<k>/metrics.json`.", ""]
    return "\n".join(lines)
