"""Rule bundle: one model's portable bundle (deploy.bundle), for `cineflow-predict --bundle`."""

from cineflow.deploy.bundle import build_bundle
from cineflow.logs import to_log

with to_log(snakemake.log[0]):
    manifest = build_bundle(snakemake.wildcards.model, snakemake.input.models, snakemake.input.metrics,
                            snakemake.input.references, snakemake.input.summary, snakemake.input.card,
                            snakemake.params.evaluate, snakemake.output[0], onnx=snakemake.params.onnx,
                            program=snakemake.params.program)
    print(f"{len(manifest['files'])} files in {snakemake.output[0]}")
    for kind, folds in manifest["skipped"].items():
        for fold, reason in folds.items():
            print(f"fold {fold}: no {kind} export ({reason}); the checkpoint serves it")
