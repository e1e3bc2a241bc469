if LAYOUT == "demo":

    rule demo_data:
        output:
            labels=LABELS,
            videos=[f"{DATA_ROOT}/{p}" for p in samples()["path"]],
        log:
            "results/logs/demo_data.log",
        benchmark:
            "results/benchmarks/demo_data.tsv"
        conda:
            ENV
        threads: 1
        resources:
            mem_mb=1000,
            runtime=20,
        params:
            demo=canonical(config["demo"]),
            seed=SEED,
            classes=CLASSES,
            root=lambda wildcards, output: os.path.dirname(output.labels),
        script:
            "../scripts/demo_data.py"
