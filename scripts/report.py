"""Rule report: the self-contained HTML report."""

from cineflow.atomic import write_text
from cineflow.logs import to_log
from cineflow.report import build_report

with to_log(snakemake.log[0]):
    html = build_report(results_dir=snakemake.params.results, models=snakemake.params.models,
                        folds=snakemake.params.folds, config=snakemake.config,
                        benchmarks_dir=snakemake.params.benchmarks, title=snakemake.params.title)
    write_text(snakemake.output[0], html)
