"""Rule probe: a probe model's head fitted on one fold from its encoder's stored embeddings (seconds, on a CPU)."""

from dataclasses import asdict
from pathlib import Path

import torch

from cineflow.config import ModelConfig
from cineflow.io import read_csv, read_parquet
from cineflow.logs import to_log
from cineflow.provenance import provenance
from cineflow.seeding import seed_everything
from cineflow.train.fold import FoldPaths
from cineflow.train.probe import fit_probe

with to_log(snakemake.log[0]):
    seed_everything(snakemake.params.seed, snakemake.threads, snakemake.config["deterministic"])
    cams = getattr(snakemake.output, "cams", None)
    if cams:  # a probe draws no CAMs while it trains; its folder is declared for every model and stays empty
        Path(cams).mkdir(parents=True, exist_ok=True)
    paths = FoldPaths(model=snakemake.output.model, last=snakemake.output.last, history=snakemake.output.history,
                      state="", cams=cams)
    history = fit_probe(ModelConfig.from_dict(snakemake.params.model), snakemake.params.classes,
                        read_csv(snakemake.input.split), read_parquet(snakemake.input.manifest),
                        snakemake.input.embeddings, snakemake.input.encoder, paths, snakemake.params.seed,
                        provenance(snakemake.config, torch.device("cpu")))
    print(history.drop(columns=["train_loss", "lr"]).to_dict("records")[0])
    print(f"fold paths: {asdict(paths)}")
