"""Rule external: a model's frozen fold ensemble on an external set (config external.<name>): predictions
with the input-shift warning, metrics with patient-level CIs, input checks, figures."""

from pathlib import Path

from cineflow.config import EvalConfig, external_data
from cineflow.data.layouts import labels_table
from cineflow.devices import job_device
from cineflow.evaluate.external import validate_external
from cineflow.io import frames_dir, read_json, read_parquet, write_csv, write_json
from cineflow.logs import to_log
from cineflow.provenance import provenance
from cineflow.report.plots import Inputs, render_figures
from cineflow.seeding import seed_everything

with to_log(snakemake.log[0]), job_device() as device:
    seed_everything(snakemake.params.seed, snakemake.threads, snakemake.config["deterministic"])
    name, model = snakemake.wildcards.name, snakemake.wildcards.model
    data, demo, seed = external_data(snakemake.config, name)
    table = labels_table(data, demo, seed)
    fold_metrics = [read_json(p) for p in snakemake.input.metrics]
    out_dir = Path(snakemake.output.metrics).parent
    with frames_dir(out_dir) as work:
        metrics, predictions = validate_external(
            table, data.root, snakemake.input.models, fold_metrics, snakemake.input.references,
            read_parquet(snakemake.input.manifest), EvalConfig.from_dict(snakemake.params.evaluate), work, device,
            snakemake.params.seed)
    figures = render_figures(Inputs(predictions.assign(fold=name), {"pooled": metrics, "confusion_matrix": metrics["metrics"].get("confusion_matrix")}, fold_metrics, {}),
                             snakemake.output.plots, skip=("learning_curves",))
    write_json(Path(snakemake.output.plots) / "figures.json", {"figures": figures})
    write_csv(snakemake.output.predictions, predictions)
    write_json(snakemake.output.metrics, {"external": name, "model": model, **metrics, "figures": figures,
                                          "provenance": provenance(snakemake.config, device)})
    print({k: round(v, 4) for k, v in metrics["metrics"].items() if isinstance(v, float)})
