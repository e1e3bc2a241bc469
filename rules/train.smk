rule train:
    input:
        unpack(model_inputs),
        code=code("train"),
    output:
        **training_cams_output(),
        model="results/{model}/fold_{fold}/model.pt",
        last="results/{model}/fold_{fold}/last.pt",
        history="results/{model}/fold_{fold}/history.csv",
    log:
        "results/logs/train/{model}/fold_{fold}.log",
    benchmark:
        "results/benchmarks/train/{model}/fold_{fold}.tsv"
    wildcard_constraints:
        model="|".join(TRAINED) or "(?!)",
        fold=r"\d+(_r\d+)?",
    conda:
        ENV
    threads: TRAIN_THREADS
    resources:
        **gpu_job(
            cpus=TRAIN_THREADS,
            gpus=lambda wildcards: config["models"][wildcards.model]["gpus"],
        ),
        mem_mb=lambda wildcards, attempt: config["resources"]["train_mem_mb"] * attempt,
        runtime=config["resources"]["train_runtime"],
    params:
        model=lambda wildcards: canonical(config["models"][wildcards.model]),
        classes=CLASSES,
        seed=SEED,
        # resumable state: not an output, so Snakemake keeps it when it reruns a killed job
        state="results/.resume/{model}/fold_{fold}/state.pt",
        # tracking and resources are not params: switching tracking on or off, or changing the loader
        # workers, does not retrain
        tracking="results/tracking",
        # the arguments of a fold trained by several processes (models.<name>.gpus > 1)
        job="results/.resume/{model}/fold_{fold}/job.json",
    script:
        "../scripts/train.py"


# an inner fold of nested selection (sweep:): scripts/train.py trains it, then runs scripts/score_inner.py, which
# scores its held-out part as rule evaluate scores a fold; that score is all nested selection reads, and one job
# instead of two saves a job start per inner fold
use rule train as train_inner with:
    input:
        unpack(model_inputs),
        # the training's code and the scoring's
        code=code("train"),
        scoring_code=code("score_inner"),
    output:
        **training_cams_output(),
        model="results/{model}/fold_{fold}/model.pt",
        last="results/{model}/fold_{fold}/last.pt",
        history="results/{model}/fold_{fold}/history.csv",
        metrics="results/{model}/fold_{fold}/metrics.json",
        predictions="results/{model}/fold_{fold}/predictions.csv",
    wildcard_constraints:
        model="|".join(TRAINED) or "(?!)",
        fold=r"\d+(_r\d+)?i\d+",
    params:
        evaluate=evaluate_params,
