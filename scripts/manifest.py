"""Rule manifest: join labels with the cache shards; list what was quarantined."""

from pathlib import Path

import pandas as pd

from cineflow.data.manifest import build_manifest, deidentification_audit
from cineflow.io import read_parquet, write_csv, write_parquet
from cineflow.logs import to_log

with to_log(snakemake.log[0]):
    labels = pd.DataFrame(snakemake.params.labels)  # checked at parse time (rules/common.smk)
    shards = [read_parquet(Path(d) / "shard.parquet") for d in snakemake.input.shards]
    manifest, quarantine = build_manifest(labels, shards)
    print(f"{len(manifest)} usable videos, {len(quarantine)} quarantined")
    print(quarantine.to_string())
    if snakemake.params.strict and len(quarantine):
        raise SystemExit(f"data.strict is on and {len(quarantine)} input(s) are unusable: "
                         + "; ".join(f"{r.source}: {r.reason}" for r in quarantine.itertuples()))
    write_parquet(snakemake.output.manifest, manifest)
    write_csv(snakemake.output.quarantine, quarantine)
    audit = deidentification_audit(shards)
    print(f"de-identification: {len(audit)} file(s) audited" if len(audit) else "de-identification: off")
    write_csv(snakemake.output.deidentification, audit)
