# a trained model's inner fold (nested selection) is scored by its training job (rule train_inner)
ruleorder: train_inner > evaluate


rule evaluate:
    input:
        model="results/{model}/fold_{fold}/model.pt",
        split="results/splits/fold_{fold}.csv",
        manifest=manifest_of,
        code=code("evaluate"),
    output:
        metrics="results/{model}/fold_{fold}/metrics.json",
        predictions="results/{model}/fold_{fold}/predictions.csv",
        reference="results/{model}/fold_{fold}/shift_reference.npz",
    log:
        "results/logs/evaluate/{model}/fold_{fold}.log",
    benchmark:
        "results/benchmarks/evaluate/{model}/fold_{fold}.tsv"
    conda:
        ENV
    threads: 1
    resources:
        **gpu_job(),
        mem_mb=lambda wildcards, attempt: 3000 * attempt,
        runtime=30,
    params:
        evaluate=evaluate_params,
        seed=SEED,
    script:
        "../scripts/evaluate.py"


rule summarize:
    input:
        metrics=expand("results/{{model}}/fold_{fold}/metrics.json", fold=FOLDS),
        predictions=expand("results/{{model}}/fold_{fold}/predictions.csv", fold=FOLDS),
        # listed in summary.json, so that `cineflow-predict --summary` finds the fold models
        models=expand("results/{{model}}/fold_{fold}/model.pt", fold=FOLDS),
        references=expand(
            "results/{{model}}/fold_{fold}/shift_reference.npz", fold=FOLDS
        ),
        code=code("summarize"),
    output:
        summary=report(
            "results/{model}/summary.json",
            caption="../report/metrics.rst",
            category="Metrics",
            subcategory="{model}",
        ),
        oof="results/{model}/oof_predictions.parquet",
    log:
        "results/logs/summarize/{model}.log",
    benchmark:
        "results/benchmarks/summarize/{model}.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=15,
    params:
        evaluate=canonical(config["evaluate"]),
        seed=SEED,
    script:
        "../scripts/summarize.py"
