"""Rule report: the self-contained HTML report."""

from cineflow.io import write_text
from cineflow.logs import to_log
from cineflow.report.html import ModelFiles, ReportFiles, build_report

with to_log(snakemake.log[0]):
    files = ReportFiles(
        models=[ModelFiles(name, summary=snakemake.input[f"summary_{name}"], oof=snakemake.input[f"oof_{name}"],
                           plots=snakemake.input[f"plots_{name}"], metrics=list(snakemake.input[f"metrics_{name}"]),
                           gradcam=list(snakemake.input[f"gradcam_{name}"]),
                           subgroups=snakemake.input[f"subgroups_{name}"], card=snakemake.input[f"card_{name}"],
                           external=list(snakemake.input[f"external_{name}"]),
                           training_cams=list(getattr(snakemake.input, f"training_cams_{name}", [])))
                for name in snakemake.params.models],
        splits=list(snakemake.input.splits), manifest=snakemake.input.manifest,
        quarantine=snakemake.input.quarantine, benchmarks=snakemake.params.benchmarks,
        comparison=snakemake.input.comparison, sweeps=list(snakemake.input.sweeps),
        deidentification=snakemake.input.deidentification)
    write_text(snakemake.output[0], build_report(files, snakemake.config, snakemake.params.title, snakemake.output[0]))
