"""Rule normalisation: per-channel mean/std of one fold's training videos."""

import pandas as pd

from cineflow.atomic import write_json
from cineflow.logs import to_log
from cineflow.normalisation import fold_normalisation
from cineflow.provenance import provenance

with to_log(snakemake.log[0]):
    stats = fold_normalisation(pd.read_csv(snakemake.input.split, keep_default_na=False),
                               pd.read_parquet(snakemake.input.manifest), snakemake.params.seed)
    print(stats)
    write_json(snakemake.output[0], dict(stats, provenance=provenance(snakemake.config)))
