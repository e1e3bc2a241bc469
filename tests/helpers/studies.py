"""Small datasets in exactly the on-disk format of each source study (../shared/seeds), written where its
example config (config/examples/<study>.yaml) expects them under the workflow folder. Each writer
returns what a test checks against: the rows it wrote and the ones that must be quarantined."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from helpers.media import gradient_clip, write_dicom, write_echonet, write_image

ORANGE = (255, 140, 0)


def write_ann_vs_normal(root: str | Path, n_scans: int = 12, n_frames: int = 12, size: int = 24) -> dict:
    """aug.csv (TYPE, VIDEO_NAME, SCAN, AUGMENT: orig or hflip) + preprocessed_frames_aug/<VIDEO_NAME>_<AUGMENT>/
    frame_<i>.pt, each a (3, H, W) float tensor in [0, 1]. Twelve frames, so frame_10 must sort after frame_9.
    One video's folder holds a frame of another size: quarantined."""
    import torch

    root = Path(root)
    rows, rng = [], np.random.default_rng(0)
    for scan in range(n_scans):
        label = ["NORMAL", "ANN_1_4"][scan % 2]
        for clip in range(2 if scan < 4 else 1):  # some scans hold two videos
            name = f"scan{scan:02d}_clip{clip}"
            frames = gradient_clip(n_frames, size, seed=scan) // (2 if label == "NORMAL" else 1)
            for tag, video in (("orig", frames), ("hflip", frames[:, :, ::-1])):
                folder = root / "preprocessed_frames_aug" / f"{name}_{tag}"
                folder.mkdir(parents=True, exist_ok=True)
                for i, frame in enumerate(video):
                    tensor = torch.from_numpy(np.ascontiguousarray(frame.transpose(2, 0, 1))).float() / 255
                    if name == "scan11_clip0" and tag == "orig" and i == 5:
                        tensor = torch.rand(3, size + 8, size)  # a frame of another size
                    torch.save(tensor, folder / f"frame_{i}.pt")
                rows.append({"TYPE": label, "VIDEO_NAME": name, "SCAN": f"S{scan:03d}", "AUGMENT": tag})
    table = pd.DataFrame(rows)
    table.sample(frac=1, random_state=int(rng.integers(100))).to_csv(root / "aug.csv", index=False)
    return {"table": table, "quarantined": ["scan11_clip0_orig"]}


def write_echo_quality(root: str | Path, n_patients: int = 10, size: int = 24) -> dict:
    """echo_annotations.csv (video_path relative to the root, quality_score 0/1) + DICOM cine loops as a scanner
    exports them: echo_videos/<study folder>/IM_0001.dcm, IM_0002.dcm, ... (the same names in every folder), two
    loops for the first four patients (the patient only in the DICOM header), rated one by one: a patient's two
    loops have different scores. The table is saved as Excel on Windows saves it: ';'-separated, cp1252, a
    padded header. One listed file is missing: quarantined."""
    root = Path(root)
    rows = []
    for patient in range(n_patients):
        for k in range(2 if patient < 4 else 1):
            path = f"echo_videos/Étude {patient:02d}/IM_{k + 1:04d}.dcm"
            score = (patient + k) % 2
            frames = gradient_clip(6, size, rgb=False, seed=patient) // (1 if score else 3)
            write_dicom(root / path, frames, patient_id=f"PAT{patient:03d}")
            rows.append({"video_path": path, "quality_score": score})
    rows.append({"video_path": "echo_videos/Étude 99/IM_0001.dcm", "quality_score": 1})
    table = pd.DataFrame(rows)
    text = "video_path ; quality_score \r\n" + "".join(f"{r.video_path};{r.quality_score}\r\n"
                                                         for r in table.itertuples())
    (root / "echo_annotations.csv").write_bytes(text.encode("cp1252"))
    return {"table": table, "quarantined": ["echo_videos__Étude 99__IM_0001"]}


LUNG_CLASSES = ["Bacterial Pneumonia", "Corona Virus Disease", "Normal", "Tuberculosis", "Viral Pneumonia"]


def write_lung_xray(root: str | Path) -> dict:
    """Lung X-Ray Image/{train,val,test}/<class folder with spaces>/<image>, PNG and JPEG of mixed native
    sizes and grey or RGB, as the Kaggle archive unpacks. One file is not an image: quarantined."""
    root = Path(root) / "Lung X-Ray Image"
    rng = np.random.default_rng(0)
    files = []
    for split, n in (("train", 3), ("val", 2), ("test", 2)):
        for c, name in enumerate(LUNG_CLASSES):
            for k in range(n):
                height, width = [(40, 36), (52, 64), (32, 32)][k % 3]
                image = np.clip(rng.normal(40 + 40 * c, 20, (height, width)), 0, 255).astype(np.uint8)
                if k == 1:
                    image = np.repeat(image[..., None], 3, -1)
                suffix = ".jpeg" if k == 2 else ".png"
                files.append(write_image(root / split / name / f"{name.split()[0]}-{split}-{k}{suffix}", image))
    broken = root / "train" / "Normal" / "broken.png"
    broken.write_bytes(b"not a png")
    return {"files": files, "quarantined": ["train__Normal__broken"]}


def write_echonet_dynamic(root: str | Path) -> dict:
    """EchoNet-Dynamic as published: FileList.csv + Videos/*.avi; one listed video is absent."""
    table = write_echonet(root, n_videos=16, n_frames=8)
    return {"table": table, "quarantined": ["0XMISSING"]}


def outline_video(n_frames: int = 8, size: int = 64, center=(32, 30), axes=(20, 14), thickness: int = 2,
                  seed: int = 0, outline: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(RGB frames with an orange closed outline drawn around a vessel-like region, the drawn inside mask):
    dark noisy tissue everywhere, a bright moving vessel inside, the outline on every frame."""
    import cv2

    rng = np.random.default_rng(seed)
    drawn = np.zeros((size, size), np.uint8)
    cv2.ellipse(drawn, center, axes, 15, 0, 360, 1, thickness)
    inside = np.zeros((size, size), np.uint8)
    cv2.ellipse(inside, center, axes, 15, 0, 360, 1, -1)
    inside = inside.astype(bool) & ~drawn.astype(bool)
    frames = []
    for t in range(n_frames):
        frame = rng.integers(0, 60, (size, size, 3)).astype(np.uint8)
        frame[..., 1] = np.clip(frame[..., 1] + 40, 0, 255)  # greenish tissue, never orange
        cv2.line(frame, (center[0] - axes[0], center[1] + t - 4), (center[0] + axes[0], center[1] - t + 4),
                 (30, 220, 60), 3)
        if outline:
            frame[drawn.astype(bool)] = ORANGE
        frames.append(frame)
    return np.stack(frames), inside


def write_stall_catchers(root: str | Path, n_videos: int = 16) -> dict:
    """train_metadata.csv (filename, url, project_id, num_frames, crowd_score, tier1, micro, nano) +
    train_labels.csv (filename, stalled) + videos/<filename>.mp4 (H.264) with the orange ROI outline.
    One video has no outline: quarantined. The tables list their rows in different orders."""
    from cineflow.data.video_io import write_mp4

    root = Path(root)
    meta, labels = [], []
    for i in range(n_videos):
        name = f"{100000 + i}.mp4"
        frames, _ = outline_video(seed=i, outline=i != 5, center=(30 + i % 5, 30), axes=(18 + i % 4, 12))
        write_mp4(root / "videos" / name, frames, 20)
        meta.append({"filename": name, "url": f"s3://drivendata-competition-clog-loss/train/{name}",
                     "project_id": f"P{i // 2}", "num_frames": len(frames), "crowd_score": 0.5, "tier1": True,
                     "micro": False, "nano": i < 12})
        labels.append({"filename": name, "stalled": int(i % 3 == 0)})
    pd.DataFrame(meta).to_csv(root / "train_metadata.csv", index=False)
    pd.DataFrame(labels[::-1]).to_csv(root / "train_labels.csv", index=False)
    return {"table": pd.DataFrame(meta).merge(pd.DataFrame(labels), on="filename"), "quarantined": ["100005"]}


STUDIES = {
    "ann_vs_normal": write_ann_vs_normal,
    "echo_quality": write_echo_quality,
    "lung_xray": write_lung_xray,
    "echonet_videomae": write_echonet_dynamic,
    "stall_catchers": write_stall_catchers,
}
