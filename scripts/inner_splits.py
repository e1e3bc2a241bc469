"""Rule inner_splits: the inner folds of one outer fold for nested selection (sweep.inner_folds)."""

from cineflow.config import SplitConfig
from cineflow.data.splits import inner_seed, inner_splits, parse_fold
from cineflow.io import read_csv, read_parquet, write_csv
from cineflow.logs import to_log

with to_log(snakemake.log[0]):
    _, outer = parse_fold(snakemake.wildcards.outer)
    cfg = SplitConfig.from_dict({**snakemake.params.splits, "repeats": 1})
    folds = inner_splits(read_csv(snakemake.input.split), read_parquet(snakemake.input.manifest), cfg,
                         snakemake.params.inner_folds, inner_seed(snakemake.params.seed, outer))
    for path, table in zip(snakemake.output, folds):
        write_csv(path, table)
        print(path, table["partition"].value_counts().to_dict())
