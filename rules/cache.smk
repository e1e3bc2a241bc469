rule cache_shard:
    input:
        videos=shard_videos,
        code=code("cache_shard"),
    output:
        directory("results/cache/shard_{shard}"),
    log:
        "results/logs/cache_shard/{shard}.log",
    benchmark:
        "results/benchmarks/cache_shard/{shard}.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=lambda wildcards, attempt: 2000 * attempt,
        runtime=60,
    params:
        videos=shard_rows,
        cache=canonical(config["cache"]),
        root=DATA_ROOT,
    script:
        "../scripts/cache_shard.py"


rule manifest:
    input:
        shards=expand("results/cache/shard_{shard}", shard=SHARDS),
        code=code("manifest"),
    output:
        manifest="results/manifest.parquet",
        quarantine="results/quarantine.csv",
    log:
        "results/logs/manifest.log",
    benchmark:
        "results/benchmarks/manifest.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        labels=labels_records,
        strict=config["data"]["strict"],
    script:
        "../scripts/manifest.py"
