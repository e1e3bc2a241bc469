rule gradcam:
    input:
        model="results/{model}/fold_{fold}/model.pt",
        metrics="results/{model}/fold_{fold}/metrics.json",
        predictions="results/{model}/fold_{fold}/predictions.csv",
        manifest=manifest_of,
        code=code("gradcam"),
    output:
        report(
            directory("results/{model}/fold_{fold}/gradcam"),
            patterns=["{name}.mp4", "{name}.png"],
            caption="../report/gradcam.rst",
            category="Grad-CAM",
            subcategory="{model}",
        ),
    log:
        "results/logs/gradcam/{model}/fold_{fold}.log",
    benchmark:
        "results/benchmarks/gradcam/{model}/fold_{fold}.tsv"
    conda:
        ENV
    threads: 1
    resources:
        **gpu_job(),
        mem_mb=lambda wildcards, attempt: 3000 * attempt,
        runtime=30,
    params:
        gradcam=canonical(config["gradcam"]),
        seed=SEED,
    script:
        "../scripts/gradcam.py"
