rule report:
    input:
        summaries=expand("results/{model}/summary.json", model=MODELS),
        metrics=fold_outputs("results/{model}/fold_{fold}/metrics.json"),
        predictions=fold_outputs("results/{model}/fold_{fold}/predictions.csv"),
        histories=fold_outputs("results/{model}/fold_{fold}/history.csv"),
        gradcam=fold_outputs("results/{model}/fold_{fold}/gradcam"),
        splits=expand("results/splits/fold_{fold}.csv", fold=FOLDS),
        manifest="results/manifest.parquet",
        quarantine="results/quarantine.csv",
        code=code("report"),
    output:
        "results/report.html",
    log:
        "results/logs/report.log",
    benchmark:
        "results/benchmarks/report.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        results=lambda wildcards, output: os.path.dirname(output[0]),
        benchmarks="results/benchmarks",
        models=MODELS,
        folds=FOLDS,
        title=config["report"]["title"],
    script:
        "../scripts/report.py"
