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
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--summary",
                        help="the model's summary.json of a finished run (results/<model>/summary.json): it lists "
                             "the fold models")
    source.add_argument("--bundle", metavar="DIR",
                        help="a model bundle (results/<model>/bundle, copied anywhere): no results/ or config needed; "
                             "its checksums are verified first, and its evaluation settings are used")
    p.add_argument("--runtime", choices=["torch", "onnx"], default="torch",
                   help="with --bundle: torch (the checkpoints) or onnx (ONNX Runtime on the CPU: scores only); "
                        "default: %(default)s")
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


def bundle_predictions(args: argparse.Namespace) -> tuple[pd.DataFrame, Task]:
    """The predictions of `--bundle`, verified first: a changed or incomplete bundle stops with the file named."""
    from cineflow.deploy.bundle import BundleError, open_bundle, predict_with_bundle

    try:
        bundle = open_bundle(args.bundle)
        print(f"bundle {args.bundle} verified (manifest SHA-256 {bundle.digest})", file=sys.stderr)
        for name in bundle.ignored:
            print(f"WARNING {name} is in the bundle folder but not in its manifest: not read", file=sys.stderr)
        with frames_dir(Path(args.out).parent) as work, job_device() as device:
            table = predict_with_bundle(bundle, args.input, work, device, args.runtime, args.seed, args.mc_dropout,
                                        args.gradcam)
    except BundleError as error:
        raise SystemExit(f"cineflow-predict: {error}") from None
    return table, Task.from_dict(bundle.metrics[0]["task"])


def predict_main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    eval_clips = args.eval_clips if args.eval_clips == "all" else int(args.eval_clips)
    cfg = section(EvalConfig, "evaluate", eval_clips=eval_clips, mc_dropout=args.mc_dropout)
    gradcam = section(GradcamConfig, "gradcam") if args.gradcam else None
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    for left in sweep_temporaries(out.parent):  # what a killed earlier run left
        print(f"removed {left}, left by a killed run", file=sys.stderr)
    seed_everything(args.seed, None, schema_default("deterministic"))
    if args.bundle:
        table, task = bundle_predictions(args)
    else:
        if not Path(args.summary).is_file():
            raise SystemExit(f"{args.summary} not found; run the workflow first "
                             f"(snakemake results/<model>/summary.json)")
        models, metrics, references = read_fold_files(args.summary)
        with frames_dir(out.parent) as work, job_device() as device:
            table = predict_new_videos(args.input, models, [read_json(p) for p in metrics], cfg, work, device,
                                       args.seed, gradcam, args.gradcam, references)
        task = Task.from_dict(read_json(metrics[0])["task"])
    units = unit_column(args.input, args.aggregate_by) if args.aggregate_by else None
    (write_parquet if out.suffix == ".parquet" else write_csv)(out, table)
    if units is not None:
        by_unit = aggregate_predictions(task, table, units, args.aggregate_how)
        unit_out = out.with_name(f"{out.stem}_by_{args.aggregate_by}{out.suffix}")
        (write_parquet if out.suffix == ".parquet" else write_csv)(unit_out, by_unit)
        print(f"{len(by_unit)} {args.aggregate_by} values predicted ({args.aggregate_how} of their videos) -> "
              f"{unit_out}", file=sys.stderr)
    bad = table[table["status"] != "ok"]
    print(f"{len(table) - len(bad)} videos predicted with {int(table['n_models'].max()) if 'n_models' in table else 0}"
          f" fold models -> {out}", file=sys.stderr)
    for row in bad.itertuples(index=False):
        print(f"skipped {row.path}: {row.reason}", file=sys.stderr)
    if "in_distribution" in table:
        shifted = table[table["in_distribution"].eq(False)]
        for row in shifted.itertuples(index=False):
            print(f"WARNING {row.path} is unlike the training videos: {row.shift_reasons}", file=sys.stderr)
    return 0


def app_main(argv: list[str] | None = None) -> int:
    """`cineflow-app --bundle DIR [--port N] [--max-mb MB] [--mc-dropout N]`: the interactive app on a bundle,
    served by Streamlit (headless: open the address it prints)."""
    p = argparse.ArgumentParser(prog="cineflow-app", description=app_main.__doc__)
    p.add_argument("--bundle", required=True, help="a model bundle folder (results/<model>/bundle)")
    p.add_argument("--port", type=int, default=8501)
    p.add_argument("--max-mb", type=int, default=200, help="the largest upload, in MB; default: %(default)s")
    p.add_argument("--mc-dropout", type=int, default=10, help="MC dropout passes (0: none); default: %(default)s")
    p.add_argument("--seed", type=int, default=schema_default("seed"))
    args = p.parse_args(argv)
    from cineflow.deploy.bundle import BundleError, verify_bundle

    try:
        verify_bundle(args.bundle)  # a changed bundle stops here, before a server starts
    except BundleError as error:
        raise SystemExit(f"cineflow-app: {error}") from None
    from streamlit.web import cli as streamlit_cli

    script = Path(__file__).with_name("deploy") / "app.py"
    sys.argv = ["streamlit", "run", str(script), "--server.headless", "true", "--server.port", str(args.port),
                "--server.maxUploadSize", str(args.max_mb), "--browser.gatherUsageStats", "false",
                "--client.toolbarMode", "viewer", "--",
                "--bundle", str(Path(args.bundle).resolve()), "--max-mb", str(args.max_mb),
                "--mc-dropout", str(args.mc_dropout), "--seed", str(args.seed)]
    return streamlit_cli.main()


def register_main(argv: list[str] | None = None) -> int:
    """`cineflow-register --bundle DIR --name NAME [--registered-model NAME] [--tracking-uri URI]`: log a bundle
    as an MLflow pyfunc model (models from code, nothing pickled) and add a registry version of it."""
    p = argparse.ArgumentParser(prog="cineflow-register", description=register_main.__doc__)
    p.add_argument("--bundle", required=True, help="a model bundle folder (results/<model>/bundle)")
    p.add_argument("--name", required=True, help="the logged model's name")
    p.add_argument("--registered-model", help="the registry name to add a version to")
    p.add_argument("--tracking-uri", help="MLflow's tracking URI (e.g. sqlite:///mlflow.db); default: MLflow's own")
    args = p.parse_args(argv)
    import mlflow

    from cineflow.deploy.bundle import BundleError
    from cineflow.deploy.pyfunc import log_bundle

    if args.tracking_uri:
        mlflow.set_tracking_uri(args.tracking_uri)
    try:
        uri = log_bundle(args.bundle, args.name, args.registered_model)
    except BundleError as error:
        raise SystemExit(f"cineflow-register: {error}") from None
    print(f"logged {args.bundle} as {uri}" + (f", registered as {args.registered_model}" if args.registered_model
                                               else ""), file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(predict_main())
