rule predict:
    input:
        videos=predict_input,
        models=expand("results/{{model}}/fold_{fold}/model.pt", fold=FOLDS),
        metrics=expand("results/{{model}}/fold_{fold}/metrics.json", fold=FOLDS),
        references=expand(
            "results/{{model}}/fold_{fold}/shift_reference.npz", fold=FOLDS
        ),
        code=code("predict"),
    output:
        predictions="results/predict/{model}/predictions.csv",
        gradcam=directory("results/predict/{model}/gradcam"),
    log:
        "results/logs/predict/{model}.log",
    benchmark:
        "results/benchmarks/predict/{model}.tsv"
    conda:
        ENV
    threads: 1
    resources:
        **gpu_job(),
        mem_mb=lambda wildcards, attempt: 4000 * attempt,
        runtime=60,
    params:
        predict=canonical(config["predict"]),
        evaluate=canonical(config["evaluate"]),
        gradcam=canonical(config["gradcam"]),
        seed=SEED,
    script:
        "../scripts/predict.py"
