"""Rule splits: one CSV per fold (train/val/test by group)."""

from cineflow.config import SplitConfig
from cineflow.data.splits import make_splits
from cineflow.io import read_parquet, write_csv
from cineflow.logs import to_log

with to_log(snakemake.log[0]):
    folds = make_splits(read_parquet(snakemake.input.manifest), SplitConfig.from_dict(snakemake.params.splits),
                        snakemake.params.seed)
    for path, table in zip(snakemake.output, folds):
        write_csv(path, table)
        print(path, table["partition"].value_counts().to_dict())
