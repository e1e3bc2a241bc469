"""Rule compare: paired comparisons of the models of one task and target on the same videos."""

from cineflow.config import EvalConfig
from cineflow.evaluate.compare import compare_models
from cineflow.io import read_json, read_parquet, write_json
from cineflow.logs import to_log
from cineflow.provenance import provenance
from cineflow.tasks import Task

with to_log(snakemake.log[0]):
    models = snakemake.params.models
    tasks = {m: Task.from_dict(read_json(p)["task"]) for m, p in zip(models, snakemake.input.metrics)}
    oofs = {m: read_parquet(p) for m, p in zip(models, snakemake.input.oof)}
    cfg = EvalConfig.from_dict(snakemake.params.evaluate)
    result = compare_models(oofs, tasks, cfg.bootstrap, snakemake.params.seed, cfg.aggregate)
    write_json(snakemake.output[0], {**result, "provenance": provenance(snakemake.config)})
    for row in result["pairs"]:
        print(f"{row['models'][0]} - {row['models'][1]} {row['level']} {row['metric']} ({row['test']}): "
              f"{row['difference']:+.4f} p={row['p_value']:.4g}")
