# cineflow: raw videos + labels -> frame cache -> CV splits -> per-fold models -> metrics, Grad-CAM -> report.
import sys
from pathlib import Path

from snakemake.utils import min_version, validate

min_version("8.20")

# the library of this checkout (src/) when there is one, else the installed package (pip install cineflow)
sys.path.insert(0, str(Path(workflow.basedir) / "src"))

from cineflow.config import SCHEMA_PATH, load_schema, typed_scalars


configfile: "config.yaml"


# the schema is package data: the library and `cineflow-predict` read the same file
SCHEMA = str(SCHEMA_PATH)


# --config reads nested values as strings ('true', '8'): those the schema wants typed are parsed first
typed_scalars(config, load_schema(SCHEMA))
validate(config, SCHEMA)


report: "report/workflow.rst"


# used only with --sdm conda apptainer: each rule's conda env (envs/) is built inside this image
container: "docker://condaforge/miniforge3:24.3.0-0"


include: "rules/common.smk"
include: "rules/demo.smk"
include: "rules/cache.smk"
include: "rules/splits.smk"
include: "rules/train.smk"
include: "rules/probe.smk"
include: "rules/evaluate.smk"
include: "rules/gradcam.smk"
include: "rules/external.smk"
include: "rules/analysis.smk"
include: "rules/report.smk"
include: "rules/predict.smk"
include: "rules/deploy.smk"


# a killed run (SIGKILL, a lost node) cleans nothing up: its temporaries go before anything else runs, while
# this Snakemake holds the lock on results/
onstart:
    for left in sweep_temporaries("results", everything=True):
        print(f"removed {left}: a temporary file of a killed run", file=sys.stderr)


# light bookkeeping runs on the submitting host under --profile slurm, not as cluster jobs
localrules:
    all,
    demo_data,
    manifest,
    manifest_model,
    splits,
    splits_repeat,
    inner_splits,
    summarize,
    plots,
    report,
    compare,
    subgroups,
    model_card,
    nested,


rule all:
    default_target: True
    input:
        "results/report.html",
