"""Rule cache_shard: decode one shard's videos into the frame cache."""

from pathlib import Path

import pandas as pd

from cineflow.config import CacheConfig
from cineflow.data.cache import cache_shard, leave_out, listed_in
from cineflow.io import write_parquet
from cineflow.logs import to_log

with to_log(snakemake.log[0]):
    out = Path(snakemake.output[0])
    table = cache_shard(pd.DataFrame(snakemake.params.videos),
                        snakemake.params.root, out, CacheConfig.from_dict(snakemake.params.cache),
                        leave_out(listed_in(snakemake.config["data"]["layout"])), threads=snakemake.threads)
    write_parquet(out / "shard.parquet", table)
    print(table[["video_id", "status", "reason", "n_frames"]].to_string())
