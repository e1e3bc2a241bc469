"""`cineflow-predict`: the fold models of a finished run applied to new videos, outside Snakemake."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
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
    p.add_argument("--expect-manifest", metavar="SHA256",
                   help="with --bundle: the SHA-256 of its manifest.json as the bundle's builder published it; a "
                        "bundle whose manifest differs is refused (the manifest itself is not signed)")
    p.add_argument("--out", required=True, help="predictions file, .csv or .parquet (nothing else is written "
                                                "there but cineflow's own temporaries, removed after)")
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


OUT_SUFFIXES = (".csv", ".parquet")


def checked_out(path: str) -> Path:
    """--out once it can be written: a .csv or .parquet file (so a video or a document is never overwritten with
    a table) in a folder that exists or can be made and that this user can write; SystemExit saying what to do
    otherwise, before anything is read or written."""
    out = Path(path)
    if out.is_dir():
        raise SystemExit(f"cineflow-predict: --out {path} is a folder; name a file in it, e.g. "
                         f"--out {out / 'predictions.csv'}")
    if out.suffix.lower() not in OUT_SUFFIXES:
        raise SystemExit(f"cineflow-predict: --out {path}: a predictions file is named .csv or .parquet "
                         f"(nothing was written); e.g. --out {out.with_suffix('.csv').name}")
    for folder in (out.parent, *out.parent.parents):
        if folder.exists() and not folder.is_dir():
            raise SystemExit(f"cineflow-predict: --out {path}: {folder} is a file, not a folder; choose another --out")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".cineflow-probe-", dir=out.parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as error:
        raise SystemExit(f"cineflow-predict: --out {path}: cannot write in {out.parent} ({error.strerror}); "
                         f"choose a folder you can write") from None
    return out


def bundle_predictions(args: argparse.Namespace) -> tuple[pd.DataFrame, Task, int]:
    """(the predictions of `--bundle`, its task, its fold count), verified first: a changed or incomplete bundle
    stops with the file named."""
    from cineflow.deploy.bundle import BundleError, open_bundle, predict_with_bundle

    try:
        bundle = open_bundle(args.bundle, args.expect_manifest)
        print(f"bundle {args.bundle} verified (manifest SHA-256 {bundle.digest})", file=sys.stderr)
        for name in bundle.ignored:
            print(f"WARNING {name} is in the bundle folder but not in its manifest: not read", file=sys.stderr)
        with frames_dir(Path(args.out).parent) as work, job_device() as device:
            table = predict_with_bundle(bundle, args.input, work, device, args.runtime, args.seed, args.mc_dropout,
                                        args.gradcam)
    except BundleError as error:
        raise SystemExit(f"cineflow-predict: {error}") from None
    return table, Task.from_dict(bundle.metrics[0]["task"]), len(bundle.models)


def predict_main(argv: list[str] | None = None) -> int:
    """Exit 0 when at least one video was predicted (the skipped ones listed), 1 when none was (no video found,
    or every one skipped: a script can tell that from success), 2 for a usage error."""
    args = parse(argv)
    if args.expect_manifest and not args.bundle:
        raise SystemExit("cineflow-predict: --expect-manifest checks a bundle; use it with --bundle")
    eval_clips = args.eval_clips if args.eval_clips == "all" else int(args.eval_clips)
    cfg = section(EvalConfig, "evaluate", eval_clips=eval_clips, mc_dropout=args.mc_dropout)
    gradcam = section(GradcamConfig, "gradcam") if args.gradcam else None
    out = checked_out(args.out)
    for left in sweep_temporaries(out.parent, recursive=False):  # what a killed earlier run left there
        print(f"removed {left}, left by a killed run", file=sys.stderr)
    seed_everything(args.seed, None, schema_default("deterministic"))
    if args.bundle:
        table, task, n_models = bundle_predictions(args)
    else:
        if not Path(args.summary).is_file():
            raise SystemExit(f"{args.summary} not found; run the workflow first "
                             f"(snakemake results/<model>/summary.json)")
        models, metrics, references = read_fold_files(args.summary)
        with frames_dir(out.parent) as work, job_device() as device:
            table = predict_new_videos(args.input, models, [read_json(p) for p in metrics], cfg, work, device,
                                       args.seed, gradcam, args.gradcam, references)
        task, n_models = Task.from_dict(read_json(metrics[0])["task"]), len(models)
    if table.empty:
        print(f"cineflow-predict: no video, DICOM file or image found in {args.input}; nothing written",
              file=sys.stderr)
        return 1
    units = unit_column(args.input, args.aggregate_by) if args.aggregate_by else None
    (write_parquet if out.suffix == ".parquet" else write_csv)(out, table)
    if units is not None:
        by_unit = aggregate_predictions(task, table, units, args.aggregate_how)
        unit_out = out.with_name(f"{out.stem}_by_{args.aggregate_by}{out.suffix}")
        (write_parquet if out.suffix == ".parquet" else write_csv)(unit_out, by_unit)
        print(f"{len(by_unit)} {args.aggregate_by} values predicted ({args.aggregate_how} of their videos) -> "
              f"{unit_out}", file=sys.stderr)
    bad = table[table["status"] != "ok"]
    print(f"{len(table) - len(bad)} of {len(table)} videos predicted with {n_models} fold models -> {out}",
          file=sys.stderr)
    for row in bad.itertuples(index=False):
        print(f"skipped {row.path}: {row.reason}", file=sys.stderr)
    if "in_distribution" in table:
        shifted = table[table["in_distribution"].eq(False)]
        for row in shifted.itertuples(index=False):
            print(f"WARNING {row.path} is unlike the training videos: {row.shift_reasons}", file=sys.stderr)
    if len(bad) == len(table):
        print(f"cineflow-predict: none of the {len(table)} files could be predicted (each skipped, with its reason, "
              f"above and in {out})", file=sys.stderr)
        return 1
    return 0


def app_main(argv: list[str] | None = None) -> int:
    """`cineflow-app --bundle DIR [--address A] [--port N] [--max-mb MB] [--mc-dropout N]`: the interactive app on a
    bundle, served by Streamlit (headless: open the address it prints). It listens on this machine only
    (127.0.0.1) unless told otherwise: the upload page has no login."""
    p = argparse.ArgumentParser(prog="cineflow-app", description=app_main.__doc__)
    p.add_argument("--bundle", required=True, help="a model bundle folder (results/<model>/bundle)")
    p.add_argument("--expect-manifest", metavar="SHA256", help="the bundle manifest's published SHA-256")
    p.add_argument("--address", default="127.0.0.1",
                   help="the interface to listen on; default: %(default)s (this machine only). Any other address "
                        "serves an unauthenticated upload page to that network")
    p.add_argument("--port", type=int, default=8501)
    p.add_argument("--max-mb", type=int, default=200, help="the largest upload, in MB; default: %(default)s")
    p.add_argument("--mc-dropout", type=int, default=10, help="MC dropout passes (0: none); default: %(default)s")
    p.add_argument("--seed", type=int, default=schema_default("seed"))
    args = p.parse_args(argv)
    from cineflow.deploy.bundle import BundleError, open_bundle

    try:
        open_bundle(args.bundle, args.expect_manifest)  # a changed bundle stops here, before a server starts
    except BundleError as error:
        raise SystemExit(f"cineflow-app: {error}") from None
    if not is_loopback(args.address):
        print(f"WARNING cineflow-app listens on {args.address}: anyone who reaches it on that network can upload "
              f"files and see predictions, with no login. Use the default 127.0.0.1 (and an SSH tunnel or an "
              f"authenticating proxy) unless this is what you want", file=sys.stderr)
    from streamlit.web import cli as streamlit_cli

    script = Path(__file__).with_name("deploy") / "app.py"
    sys.argv = ["streamlit", "run", str(script), "--server.headless", "true", "--server.address", args.address,
                "--server.port", str(args.port),
                "--server.maxUploadSize", str(args.max_mb), "--browser.gatherUsageStats", "false",
                "--client.toolbarMode", "viewer", "--",
                "--bundle", str(Path(args.bundle).resolve()), "--max-mb", str(args.max_mb),
                *(["--expect-manifest", args.expect_manifest] if args.expect_manifest else []),
                "--mc-dropout", str(args.mc_dropout), "--seed", str(args.seed)]
    return streamlit_cli.main()


def is_loopback(address: str) -> bool:
    """Whether a listening address is this machine's alone (127.0.0.0/8, ::1, localhost)."""
    import ipaddress

    if address.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(address.strip("[]")).is_loopback
    except ValueError:
        return False


def register_main(argv: list[str] | None = None) -> int:
    """`cineflow-register --bundle DIR --name NAME [--registered-model NAME] [--tracking-uri URI]`: log a bundle
    as an MLflow pyfunc model (models from code, nothing pickled) and add a registry version of it."""
    p = argparse.ArgumentParser(prog="cineflow-register", description=register_main.__doc__)
    p.add_argument("--bundle", required=True, help="a model bundle folder (results/<model>/bundle)")
    p.add_argument("--name", required=True, help="the logged model's name")
    p.add_argument("--registered-model", help="the registry name to add a version to")
    p.add_argument("--tracking-uri", help="MLflow's tracking URI (e.g. sqlite:///mlflow.db); default: MLflow's own "
                                          "(MLFLOW_TRACKING_URI, else ./mlruns in the working folder)")
    p.add_argument("--expect-manifest", metavar="SHA256", help="the bundle manifest's published SHA-256")
    args = p.parse_args(argv)
    import mlflow

    from cineflow.deploy.bundle import BundleError
    from cineflow.deploy.pyfunc import log_bundle

    if args.tracking_uri:
        mlflow.set_tracking_uri(args.tracking_uri)
    try:
        uri, where = log_bundle(args.bundle, args.name, args.registered_model, args.expect_manifest)
    except BundleError as error:
        raise SystemExit(f"cineflow-register: {error}") from None
    print(f"logged {args.bundle} as {uri}" + (f", registered as {args.registered_model}" if args.registered_model
                                               else "") + f"; tracking store {mlflow.get_tracking_uri()}, artifacts "
          f"in {where}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(predict_main())
