"""The model bundle and the app on a CPU: the demo's tiny3d (its width, clip, frame cache and evaluation settings,
trained 1 epoch: prediction time does not depend on the weights) on 3 folds, bundled by the workflow.

Figures:
- bundle_build_s: the bundle job (checkpoints, ONNX and torch.export of 3 folds, manifest), from its benchmark
  file; measured once.
- app_load_s: what the app does once at start: verify every checksum and load the fold models.
- upload_s, upload_mc5_s: one uploaded demo video to the app's answer (predict_upload: cache it, 3 folds x 4
  clips, the shift check, the Grad-CAM MP4), without and with the demo's 5 MC dropout passes. Target: a few
  seconds.
- torch_videos_s, onnx_videos_s: scores of VIDEOS demo videos through the bundle, models loaded beforehand,
  with the torch checkpoints and with ONNX Runtime (no shift check, MC dropout or CAM on either).
Each is the median of interleaved rounds after a warm-up call, with its `_spread`.
- served_*: the bundle registered in a local SQLite registry and served by `mlflow models serve` on 127.0.0.1 (a
  free port of the loopback, nothing else), then LOAD_REQUESTS requests of one demo video each from
  LOAD_CLIENTS concurrent clients, after one warm-up request; every answer must be HTTP 200 and strict JSON (no
  bare NaN) with the bundle's columns. Bounded: that many requests, each with a timeout, and a deadline for the
  server's start; the server is stopped after. served_ok counts the correct answers; served_median_s and
  served_p95_s are the latencies.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd
import torch
import yaml
from echonet_like import interleaved, median_spread, save

from cineflow.deploy.bundle import load_models, onnx_models, open_bundle, predict_with_bundle
from cineflow.deploy.serve import predict_upload

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
ROUNDS, VIDEOS, MODEL = 5, 8, "tiny3d"
LOAD_REQUESTS, LOAD_CLIENTS, REQUEST_TIMEOUT_S, START_TIMEOUT_S = 200, 4, 120, 300


def bundled_demo() -> Path:
    """A copy of the workflow with the demo's config, one model trained 1 epoch, no sweep or external set; its
    bundle built by `snakemake results/tiny3d/bundle`."""
    work = Path(tempfile.mkdtemp(prefix="cineflow_bench_deploy_"))
    for name in ("Snakefile", "rules", "scripts", "src", "envs"):
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, work / name, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, work / name)
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["models"] = {MODEL: {**config["models"][MODEL], "epochs": 1}}
    config["demo"]["n_patients"] = 30
    for key in ("sweep", "external"):
        config.pop(key, None)
    (work / "config.yaml").write_text(yaml.safe_dump(config))
    done = subprocess.run([SNAKEMAKE, f"results/{MODEL}/bundle", "--cores", "2", "--resources", "gpu=1"], cwd=work,
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"snakemake results/{MODEL}/bundle failed:\n{done.stderr[-4000:]}")
    return work


def served_load(work: Path, root: Path, videos: list[Path]) -> dict:
    """The loopback load test of the served bundle (module docstring), as figures."""
    import json
    import os
    import socket
    import statistics
    import time
    import urllib.request
    from concurrent.futures import ThreadPoolExecutor

    def refuse(constant: str):
        raise ValueError(f"not strict JSON: {constant}")

    uri = f"sqlite:///{work / 'mlflow.db'}"
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "CINEFLOW_SERVE_ROOT": str(work / "resources" / "demo"),
           "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    subprocess.run([str(bin_dir / "cineflow-register"), "--bundle", str(root), "--name", MODEL, "--registered-model",
                    "bench", "--tracking-uri", uri], cwd=work, env=env, check=True, capture_output=True)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([str(bin_dir / "mlflow"), "models", "serve", "-m", "models:/bench/1", "--env-manager",
                               "local", "--host", "127.0.0.1", "--port", str(port)], cwd=work, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"

    def ask(video: Path) -> tuple[bool, float]:
        body = json.dumps({"dataframe_split": {"columns": ["path"], "data": [[str(video)]]}}).encode()
        request = urllib.request.Request(f"{base}/invocations", data=body, method="POST",
                                         headers={"Content-Type": "application/json"})
        start = time.perf_counter()
        try:
            with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT_S) as response:
                rows = json.loads(response.read(), parse_constant=refuse)["predictions"]
            ok = response.status == 200 and rows[0]["status"] == "ok" and rows[0]["video_id"] == video.name
        except (OSError, ValueError, KeyError, IndexError):
            ok = False
        return ok, time.perf_counter() - start

    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                with urllib.request.urlopen(f"{base}/ping", timeout=5):
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("mlflow models serve did not start")
                time.sleep(1)
        ask(videos[0])  # warm-up
        with ThreadPoolExecutor(LOAD_CLIENTS) as pool:
            answers = list(pool.map(ask, [videos[i % len(videos)] for i in range(LOAD_REQUESTS)]))
    finally:
        server.terminate()
        server.wait(timeout=60)
    latencies = sorted(t for _, t in answers)
    return {"served_requests": LOAD_REQUESTS, "served_clients": LOAD_CLIENTS,
            "served_ok": sum(ok for ok, _ in answers), "served_median_s": round(statistics.median(latencies), 3),
            "served_p95_s": round(latencies[int(0.95 * (len(latencies) - 1))], 3)}


def main() -> None:
    work = bundled_demo()
    videos = sorted((work / "resources" / "demo" / "videos").glob("patient_*.avi"))[:VIDEOS]  # not the corrupt one
    upload = videos[0].read_bytes()
    table = pd.DataFrame({"video_id": [v.stem for v in videos], "path": [str(v) for v in videos]})
    cpu, root = torch.device("cpu"), work / "results" / MODEL / "bundle"
    bundle = open_bundle(root)
    loaded = {"torch": load_models(bundle, cpu), "onnx": onnx_models(bundle)}

    def app_load() -> None:
        load_models(open_bundle(root), cpu)

    def upload_mc(passes: int):
        def run() -> None:
            assert predict_upload(bundle, loaded["torch"], upload, ".avi", cpu, passes, 0).cam
        return run

    def scores(runtime: str):
        def run() -> None:
            with tempfile.TemporaryDirectory() as frames:
                out = predict_with_bundle(bundle, table, frames, cpu, runtime, models=loaded[runtime])
            assert (out["status"] == "ok").all(), out
        return run

    seconds = interleaved({"app_load_s": app_load, "upload_s": upload_mc(0), "upload_mc5_s": upload_mc(5),
                           "torch_videos_s": scores("torch"), "onnx_videos_s": scores("onnx")}, ROUNDS)
    build = pd.read_csv(work / "results" / "benchmarks" / "bundle" / f"{MODEL}.tsv", sep="\t")["s"].iloc[0]
    figures = {"device": "cpu", "threads": torch.get_num_threads(), "rounds": ROUNDS, "folds": len(bundle.models),
               "videos": VIDEOS, "bundle_build_s": round(float(build), 2)}
    for key, values in seconds.items():
        figures.update(median_spread(key, values, 3))
    figures.update(served_load(work, root, videos))
    shutil.rmtree(work, ignore_errors=True)
    save("deploy", figures)


if __name__ == "__main__":
    main()
