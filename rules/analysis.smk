# what a reviewer asks next: paired model comparison, subgroups, a model card per model


rule compare:
    input:
        oof=expand("results/{model}/oof_predictions.parquet", model=MODELS),
        metrics=expand(
            "results/{model}/fold_{fold}/metrics.json", model=MODELS, fold=FOLDS[:1]
        ),
        code=code("compare"),
    output:
        "results/comparison.json",
    log:
        "results/logs/compare.log",
    benchmark:
        "results/benchmarks/compare.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=15,
    params:
        models=MODELS,
        evaluate=canonical(config["evaluate"]),
        seed=SEED,
    script:
        "../scripts/compare.py"


rule subgroups:
    input:
        oof="results/{model}/oof_predictions.parquet",
        metrics=expand("results/{{model}}/fold_{fold}/metrics.json", fold=FOLDS[:1]),
        code=code("subgroups"),
    output:
        "results/{model}/subgroups.json",
    log:
        "results/logs/subgroups/{model}.log",
    benchmark:
        "results/benchmarks/subgroups/{model}.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=15,
    params:
        subgroups=config["data"]["subgroups"],
        attributes=subgroup_records,
        evaluate=canonical(config["evaluate"]),
        seed=SEED,
    script:
        "../scripts/subgroups.py"


# nested selection of one sweep (sweep.grids): its settings' inner folds choose, their outer folds score
rule nested:
    input:
        inner=lambda wildcards: expand(
            "results/{model}/fold_{fold}/metrics.json",
            model=SWEEPS[wildcards.base],
            fold=INNER_FOLDS,
        ),
        outer=lambda wildcards: expand(
            "results/{model}/fold_{fold}/metrics.json",
            model=SWEEPS[wildcards.base],
            fold=FIRST_REPEAT,
        ),
        code=code("nested"),
    output:
        "results/sweeps/{base}.json",
    log:
        "results/logs/nested/{base}.log",
    benchmark:
        "results/benchmarks/nested/{base}.tsv"
    wildcard_constraints:
        base="|".join(SWEEPS) or "(?!)",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        settings=lambda wildcards: SWEEPS[wildcards.base],
        metric=config["sweep"]["metric"],
    script:
        "../scripts/nested.py"


rule model_card:
    input:
        summary="results/{model}/summary.json",
        subgroups="results/{model}/subgroups.json",
        metrics=expand("results/{{model}}/fold_{fold}/metrics.json", fold=FOLDS),
        external=expand("results/external/{name}/{{model}}/metrics.json", name=EXTERNAL),
        manifest=manifest_of,
        code=code("model_card"),
    output:
        "results/{model}/model_card.md",
    log:
        "results/logs/model_card/{model}.log",
    benchmark:
        "results/benchmarks/model_card/{model}.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        model=lambda wildcards: canonical(config["models"][wildcards.model]),
        data=canonical(config["data"]),
        splits=canonical(config["splits"]),
    script:
        "../scripts/model_card.py"
