"""Rule model_card: results/<model>/model_card.md (Mitchell et al. 2019) from the model's result files."""

from cineflow.io import read_json, read_parquet, write_text
from cineflow.logs import to_log
from cineflow.report.model_card import model_card

with to_log(snakemake.log[0]):
    text = model_card(snakemake.wildcards.model, snakemake.params.model, read_json(snakemake.input.summary),
                      [read_json(p) for p in snakemake.input.metrics], read_json(snakemake.input.subgroups),
                      [read_json(p) for p in snakemake.input.external], read_parquet(snakemake.input.manifest),
                      snakemake.params.data, snakemake.params.splits)
    write_text(snakemake.output[0], text)
    print(text)
