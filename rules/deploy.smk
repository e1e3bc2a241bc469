# a model's portable bundle (fold models, ONNX, the preprocessing contract, thresholds, calibrations, shift
# references, model card, SHA-256 manifest) for `cineflow-predict --bundle`: rebuilt when one of these changes
rule bundle:
    input:
        models=expand("results/{{model}}/fold_{fold}/model.pt", fold=FOLDS),
        metrics=expand("results/{{model}}/fold_{fold}/metrics.json", fold=FOLDS),
        references=expand(
            "results/{{model}}/fold_{fold}/shift_reference.npz", fold=FOLDS
        ),
        summary="results/{model}/summary.json",
        card="results/{model}/model_card.md",
        code=code("bundle"),
    output:
        directory("results/{model}/bundle"),
    log:
        "results/logs/bundle/{model}.log",
    benchmark:
        "results/benchmarks/bundle/{model}.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=lambda wildcards, attempt: 4000 * attempt,
        runtime=30,
    params:
        # how prediction reads a video; the rest of evaluate: leaves the bundle as it is
        evaluate={k: config["evaluate"][k] for k in ("eval_clips", "block")},
        onnx=config["deploy"]["onnx"],
        program=config["deploy"]["program"],
    script:
        "../scripts/bundle.py"
