rule plots:
    input:
        summary="results/{model}/summary.json",
        oof="results/{model}/oof_predictions.parquet",
        metrics=expand("results/{{model}}/fold_{fold}/metrics.json", fold=FOLDS),
        histories=expand("results/{{model}}/fold_{fold}/history.csv", fold=FOLDS),
        code=code("plots"),
    output:
        report(
            directory("results/{model}/plots"),
            patterns=["{name}.png"],
            caption="../report/plots.rst",
            category="Figures",
            subcategory="{model}",
        ),
    log:
        "results/logs/plots/{model}.log",
    benchmark:
        "results/benchmarks/plots/{model}.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../scripts/plots.py"


rule report:
    input:
        unpack(report_inputs),
        splits=expand("results/splits/fold_{fold}.csv", fold=FOLDS),
        manifest="results/manifest.parquet",
        quarantine="results/quarantine.csv",
        deidentification="results/deidentification.csv",
        comparison="results/comparison.json",
        sweeps=expand("results/sweeps/{base}.json", base=SWEEPS),
        code=code("report"),
    output:
        report(
            "results/report.html",
            caption="../report/report.rst",
            category="Report",
        ),
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
        benchmarks="results/benchmarks",
        models=MODELS,
        title=config["report"]["title"],
    script:
        "../scripts/report.py"
