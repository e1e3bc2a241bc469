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
    threads: config["resources"]["cache_threads"]
    resources:
        **cpu_job(),
        mem_mb=lambda wildcards, attempt: 2000 * attempt,
        runtime=60,
    params:
        videos=shard_rows,
        cache=canonical(cache_settings(config, None)),
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
        deidentification="results/deidentification.csv",
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


# a model of another size or colour (models.<name>.size, color): the same videos into a cache of its own
use rule cache_shard as cache_shard_model with:
    output:
        directory("results/cache/{cache}/shard_{shard}"),
    log:
        "results/logs/cache_shard/{cache}/{shard}.log",
    benchmark:
        "results/benchmarks/cache_shard/{cache}/{shard}.tsv"
    params:
        videos=shard_rows,
        cache=cache_params,
        root=DATA_ROOT,


use rule manifest as manifest_model with:
    input:
        shards=expand("results/cache/{{cache}}/shard_{shard}", shard=SHARDS),
        code=code("manifest"),
    output:
        manifest="results/cache/{cache}/manifest.parquet",
        quarantine="results/cache/{cache}/quarantine.csv",
        deidentification="results/cache/{cache}/deidentification.csv",
    log:
        "results/logs/manifest/{cache}.log",
    benchmark:
        "results/benchmarks/manifest/{cache}.tsv"
