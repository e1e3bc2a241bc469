"""Writers of small test media: DICOM in each transfer syntax and photometric interpretation, images, videos."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def gradient_clip(n_frames: int = 6, size: int = 32, rgb: bool = True, seed: int = 0) -> np.ndarray:
    """[T, H, W, 3] (or [T, H, W]) uint8 frames with smooth content (lossy codecs keep it close)."""
    yy, xx = np.mgrid[0:size, 0:size]
    frames = []
    for t in range(n_frames):
        red = (xx * 255 / (size - 1) + 10 * t) % 256
        green = yy * 255 / (size - 1)
        blue = np.full_like(red, 60 + 20 * t % 200)
        frames.append(np.stack([red, green, blue], -1) if rgb else (red + green) / 2)
    return np.asarray(frames).round().astype(np.uint8)


def write_dicom(path: str | Path, frames: np.ndarray, interpretation: str = "MONOCHROME2",
                syntax: str = "explicit", fps_tag: str | None = "CineRate", fps: float = 25.0,
                bits_stored: int = 8, patient_id: str | None = None) -> Path:
    """A DICOM file holding `frames` ([T,H,W] or [T,H,W,3]; T == 1 writes a single-frame image), its
    PatientID `patient_id` (default the file's stem).

    syntax: explicit | rle | jpegls | jpeg2000 | jpeg_baseline | unsupported.
    """
    import cv2
    from pydicom import uid
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.encaps import encapsulate
    from pydicom.pixels import convert_color_space

    path = Path(path)
    frames = np.asarray(frames)
    single = len(frames) == 1
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = uid.UltrasoundMultiFrameImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = uid.generate_uid()
    ds.file_meta.TransferSyntaxUID = uid.ExplicitVRLittleEndian
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.Modality = "US"
    ds.PatientID = path.stem if patient_id is None else patient_id
    if fps_tag == "FrameTime":
        ds.FrameTime = 1000.0 / fps
    elif fps_tag:
        setattr(ds, fps_tag, int(fps))
    pixels = frames[0] if single else frames

    if interpretation == "PALETTE COLOR":
        ds.set_pixel_data(pixels, "MONOCHROME2", 8)  # 8-bit indices into the palette
        ds.PhotometricInterpretation = "PALETTE COLOR"
        ramp = np.arange(256, dtype=np.uint16) * 257
        for colour, lut in (("Red", ramp), ("Green", ramp[::-1].copy()), ("Blue", np.full(256, 32896, np.uint16))):
            setattr(ds, f"{colour}PaletteColorLookupTableDescriptor", [256, 0, 16])
            setattr(ds, f"{colour}PaletteColorLookupTableData", lut.tobytes())
    elif interpretation == "YBR_FULL":
        ds.set_pixel_data(convert_color_space(pixels, "RGB", "YBR_FULL"), "YBR_FULL", 8)
    elif interpretation in ("RGB", "YBR_FULL_422"):
        ds.set_pixel_data(pixels, "RGB", 8)
    else:
        dtype = np.uint8 if bits_stored <= 8 else np.uint16
        ds.set_pixel_data(pixels.astype(dtype), interpretation, bits_stored)
    if not single:
        ds.NumberOfFrames = len(frames)

    if syntax == "rle":
        ds.compress(uid.RLELossless)
    elif syntax == "jpegls":
        ds.compress(uid.JPEGLSLossless)
    elif syntax == "jpeg2000":
        ds.compress(uid.JPEG2000Lossless)
    elif syntax in ("jpeg_baseline", "unsupported"):
        colour = frames.ndim == 4
        encoded = []
        for frame in frames:
            image = cv2.cvtColor(frame, cv2.COLOR_RGB2BGR) if colour else frame
            encoded.append(cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 98])[1].tobytes())
        if syntax == "unsupported":  # MPEG-2 is a real syntax no installed decoder handles
            encoded = [b"\x00\x00\x01\xb3" + bytes(64)]
        ds.PixelData = encapsulate(encoded)
        ds["PixelData"].VR = "OB"
        ds.file_meta.TransferSyntaxUID = uid.MPEG2MPML if syntax == "unsupported" else uid.JPEGBaseline8Bit
        ds.PhotometricInterpretation = "YBR_FULL_422" if colour else "MONOCHROME2"
    elif syntax != "explicit":
        raise ValueError(syntax)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def ultrasound(n_frames: int = 24, size: int = 64, seed: int = 0, width: int | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
    """([T, H, W, 1] uint8 frames, [H, W] bool fan): a fan of changing speckle, static burned-in text outside it,
    and a moving ECG trace below it. `size` is the height, and the width unless `width` is given."""
    rng = np.random.default_rng(seed)
    height, width = size, width or size
    yy, xx = np.mgrid[0:height, 0:width]
    angle = np.arctan2(xx - width / 2, yy + 4)
    radius = np.hypot(xx - width / 2, yy + 4)
    fan = (np.abs(angle) < 0.6) & (radius < height * 0.8)
    frames = np.zeros((n_frames, height, width, 1), np.uint8)
    for t in range(n_frames):
        frame = np.where(fan, rng.integers(60, 220, (height, width)), 0)
        frame[2:6, 2:14] = 250  # static text, top left
        frame[height - 4, (t * 3) % width] = 255  # ECG sweep, one moving dot
        frames[t] = frame[..., None]
    return frames, fan


def write_image(path: str | Path, image: np.ndarray) -> Path:
    """PNG/JPEG via OpenCV; `image` is [H,W] grey or [H,W,3] RGB (uint8 or uint16)."""
    import cv2

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if image.ndim == 3 else image
    assert cv2.imwrite(str(path), data)
    return path


def write_echonet(root: str | Path, n_videos: int = 24, n_frames: int = 16, size: int = 32, seed: int = 0):
    """A small EchoNet-Dynamic folder as published: FileList.csv + Videos/<FileName>.avi (demo clips inside).

    Splits cycle TRAIN, TRAIN, VAL, TEST over the videos sorted by EF, so every partition holds both classes.
    """
    import pandas as pd

    from cineflow.config import DemoConfig, resolve
    from cineflow.data.demo import plan, render
    from cineflow.data.video_io import write_avi

    root = Path(root)
    demo = DemoConfig.from_dict(resolve({"demo": {"n_patients": n_videos, "clips_per_patient": 1,
                                                  "hflip_fraction": 0, "n_frames": n_frames, "size": size,
                                                  "n_corrupt": 0}})["demo"])
    clips = plan(demo, seed, ["NORMAL", "REDUCED"]).sort_values("ef").reset_index(drop=True)
    rows = []
    for i, (_, clip) in enumerate(clips.iterrows()):  # by EF, so each split spans the EF range
        name = f"0X{i:04X}"
        write_avi(root / "Videos" / f"{name}.avi", render(clip, demo), 50)
        rows.append({"FileName": name, "EF": clip["ef"], "ESV": 30.0, "EDV": 80.0, "FrameHeight": size,
                     "FrameWidth": size, "FPS": 50, "NumberOfFrames": n_frames,
                     "Split": ["TRAIN", "TRAIN", "VAL", "TEST"][i % 4]})
    rows.append(dict(rows[-1], FileName="0XMISSING"))  # listed, but its video is not there (as in the release)
    pd.DataFrame(rows).to_csv(root / "FileList.csv", index=False)
    return pd.DataFrame(rows)


# what a scanner writes about the patient into an echo DICOM's header (write_phi_echo), every value findable
PHI = {"PatientName": "Doe^Jonathan", "PatientID": "MRN4821", "PatientBirthDate": "19610314",
       "AccessionNumber": "ACC77301", "InstitutionName": "St Elsewhere Hospital", "ReferringPhysicianName":
       "House^Gregory", "StudyDescription": "Echo Doe Jonathan", "OtherPatientIDs": "NHS9434765919"}
BANNER = (slice(0, 10), slice(0, 36))  # rows, columns of the burned-in banner write_phi_echo draws


def write_phi_echo(path: str | Path, patient: int = 0, seed: int = 0, n_frames: int = 12, burned_in: str = "YES",
                   still: bool = False) -> Path:
    """An echo DICOM as a scanner exports it before de-identification: PHI (the patient's number in the values)
    in its header, a private tag, and the patient's name and number burned in as a banner above the fan
    (BANNER), beside a moving ECG trace (media.ultrasound, 64 x 96). `still`: a single frame."""
    import cv2
    import pydicom

    frames, _ = ultrasound(n_frames, 64, seed, width=96)
    frames = frames[..., 0].copy()
    for frame in frames:
        cv2.putText(frame, f"DOE {patient:02d}", (1, 8), cv2.FONT_HERSHEY_PLAIN, 0.6, 255, 1)
    path = write_dicom(path, frames[:1] if still else frames, patient_id=f"{PHI['PatientID']}{patient:02d}")
    ds = pydicom.dcmread(path)
    for keyword, value in PHI.items():
        if keyword != "PatientID":
            setattr(ds, keyword, value if keyword.endswith("Date") else f"{value}{patient:02d}")
    ds.BurnedInAnnotation = burned_in
    block = ds.private_block(0x0009, "SCANNER PRIVATE", create=True)
    block.add_new(0x01, "LO", f"operator notes for {PHI['PatientName']}{patient:02d}")
    ds.save_as(path, enforce_file_format=True)
    return path
