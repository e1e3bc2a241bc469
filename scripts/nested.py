"""Rule nested: the nested selection of one sweep from its settings' inner and outer fold metrics."""

from cineflow.evaluate.nested import sweep_selection
from cineflow.io import read_json, write_json
from cineflow.logs import to_log
from cineflow.provenance import provenance

with to_log(snakemake.log[0]):
    result = sweep_selection(snakemake.params.settings, [read_json(p) for p in snakemake.input.inner],
                             [read_json(p) for p in snakemake.input.outer], snakemake.params.metric)
    write_json(snakemake.output[0], {"sweep": snakemake.wildcards.base, **result,
                                     "provenance": provenance(snakemake.config)})
    for fold in result["per_fold"]:
        print(f"outer fold {fold['fold']}: {fold['chosen']} (inner {fold['inner_best']:.4f}, "
              f"outer {fold['outer']:.4f})")
    print(f"nested {result['nested_estimate']:.4f}, naive {result['naive_estimate']:.4f}, choice {result['choice']}")
