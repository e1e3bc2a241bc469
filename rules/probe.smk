rule embed:
    input:
        manifest=encoder_manifest,
        code=code("embed"),
    output:
        embeddings="results/embeddings/{encoder}/embeddings.npz",
        weights="results/embeddings/{encoder}/encoder.pt",
    log:
        "results/logs/embed/{encoder}.log",
    benchmark:
        "results/benchmarks/embed/{encoder}.tsv"
    wildcard_constraints:
        encoder="|".join(ENCODERS) or "(?!)",
    conda:
        ENV
    threads: 2
    resources:
        **gpu_job(),
        mem_mb=lambda wildcards, attempt: config["resources"]["train_mem_mb"] * attempt,
        runtime=config["resources"]["train_runtime"],
    params:
        encoder=lambda wildcards: canonical(config["encoders"][wildcards.encoder]),
        clips=config["evaluate"]["eval_clips"],
        block=config["evaluate"]["block"],
        seed=SEED,
    script:
        "../scripts/embed.py"


rule probe:
    input:
        unpack(probe_inputs),
        code=code("probe"),
    output:
        **training_cams_output(),
        model="results/{model}/fold_{fold}/model.pt",
        last="results/{model}/fold_{fold}/last.pt",
        history="results/{model}/fold_{fold}/history.csv",
    log:
        "results/logs/probe/{model}/fold_{fold}.log",
    benchmark:
        "results/benchmarks/probe/{model}/fold_{fold}.tsv"
    wildcard_constraints:
        model="|".join(PROBES) or "(?!)",
        fold=r"\d+(_r\d+)?(i\d+)?",
    conda:
        ENV
    threads: 1
    resources:
        **cpu_job(),
        mem_mb=lambda wildcards, attempt: 2000 * attempt,
        runtime=30,
    params:
        model=lambda wildcards: canonical(config["models"][wildcards.model]),
        classes=CLASSES,
        seed=SEED,
    script:
        "../scripts/probe.py"
