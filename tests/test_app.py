"""The interactive app on a bundle of the session's tiny run: Streamlit's AppTest, and a real headless Chromium
that uploads a demo video, sees the prediction and the Grad-CAM playing, and is refused a wrong type and an
oversized file."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch

import cineflow.deploy
from cineflow.deploy.bundle import load_models, open_bundle
from cineflow.deploy.serve import UploadError, check_upload, predict_upload
from helpers import browser
from helpers.media import ultrasound, write_dicom, write_image
from helpers.workflow import snakemake

pytestmark = pytest.mark.workflow
APP = Path(cineflow.deploy.__file__).with_name("app.py")


@pytest.fixture(scope="module")
def bundle(workflow, tmp_path_factory) -> Path:
    snakemake(workflow, "results/tiny/bundle")
    out = tmp_path_factory.mktemp("app") / "bundle"
    shutil.copytree(workflow / "results" / "tiny" / "bundle", out)
    return out


def demo_video(workflow: Path, name: str = "patient_000_clip0.avi") -> Path:
    return workflow / "resources" / "demo" / "videos" / name


def started(bundle: Path, monkeypatch, *args: str):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setattr(sys, "argv", ["app", "--bundle", str(bundle), *args])
    app = AppTest.from_file(str(APP), default_timeout=180)
    app.run()
    return app


def test_uploads_are_checked_by_type_and_size_and_the_name_is_never_a_path():
    assert check_upload("../../etc/Clip 1.AVI", 10, 1) == ".avi"
    with pytest.raises(UploadError, match="'.txt' files are not accepted"):
        check_upload("notes.txt", 10, 1)
    with pytest.raises(UploadError, match="the limit is 1 MB"):
        check_upload("big.dcm", 2**20 + 1, 1)


def test_the_app_predicts_an_upload_with_its_uncertainty_and_grad_cam(bundle, workflow, monkeypatch, tmp_path):
    app = started(bundle, monkeypatch, "--mc-dropout", "3", "--max-mb", "1")
    assert app.title[0].value == "cineflow · tiny" and "Upload a file" in app.info[0].value
    data = demo_video(workflow).read_bytes()
    before = set(Path(tempfile.gettempdir()).glob("cineflow-app-*"))
    app.file_uploader[0].set_value(("../../x/clip.avi", data, "video/x-msvideo")).run()
    assert not app.exception and not app.error
    # the same numbers as the bundle's own prediction of that file
    loaded = open_bundle(bundle)
    expected = predict_upload(loaded, load_models(loaded, torch.device("cpu")), data, ".avi", torch.device("cpu"), 3,
                              0)
    lines = [m.value for m in app.markdown]
    assert lines == [line for line in expected.lines if not line.startswith("WARNING")]
    assert [w.value for w in app.warning] == [line for line in expected.lines if line.startswith("WARNING")]
    assert lines[0] in ("Prediction: NORMAL", "Prediction: REDUCED")
    assert any(line.startswith("Uncertainty: fold spread (sd)") and "MC dropout sd" in line for line in lines)
    assert sum(line.startswith(("Input check: like", "WARNING: unlike")) for line in expected.lines) == 1
    assert app.get("video") and expected.cam[4:8] == b"ftyp"  # an MP4 of the CAM on the source frames
    assert set(Path(tempfile.gettempdir()).glob("cineflow-app-*")) == before  # its private folder removed
    # a scanner's DICOM cine (JPEG baseline, YBR) and a still image: read as in training, answered or said
    frames, _ = ultrasound(20, 48, seed=5)
    dicom = write_dicom(tmp_path / "cine.dcm", np.repeat(frames, 3, axis=3), "YBR_FULL_422", "jpeg_baseline")
    app.file_uploader[0].set_value(("IM_0001.dcm", dicom.read_bytes(), "application/dicom")).run()
    said = [m.value for m in app.markdown] + [w.value for w in app.warning]
    assert not app.exception and not app.error and said[0].startswith("Prediction: ") and app.get("video")
    assert sum(line.startswith(("Input check: like", "WARNING: unlike")) for line in said) == 1
    image = write_image(tmp_path / "still.png", frames[0, ..., 0])
    app.file_uploader[0].set_value(("still.png", image.read_bytes(), "image/png")).run()
    assert not app.exception and "a still image (1 frame) where cache.media is 'video'" in app.error[0].value
    # an unreadable file and an oversized one: said, not a traceback
    app.file_uploader[0].set_value(("corrupt.avi", demo_video(workflow, "corrupt_0.avi").read_bytes(),
                                    "video/x-msvideo")).run()
    assert "could not be read" in app.error[0].value and not app.exception
    app.file_uploader[0].set_value(("big.avi", b"\0" * (2**20 + 1), "video/x-msvideo")).run()
    assert "the limit is 1 MB" in app.error[0].value


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_browser_uploads_a_video_and_sees_the_prediction_and_the_cam_play(bundle, workflow, tmp_path):
    reason = browser.missing()
    if reason:
        pytest.skip(reason)
    from selenium.webdriver.common.by import By

    port = free_port()
    app = subprocess.Popen([str(Path(sys.executable).with_name("cineflow-app")), "--bundle", str(bundle),
                            "--port", str(port), "--max-mb", "1", "--mc-dropout", "2"],
                           stdout=(tmp_path / "app.log").open("w"), stderr=subprocess.STDOUT)
    driver = None
    try:
        browser.wait_for(lambda: answers(f"http://localhost:{port}/_stcore/health"), 120, "app server")
        driver = browser.chromium()
        driver.get(f"http://localhost:{port}")

        def upload(path: Path, text: str) -> None:
            browser.wait_for(lambda: driver.find_elements(By.CSS_SELECTOR, 'input[type="file"]'), 60,
                             "upload field")[0].send_keys(str(path))
            browser.wait_for(lambda: text in driver.find_element(By.TAG_NAME, "body").text, 120, f"'{text}'")

        upload(demo_video(workflow), "Prediction:")
        playing = browser.wait_for(lambda: driver.execute_script(
            "const v = document.querySelector('video'); return v && !v.paused && v.currentTime > 0 && "
            "v.videoWidth > 0 && !v.error"), 30, "Grad-CAM video playing")
        assert playing and "P(REDUCED) = " in driver.find_element(By.TAG_NAME, "body").text
        assert browser.console_errors(driver) == []
        (tmp_path / "notes.txt").write_text("not a video")
        upload(tmp_path / "notes.txt", "files are not allowed")
        (tmp_path / "big.avi").write_bytes(b"\0" * (3 * 2**19))
        upload(tmp_path / "big.avi", "File must be 1.0MB or smaller")
    finally:
        if driver is not None:
            driver.quit()
        app.terminate()
        app.wait(timeout=30)


def answers(url: str) -> bool:
    """The server at `url` is up and says 200."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def test_the_bundle_as_an_mlflow_registry_version_predicts_as_the_bundle(bundle, workflow, tmp_path, monkeypatch):
    """cineflow-register into a local SQLite registry; the version loaded back through MLflow gives the bundle's
    predictions (the model is stored as code, the bundle as its artifact: nothing pickled)."""
    import mlflow
    import pandas as pd

    from cineflow.cli import register_main
    from cineflow.deploy.bundle import predict_with_bundle

    monkeypatch.chdir(tmp_path)
    served_root = workflow / "resources" / "demo"  # request paths are read inside it only
    monkeypatch.setenv("CINEFLOW_SERVE_ROOT", str(served_root))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert register_main(["--bundle", str(bundle), "--name", "tiny", "--registered-model", "tiny-demo",
                          "--tracking-uri", uri]) == 0
    mlflow.set_tracking_uri(uri)
    model = mlflow.pyfunc.load_model("models:/tiny-demo/1")
    videos = [str(demo_video(workflow, f"patient_00{i}_clip0.avi")) for i in (0, 1)]
    served = model.predict(pd.DataFrame({"path": videos}))
    direct = predict_with_bundle(open_bundle(bundle), pd.DataFrame({"video_id": ["a", "b"], "path": videos}),
                                 tmp_path / "work", torch.device("cpu"), root="/")
    assert served["score"].tolist() == pytest.approx(direct["score"].tolist(), abs=1e-6)
    assert served["status"].tolist() == ["ok", "ok"]
    # `mlflow models serve` on that version, in this environment (activated: the server is uvicorn, found on
    # PATH): its REST answer is the bundle's
    port, bin_dir = free_port(), Path(sys.executable).parent
    server = subprocess.Popen([str(bin_dir / "mlflow"), "models", "serve", "-m", "models:/tiny-demo/1",
                               "--env-manager", "local", "--port", str(port)], cwd=tmp_path, text=True,
                              env={**os.environ, "MLFLOW_TRACKING_URI": uri, "CINEFLOW_SERVE_ROOT": str(served_root),
                                   "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"},
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        browser.wait_for(lambda: server.poll() is not None or answers(f"http://127.0.0.1:{port}/ping"), 180,
                         "mlflow models serve")
        assert server.poll() is None, server.communicate()[1][-3000:]
        request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", method="POST",
                                         headers={"Content-Type": "application/json"},
                                         data=json.dumps({"dataframe_split": {"columns": ["path"],
                                                                              "data": [[v] for v in videos]}}).encode())
        with urllib.request.urlopen(request, timeout=120) as response:
            rows = json.loads(response.read(), parse_constant=refuse)["predictions"]  # strict JSON: no bare NaN
        # a request without the path column, and one naming a file outside the serving folder: 400, the
        # message alone (no stack trace sent to the client)
        for columns, data, said in ((["file"], [["x.avi"]], "needs a `path` column"),
                                    (["path"], [["/etc/passwd"]], "outside the folder this server reads")):
            bad = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", method="POST",
                                         headers={"Content-Type": "application/json"},
                                         data=json.dumps({"dataframe_split": {"columns": columns,
                                                                              "data": data}}).encode())
            with pytest.raises(urllib.error.HTTPError) as answer:
                urllib.request.urlopen(bad, timeout=60)
            body = json.loads(answer.value.read())
            assert answer.value.code == 400 and said in body["message"] and "stack_trace" not in body, body
    finally:
        server.terminate()
        error = server.communicate(timeout=60)[1]
    assert [row["score"] for row in rows] == pytest.approx(direct["score"].tolist(), abs=1e-6), error[-2000:]
    assert [row["video_id"] for row in rows] == [Path(v).name for v in videos]
    assert all(row["uncertainty"] is None for row in rows)  # no MC dropout asked: null, not NaN


def refuse(constant: str):
    raise AssertionError(f"not strict JSON: {constant}")


def test_hostile_inputs_to_predict_end_in_a_message_not_a_traceback(bundle, workflow, tmp_path, capsys):
    """Issue 45's adversarial cases against cineflow-predict --bundle, in process: an empty folder and one where
    every file is skipped exit 1 and say so; a truncated ONNX graph (the manifest re-hashed) is named; the stale
    sweep leaves a user's look-alike temporaries in and under --out's folder alone; --expect-manifest pins it."""
    from cineflow.cli import predict_main
    from cineflow.provenance import file_sha256

    def predict(*args: str) -> tuple[int | str, str]:
        try:
            code = predict_main(list(args))
        except SystemExit as stop:
            code = stop.code
        return code, capsys.readouterr().err

    digest = file_sha256(bundle / "manifest.json")
    (tmp_path / "empty").mkdir()
    code, said = predict(str(tmp_path / "empty"), "--bundle", str(bundle), "--out", str(tmp_path / "e.csv"))
    assert code == 1 and "no video, DICOM file or image found" in said
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "text.mp4").write_text("not a video")
    (tmp_path / "bad" / "zero.avi").write_bytes(b"")
    user = [tmp_path / "docs" / ".thesis.999999.draft.tmp", tmp_path / ".frames-999999-mydata",
            tmp_path / "projects" / "other" / ".frames-999999-mydata"]
    for path in user:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("mine") if path.suffix == ".tmp" else path.mkdir()
    code, said = predict(str(tmp_path / "bad"), "--bundle", str(bundle), "--out", str(tmp_path / "b.csv"),
                         "--expect-manifest", digest)
    assert code == 1 and "0 of 2 videos predicted with 2 fold models" in said and "none of the 2 files" in said
    assert all(p.exists() for p in user) and "Traceback" not in said
    code, said = predict(str(tmp_path / "bad"), "--bundle", str(bundle), "--out", str(tmp_path / "c.csv"),
                         "--expect-manifest", "f" * 64)
    assert "not the bundle that was built" in str(code) and not (tmp_path / "c.csv").exists()
    cut = tmp_path / "cut"
    shutil.copytree(bundle, cut)
    onnx = cut / "folds" / "0" / "model.onnx"
    onnx.write_bytes(onnx.read_bytes()[:200])
    manifest = json.loads((cut / "manifest.json").read_text())
    manifest["files"]["folds/0/model.onnx"] = file_sha256(onnx)
    (cut / "manifest.json").write_text(json.dumps(manifest))
    (tmp_path / "one").mkdir()
    shutil.copyfile(demo_video(workflow), tmp_path / "one" / "clip.avi")
    code, said = predict(str(tmp_path / "one"), "--bundle", str(cut), "--runtime", "onnx", "--out",
                         str(tmp_path / "o.csv"))
    assert "folds/0/model.onnx cannot be read" in str(code) and "Traceback" not in said
