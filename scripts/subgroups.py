"""Rule subgroups: a model's headline metrics with patient-level CIs within each value of data.subgroups."""

import pandas as pd

from cineflow.config import EvalConfig
from cineflow.evaluate.subgroups import subgroup_metrics
from cineflow.io import read_json, read_parquet, write_json
from cineflow.logs import to_log
from cineflow.provenance import provenance
from cineflow.tasks import Task

with to_log(snakemake.log[0]):
    task = Task.from_dict(read_json(snakemake.input.metrics[0])["task"])
    attributes = pd.DataFrame(snakemake.params.attributes, columns=["video_id", *snakemake.params.subgroups])
    result = subgroup_metrics(task, read_parquet(snakemake.input.oof), attributes,
                              snakemake.params.subgroups, EvalConfig.from_dict(snakemake.params.evaluate),
                              snakemake.params.seed)
    write_json(snakemake.output[0], {"model": snakemake.wildcards.model, **result,
                                     "provenance": provenance(snakemake.config)})
    print({column: len(values) for column, values in result["subgroups"].items()})
