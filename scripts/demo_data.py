"""Rule demo_data: write the synthetic echo dataset."""

from cineflow.config import DemoConfig
from cineflow.data.demo import write_dataset
from cineflow.logs import to_log

with to_log(snakemake.log[0]):
    table = write_dataset(DemoConfig.from_dict(snakemake.params.demo), snakemake.params.seed,
                          snakemake.params.classes, snakemake.params.root)
    print(f"wrote {len(table)} videos to {snakemake.params.root}")
