"""Rule normalisation: per-channel mean/std of one fold's training videos."""

from cineflow.data.normalisation import fold_normalisation
from cineflow.io import read_csv, read_parquet, write_json
from cineflow.logs import to_log
from cineflow.provenance import provenance

with to_log(snakemake.log[0]):
    stats = fold_normalisation(read_csv(snakemake.input.split), read_parquet(snakemake.input.manifest),
                               snakemake.params.seed)
    print(stats)
    write_json(snakemake.output[0], dict(stats, provenance=provenance(snakemake.config)))
