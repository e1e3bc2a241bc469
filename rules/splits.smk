rule splits:
    input:
        manifest="results/manifest.parquet",
        code=code("splits"),
    output:
        expand("results/splits/fold_{fold}.csv", fold=FIRST_REPEAT),
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
        splits=SPLIT_PARAMS,
        seed=SEED,
        repeat=0,
    script:
        "../scripts/splits.py"


# repeat r > 0 of a repeated cross-validation (splits.repeats), with a seed derived from (seed, r)
use rule splits as splits_repeat with:
    output:
        expand(
            "results/splits/fold_{fold}_r{{repeat}}.csv",
            fold=range(FOLDS_PER_REPEAT),
        ),
    log:
        "results/logs/splits/repeat_{repeat}.log",
    benchmark:
        "results/benchmarks/splits/repeat_{repeat}.tsv"
    wildcard_constraints:
        repeat=r"[1-9]\d*",
    params:
        splits=SPLIT_PARAMS,
        seed=SEED,
        repeat=lambda wildcards: int(wildcards.repeat),


# the inner folds of an outer fold of repeat 0, for nested selection (sweep.grids, sweep.inner_folds)
rule inner_splits:
    input:
        split="results/splits/fold_{outer}.csv",
        manifest="results/manifest.parquet",
        code=code("inner_splits"),
    output:
        expand(
            "results/splits/fold_{{outer}}i{inner}.csv",
            inner=range(config["sweep"]["inner_folds"]),
        ),
    log:
        "results/logs/splits/inner_{outer}.log",
    benchmark:
        "results/benchmarks/splits/inner_{outer}.tsv"
    wildcard_constraints:
        outer=r"\d+",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        splits=SPLIT_PARAMS,
        seed=SEED,
        inner_folds=config["sweep"]["inner_folds"],
    script:
        "../scripts/inner_splits.py"


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
        **cpu_job(),
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
