"""Rule splits: one CSV per fold of one repeat (train/val/test by group)."""

from cineflow.config import SplitConfig
from cineflow.data.splits import make_splits, repeat_seed
from cineflow.io import read_parquet, write_csv
from cineflow.logs import to_log

with to_log(snakemake.log[0]):
    repeat = int(snakemake.params.repeat)
    folds = make_splits(read_parquet(snakemake.input.manifest),
                        SplitConfig.from_dict({**snakemake.params.splits, "repeats": 1}),
                        repeat_seed(snakemake.params.seed, repeat))
    for path, table in zip(snakemake.output, folds):
        write_csv(path, table)
        print(path, table["partition"].value_counts().to_dict())
