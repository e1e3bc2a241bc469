# cineflow: raw videos + labels -> frame cache -> CV splits -> per-fold models -> metrics, Grad-CAM -> report.
from snakemake.utils import min_version, validate

min_version("8.20")


configfile: "config.yaml"


validate(config, "schemas/config.schema.yaml")


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/demo.smk"
include: "rules/cache.smk"
include: "rules/splits.smk"
include: "rules/train.smk"
include: "rules/evaluate.smk"
include: "rules/gradcam.smk"
include: "rules/report.smk"
include: "rules/predict.smk"


rule all:
    default_target: True
    input:
        "results/report.html",
