# external validation: each model's frozen fold ensemble on each set of `external:` (never an input upstream)


for _name, (_data, _demo, _seed) in EXTERNAL_DEMOS.items():

    rule:
        name:
            f"external_demo_data_{_name}"
        output:
            labels=f"{_data.root}/labels.csv",
            videos=[
                f"{_data.root}/{p}" for p in plan(_demo, _seed, _data.classes)["path"]
            ],
        log:
            f"results/logs/external_demo_data/{_name}.log",
        benchmark:
            f"results/benchmarks/external_demo_data/{_name}.tsv"
        localrule: True
        conda:
            ENV
        threads: 1
        resources:
            mem_mb=1000,
            runtime=20,
        params:
            demo=canonical(asdict(_demo)),
            seed=_seed,
            classes=_data.classes,
            root=lambda wildcards, output: os.path.dirname(output.labels),
        script:
            "../scripts/demo_data.py"


rule external:
    input:
        unpack(external_inputs),
        models=expand("results/{{model}}/fold_{fold}/model.pt", fold=FOLDS),
        metrics=expand("results/{{model}}/fold_{fold}/metrics.json", fold=FOLDS),
        references=expand(
            "results/{{model}}/fold_{fold}/shift_reference.npz", fold=FOLDS
        ),
        manifest=manifest_of,
        code=code("external"),
    output:
        predictions="results/external/{name}/{model}/predictions.csv",
        metrics="results/external/{name}/{model}/metrics.json",
        plots=directory("results/external/{name}/{model}/plots"),
    log:
        "results/logs/external/{name}/{model}.log",
    benchmark:
        "results/benchmarks/external/{name}/{model}.tsv"
    wildcard_constraints:
        name="|".join(EXTERNAL) or "(?!)",
        model="|".join(MODELS),
    conda:
        ENV
    threads: 1
    resources:
        **gpu_job(),
        mem_mb=lambda wildcards, attempt: 4000 * attempt,
        runtime=60,
    params:
        external=lambda wildcards: canonical(config["external"][wildcards.name]),
        evaluate=canonical(config["evaluate"]),
        seed=SEED,
    script:
        "../scripts/external.py"
