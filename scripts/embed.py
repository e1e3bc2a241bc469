"""Rule embed: a frozen encoder's embedding of every cached video, once for all its probes."""

from cineflow.config import ModelConfig
from cineflow.devices import job_device
from cineflow.io import read_parquet
from cineflow.logs import to_log
from cineflow.seeding import seed_everything
from cineflow.train.probe import embed_encoder

with to_log(snakemake.log[0]), job_device() as device:
    seed_everything(snakemake.params.seed, snakemake.threads, snakemake.config["deterministic"])
    embeddings = embed_encoder(ModelConfig.from_dict(snakemake.params.encoder), read_parquet(snakemake.input.manifest),
                               snakemake.params.clips, device, snakemake.params.block, snakemake.params.seed,
                               snakemake.output.embeddings, snakemake.output.weights)
    print(f"{snakemake.wildcards.encoder}: {embeddings.shape[0]} videos, {embeddings.shape[1]}-d embeddings on {device}")
