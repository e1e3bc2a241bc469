"""The interactive app (`cineflow-app --bundle DIR`, a Streamlit script): drop a video, a DICOM cine or an image,
see the fold ensemble's prediction, its uncertainty, the input-shift warning, and the Grad-CAM on the source
frames. The bundle is verified and its fold models are loaded once per server (st.cache_resource)."""

from __future__ import annotations

import argparse
import sys

import streamlit as st
import torch

from cineflow.deploy.bundle import BundleError, load_models, open_bundle
from cineflow.deploy.serve import UploadError, check_upload, predict_upload, upload_types


def options(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="cineflow-app")
    p.add_argument("--bundle", required=True)
    p.add_argument("--expect-manifest")
    p.add_argument("--max-mb", type=int, default=200)
    p.add_argument("--mc-dropout", type=int, default=0)
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


@st.cache_resource(show_spinner="Loading the model bundle…")
def loaded(bundle_dir: str, expect: str | None):
    """(bundle, its fold models): verified (against the expected manifest digest, where given) and loaded once,
    shared by every session of this server."""
    bundle = open_bundle(bundle_dir, expect)
    return bundle, load_models(bundle, torch.device("cpu"))


def main(args: argparse.Namespace) -> None:
    st.set_page_config(page_title="cineflow", layout="centered")
    try:
        bundle, models = loaded(args.bundle, args.expect_manifest)
    except BundleError as error:
        st.error(str(error))
        st.stop()
    st.title(f"cineflow · {bundle.contract['model']}")
    st.caption(f"{len(models)} fold models · bundle manifest SHA-256 {bundle.digest[:16]}…")
    upload = st.file_uploader("A video, a DICOM cine loop or an image", type=upload_types(), key="upload")
    if upload is None:
        st.info("Upload a file to see the prediction and its Grad-CAM.")
        return
    try:
        suffix = check_upload(upload.name, upload.size, args.max_mb)
        with st.spinner("Predicting…"):
            result = predict_upload(bundle, models, upload.getvalue(), suffix, torch.device("cpu"),
                                    args.mc_dropout, args.seed)
    except UploadError as error:
        st.error(str(error))
        return
    for line in result.lines:
        (st.warning if line.startswith("WARNING") else st.markdown)(line)
    if result.cam is not None:
        st.subheader("Grad-CAM on the source frames")
        if result.cam_format == "image/png":
            st.image(result.cam)
        else:
            st.video(result.cam, format="video/mp4", autoplay=True, loop=True, muted=True)


main(options(sys.argv[1:]))
