"""`cineflow-predict`: the fold models of a finished run applied to new videos, outside Snakemake."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from cineflow.config import EvalConfig, GradcamConfig, schema_default, section
from cineflow.devices import job_device
from cineflow.data.labels import read_table
from cineflow.evaluate.predict import aggregate_predictions, find_videos, predict_new_videos
from cineflow.evaluate.summary import read_fold_files
from cineflow.io import frames_dir, read_json, sweep_temporaries, write_csv, write_parquet
from cineflow.seeding import seed_everything
from cineflow.tasks import Task


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="cineflow-predict", description=__doc__)
    p.add_argument("input", help="folder of videos/images/DICOM files, or a CSV/Parquet table with a path column")
    p.add_argument("--summary", required=True,
                   help="the model's summary.json of a finished run (results/<model>/summary.json): it lists the "
                        "fold models")
    p.add_argument("--out", required=True, help="predictions file, .csv or .parquet")
    p.add_argument("--gradcam", metavar="DIR", help="also write one Grad-CAM MP4 (PNG for images) per video here")
    # defaults: the schema's (evaluate.eval_clips, evaluate.mc_dropout, seed), as in a run's config.yaml
    p.add_argument("--eval-clips", default=str(schema_default("evaluate", "eval_clips")),
                   help='clips per video, or "all" (test-time augmentation); default: %(default)s')
    p.add_argument("--mc-dropout", type=int, default=schema_default("evaluate", "mc_dropout"),
                   help="MC dropout passes per clip (0 = off); default: %(default)s")
    p.add_argument("--seed", type=int, default=schema_default("seed"), help="default: %(default)s")
    p.add_argument("--aggregate-by", metavar="COLUMN",
                   help="also predict per patient or study: a column of the input table; its rows are written to "
                        "OUT's name with _by_COLUMN added")
    p.add_argument("--aggregate-how", choices=["mean", "median", "max"],
                   default=schema_default("evaluate", "aggregate", "how"),
                   help="how a unit's videos' scores combine; default: %(default)s")
    return p.parse_args(argv)


def unit_column(source: str, column: str) -> pd.Series:
    """Each input video's value of `column` of the input table, indexed by video_id (find_videos' ids)."""
    if Path(source).is_dir():
        raise SystemExit(f"--aggregate-by {column} needs a table of videos as input, not the folder {source}")
    table = read_table(source)
    if column not in table:
        raise SystemExit(f"{source} has no column '{column}' to aggregate by (columns: {list(table.columns)})")
    videos, _ = find_videos(source)
    return pd.Series(table[column].to_numpy(), index=videos["video_id"].to_numpy(), name=column)


def predict_main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    eval_clips = args.eval_clips if args.eval_clips == "all" else int(args.eval_clips)
    cfg = section(EvalConfig, "evaluate", eval_clips=eval_clips, mc_dropout=args.mc_dropout)
    gradcam = section(GradcamConfig, "gradcam") if args.gradcam else None
    if not Path(args.summary).is_file():
        raise SystemExit(f"{args.summary} not found; run the workflow first (snakemake results/<model>/summary.json)")
    models, metrics, references = read_fold_files(args.summary)
    seed_everything(args.seed, None, schema_default("deterministic"))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    for left in sweep_temporaries(out.parent):  # what a killed earlier run left
        print(f"removed {left}, left by a killed run", file=sys.stderr)
    with frames_dir(out.parent) as work, job_device() as device:
        table = predict_new_videos(args.input, models, [read_json(p) for p in metrics], cfg, work, device, args.seed,
                                   gradcam, args.gradcam, references)
    units = unit_column(args.input, args.aggregate_by) if args.aggregate_by else None
    (write_parquet if out.suffix == ".parquet" else write_csv)(out, table)
    if units is not None:
        by_unit = aggregate_predictions(Task.from_dict(read_json(metrics[0])["task"]), table, units, args.aggregate_how)
        unit_out = out.with_name(f"{out.stem}_by_{args.aggregate_by}{out.suffix}")
        (write_parquet if out.suffix == ".parquet" else write_csv)(unit_out, by_unit)
        print(f"{len(by_unit)} {args.aggregate_by} values predicted ({args.aggregate_how} of their videos) -> "
              f"{unit_out}", file=sys.stderr)
    bad = table[table["status"] != "ok"]
    print(f"{len(table) - len(bad)} videos predicted with {len(models)} fold models -> {out}", file=sys.stderr)
    for row in bad.itertuples(index=False):
        print(f"skipped {row.path}: {row.reason}", file=sys.stderr)
    if "in_distribution" in table:
        shifted = table[table["in_distribution"].eq(False)]
        for row in shifted.itertuples(index=False):
            print(f"WARNING {row.path} is unlike the training videos: {row.shift_reasons}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(predict_main())
