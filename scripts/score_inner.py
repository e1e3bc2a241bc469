"""Rule train_inner's second half: after scripts/train.py has trained an inner fold of nested selection (and run
this file with its `snakemake`), score the fold's held-out part as rule evaluate scores a fold (`fold_record`, the
same seed and threads): nested selection reads nothing else of an inner fold."""

from cineflow.config import EvalConfig
from cineflow.devices import job_device
from cineflow.evaluate.fold import fold_record
from cineflow.io import read_csv, read_parquet, write_csv, write_json
from cineflow.logs import to_log
from cineflow.provenance import provenance
from cineflow.seeding import seed_everything

with to_log(snakemake.log[0], mode="a"), job_device() as device:
    # one thread, as the evaluate rule has: the record that rule would write
    seed_everything(snakemake.params.seed, 1, snakemake.config["deterministic"])
    metrics, predictions = fold_record(
        snakemake.output.model, read_csv(snakemake.input.split), read_parquet(snakemake.input.manifest),
        EvalConfig.from_dict(snakemake.params.evaluate), device, seed=snakemake.params.seed,
        names=(snakemake.wildcards.model, snakemake.wildcards.fold), provenance=provenance(snakemake.config, device))
    write_csv(snakemake.output.predictions, predictions)
    write_json(snakemake.output.metrics, metrics)
    print(f"held-out part of inner fold {snakemake.wildcards.fold}: {metrics['metrics']}")
