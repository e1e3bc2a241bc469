rule splits:
    input:
        manifest="results/manifest.parquet",
        code=code("splits"),
    output:
        expand("results/splits/fold_{fold}.csv", fold=FOLDS),
    log:
        "results/logs/splits.log",
    benchmark:
        "results/benchmarks/splits.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        splits=canonical(config["splits"]),
        seed=SEED,
    script:
        "../scripts/splits.py"


rule normalisation:
    input:
        split="results/splits/fold_{fold}.csv",
        manifest="results/manifest.parquet",
        code=code("normalisation"),
    output:
        "results/splits/fold_{fold}.norm.json",
    log:
        "results/logs/normalisation/fold_{fold}.log",
    benchmark:
        "results/benchmarks/normalisation/fold_{fold}.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        seed=SEED,
    script:
        "../scripts/normalisation.py"


use rule normalisation as normalisation_model with:
    input:
        split="results/splits/fold_{fold}.csv",
        manifest="results/cache/{cache}/manifest.parquet",
        code=code("normalisation"),
    output:
        "results/cache/{cache}/fold_{fold}.norm.json",
    log:
        "results/logs/normalisation/{cache}/fold_{fold}.log",
    benchmark:
        "results/benchmarks/normalisation/{cache}/fold_{fold}.tsv"
