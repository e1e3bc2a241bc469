"""Readers: video containers, DICOM (each transfer syntax and photometric interpretation), still images."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from cineflow.data import readers
from cineflow.data.readers import READERS, UnreadableVideo, read_video, reader_for, rgb_to_grey
from cineflow.data.video_io import write_avi, write_mp4
from helpers.media import gradient_clip, write_dicom, write_image

RGB = gradient_clip(6, 32, rgb=True)
GREY = gradient_clip(6, 32, rgb=False)


def test_registry_picks_by_suffix_and_by_name(tmp_path):
    assert reader_for("a/b.AVI") == "opencv" and reader_for("x.dcm") == "dicom" and reader_for("x.png") == "image"
    assert reader_for("x.whatever", "pyav") == "pyav"
    assert {"opencv", "pyav", "dicom", "image"} <= set(READERS)
    with pytest.raises(UnreadableVideo, match="no reader for '.xyz'"):
        read_video(tmp_path / "clip.xyz")


@pytest.mark.parametrize("reader", ["opencv", "pyav"])
def test_avi_and_mp4_through_opencv_and_pyav(tmp_path, reader):
    avi = write_avi(tmp_path / "clip.avi", GREY, 20)
    mp4 = write_mp4(tmp_path / "clip.mp4", RGB, 25)
    for path, expected, fps in ((avi, np.repeat(GREY[..., None], 3, -1), 20), (mp4, RGB, 25)):
        frames, got_fps = read_video(path, reader)
        assert frames.shape == expected.shape and frames.dtype == np.uint8
        assert got_fps == pytest.approx(fps)
        assert np.abs(frames.astype(int) - expected).mean() < 12  # lossy codecs


@pytest.mark.parametrize("syntax", ["explicit", "rle", "jpegls", "jpeg2000", "jpeg_baseline"])
def test_dicom_transfer_syntaxes_multiframe_grey(tmp_path, syntax):
    path = write_dicom(tmp_path / f"{syntax}.dcm", GREY, "MONOCHROME2", syntax)
    frames, fps = read_video(path)
    assert frames.shape == (6, 32, 32, 3) and fps == 25.0
    tolerance = 3 if syntax == "jpeg_baseline" else 0
    assert np.abs(frames[..., 0].astype(int) - GREY).max() <= tolerance


@pytest.mark.parametrize("interpretation,syntax", [("RGB", "explicit"), ("RGB", "rle"), ("YBR_FULL", "explicit"),
                                                   ("YBR_FULL_422", "jpeg_baseline"), ("RGB", "jpeg2000")])
def test_dicom_colour_interpretations_come_back_as_rgb(tmp_path, interpretation, syntax):
    path = write_dicom(tmp_path / "colour.dcm", RGB, interpretation, syntax)
    frames, _ = read_video(path)
    assert frames.shape == RGB.shape
    # lossy JPEG and YBR rounding stay small; a channel mix-up would be off by ~100
    assert np.abs(frames.astype(int) - RGB).mean() < 4


def test_dicom_palette_colour_and_monochrome1_and_16_bit(tmp_path):
    frames, _ = read_video(write_dicom(tmp_path / "palette.dcm", GREY, "PALETTE COLOR"))
    assert np.array_equal(frames[..., 0], GREY) and np.array_equal(frames[..., 1], 255 - GREY)
    assert (frames[..., 2] == 128).all()
    frames, _ = read_video(write_dicom(tmp_path / "mono1.dcm", GREY, "MONOCHROME1"))
    assert np.array_equal(frames[..., 0], 255 - GREY)
    twelve = (GREY.astype(np.int64) * 4095 // 255).astype(np.uint16)
    frames, _ = read_video(write_dicom(tmp_path / "mono12.dcm", twelve, "MONOCHROME2", bits_stored=12))
    assert np.abs(frames[..., 0].astype(int) - GREY).max() <= 1


@pytest.mark.parametrize("tag,fps", [("CineRate", 30.0), ("RecommendedDisplayFrameRate", 50.0), ("FrameTime", 40.0),
                                     (None, 0.0)])
def test_dicom_frame_rate_from_tags(tmp_path, tag, fps):
    _, got = read_video(write_dicom(tmp_path / "x.dcm", GREY, fps_tag=tag, fps=fps or 1))
    assert got == pytest.approx(fps)


def test_single_frame_dicom_and_images_are_one_frame_clips(tmp_path):
    frames, _ = read_video(write_dicom(tmp_path / "xray.dcm", GREY[:1]))
    assert frames.shape == (1, 32, 32, 3)
    for name, image in (("grey.png", GREY[0]), ("rgb.png", RGB[0]), ("photo.jpg", RGB[0]),
                        ("sixteen.png", GREY[0].astype(np.uint16) * 257)):
        frames, fps = read_video(write_image(tmp_path / name, image))
        assert frames.shape == (1, 32, 32, 3) and frames.dtype == np.uint8 and fps == 0.0
        expected = np.repeat(GREY[0][..., None], 3, -1) if image.ndim == 2 else RGB[0]
        assert np.abs(frames[0].astype(int) - expected).mean() < 4, name


def zero_frames(path):
    import cv2

    cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, (32, 32)).release()  # header, no frames
    return path


def put(path, data: bytes):
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("make,reason", [
    (lambda d: d / "missing.avi", "file not found"),
    (lambda d: put(d / "empty.avi", b""), "empty file"),
    (lambda d: zero_frames(d / "zero.avi"), "no decodable frames \\(opencv reader\\): zero frames"),
    (lambda d: put(d / "junk.avi", b"RIFF" + bytes(300)), "corrupt"),
    (lambda d: put(d / "junk.dcm", b"not dicom" * 40), "not a readable DICOM"),
    (lambda d: put(d / "junk.png", b"\x89PNG" + bytes(40)), "not a readable image"),
    (lambda d: write_dicom(d / "mpeg2.dcm", GREY, syntax="unsupported"), "cannot decode transfer syntax"),
])
def test_unusable_files_raise_with_the_reason(tmp_path, make, reason):
    with pytest.raises(UnreadableVideo, match=reason):
        read_video(make(tmp_path))


def write_xvid(path, frames, fps=25):
    """MPEG-4 Part 2 in AVI (what XVID writes; OpenCV tags it FMP4)."""
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"XVID"), fps, frames.shape[1:3][::-1])
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def write_mov(path, frames, fps=25):
    import av

    with av.open(str(path), "w", format="mov") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        for frame in frames:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        out.mux(stream.encode())
    return path


@pytest.mark.parametrize("reader", ["opencv", "pyav"])
@pytest.mark.parametrize("writer,name", [(write_xvid, "xvid.avi"), (write_mov, "h264.mov")])
def test_xvid_avi_and_h264_mov(tmp_path, reader, writer, name):
    frames, fps = read_video(writer(tmp_path / name, RGB), reader)
    assert frames.shape == RGB.shape and fps == pytest.approx(25)
    assert np.abs(frames.astype(int) - RGB).mean() < 12


@pytest.mark.parametrize("reader", ["opencv", "pyav"])
def test_unsupported_codec_is_unreadable(tmp_path, reader):
    path = write_avi(tmp_path / "clip.avi", RGB, 25)
    path.write_bytes(path.read_bytes().replace(b"MJPG", b"ZZZZ"))  # a codec no decoder knows
    with pytest.raises(UnreadableVideo, match="no decodable frames|cannot open|cannot decode|no decoder"):
        read_video(path, reader)


def test_grey_takes_the_luma_routes_and_matches_colour_then_grey(tmp_path, monkeypatch):
    """Grey caches skip the colour decode: Motion-JPEG through its raw packets (libjpeg's luma), other
    codecs through the decoder's Y plane (PyAV), DICOM YBR through its Y channel (Pillow plugin). Each
    gives what decoding to RGB and converting gives, within the codecs' rounding (on echo-like content:
    grey with a slight tint; saturated colours clip in RGB, where luma does not)."""
    echo = np.clip(GREY[..., None].astype(int) + np.array([8, 0, -6]), 0, 255).astype(np.uint8)
    files = {"mjpg": write_avi(tmp_path / "clip.avi", echo, 20), "h264": write_mp4(tmp_path / "clip.mp4", echo, 25),
             "dicom": write_dicom(tmp_path / "clip.dcm", echo, "YBR_FULL_422", syntax="jpeg_baseline")}
    expected = {name: rgb_to_grey(read_video(path)[0]).astype(int) for name, path in files.items()}

    def no_colour_decode(*args, **kwargs):
        raise AssertionError("the colour decode ran")

    monkeypatch.setattr(readers, "_decoded_frames", no_colour_decode)
    for name, path in files.items():
        grey, _ = read_video(path, grey=True)
        assert grey.shape == expected[name].shape and grey.shape[-1] == 1, name
        assert np.abs(grey.astype(int) - expected[name]).max() <= 3, name
    # colour Motion-JPEG comes from the raw packets too, as RGB
    rgb, _ = read_video(files["mjpg"])
    assert rgb.shape == echo.shape and np.abs(rgb.astype(int) - echo).mean() < 4


def write_frames(folder, frames, kind: str = "pt_float"):
    """Per-frame files frame_<i>: (C, H, W) float in [0, 1] or uint8 tensors, (H, W) tensors, or PNGs."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, frame in enumerate(frames):
        if kind == "png":
            write_image(folder / f"frame_{i}.png", frame)
            continue
        tensor = torch.from_numpy(np.ascontiguousarray(frame.transpose(2, 0, 1) if frame.ndim == 3 else frame))
        torch.save(tensor.float() / 255 if kind == "pt_float" else tensor, folder / f"frame_{i}.pt")
    return folder


@pytest.mark.parametrize("kind, frames, expected", [
    ("pt_float", gradient_clip(12, 16), gradient_clip(12, 16)),
    ("pt_uint8", gradient_clip(12, 16), gradient_clip(12, 16)),
    ("pt_uint8", gradient_clip(12, 16, rgb=False), np.repeat(gradient_clip(12, 16, rgb=False)[..., None], 3, -1)),
    ("png", gradient_clip(12, 16), gradient_clip(12, 16)),
])
def test_frame_folders_read_in_natural_order(tmp_path, kind, frames, expected):
    folder = write_frames(tmp_path / "video_orig", frames, kind)
    assert reader_for(folder) == "frames"
    got, fps = read_video(folder)
    assert fps == 0.0 and got.shape == expected.shape
    assert np.array_equal(got, expected)  # frame_10 after frame_9, values exact (float * 255 rounded back)
    grey, _ = read_video(folder, grey=True)
    assert grey.shape == expected.shape[:3] + (1,)


IMAGENET = {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}


def test_frame_tensors_saved_normalised_are_read_back_with_their_statistics(tmp_path):
    """The ANN study saves (3, 224, 224) frames already normalised: with their mean/std the cache undoes it."""
    clip = gradient_clip(5, 16)
    folder = tmp_path / "v_orig"
    folder.mkdir()
    mean, std = (torch.tensor(IMAGENET[k])[:, None, None] for k in ("mean", "std"))
    for i, frame in enumerate(clip):
        x = torch.from_numpy(np.ascontiguousarray(frame.transpose(2, 0, 1))).float() / 255
        torch.save((x - mean) / std, folder / f"frame_{i}.pt")
    got, _ = read_video(folder, normalised=IMAGENET)
    assert np.abs(got.astype(int) - clip).max() <= 1  # float32 rounding: at most one grey level
    with pytest.raises(UnreadableVideo, match="if they were saved normalised, give their mean and std"):
        read_video(folder)
    with pytest.raises(UnreadableVideo, match="are not the ones they were saved with"):
        read_video(folder, normalised={"mean": [0.0] * 3, "std": [1.0] * 3})
    with pytest.raises(UnreadableVideo, match="3 channel\\(s\\) but cache.frame_normalisation gives 1"):
        read_video(folder, normalised={"mean": [0.5], "std": [0.25]})


@pytest.mark.parametrize("make, reason", [
    (lambda d: d.mkdir(), "empty frame folder"),
    (lambda d: write_frames(d, [np.zeros((8, 8, 3), np.uint8), np.zeros((9, 8, 3), np.uint8)], "pt_uint8"),
     "frame folder mixes frame sizes"),
    (lambda d: (d.mkdir(), torch.save({"frame": 1}, d / "frame_0.pt")), "frame_0.pt: holds a dict, not a tensor"),
    (lambda d: (d.mkdir(), torch.save(torch.full((3, 4, 4), 2.5), d / "frame_0.pt")),
     "frame_0.pt: float values from 2.5 to 2.5, outside [0, 1]; if they were saved normalised, give their mean "
     "and std in cache.frame_normalisation"),
    (lambda d: (d.mkdir(), torch.save(torch.zeros(2, 3, 4, 4), d / "f.pt")),
     "f.pt: tensor of shape (2, 3, 4, 4)"),
])
def test_unusable_frame_folders_raise_with_the_reason(tmp_path, make, reason):
    make(tmp_path / "clip")
    with pytest.raises(UnreadableVideo, match=re.escape(reason)):
        read_video(tmp_path / "clip")
    with pytest.raises(UnreadableVideo, match="frame folder not found"):
        read_video(tmp_path / "absent", "frames")


def png_claiming(path, width: int, height: int) -> None:
    """A tiny PNG file whose header claims width x height (one empty IDAT): what a decompression bomb's header
    looks like, without its megabytes."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0")) +
                     chunk(b"IEND", b""))


def test_an_image_is_checked_by_its_header_before_it_is_decoded(tmp_path, monkeypatch):
    """Issue 45, case 12: a PNG claiming 32000 x 32000 is refused from its header (OpenCV never decodes it), and a
    file whose content is not the format its name says is refused too."""
    import cv2

    from cineflow.data.readers import UnreadableVideo, image

    png_claiming(tmp_path / "bomb.png", 32000, 32000)
    monkeypatch.setattr(cv2, "imread", lambda *a: (_ for _ in ()).throw(AssertionError("decoded")))
    with pytest.raises(UnreadableVideo, match="refused before decoding"):
        image(tmp_path / "bomb.png")
    monkeypatch.undo()
    cv2.imwrite(str(tmp_path / "photo.jpg"), np.zeros((8, 8, 3), np.uint8))
    (tmp_path / "photo.png").write_bytes((tmp_path / "photo.jpg").read_bytes())
    with pytest.raises(UnreadableVideo, match="its content is JPEG, not the PNG its name says"):
        image(tmp_path / "photo.png")
    assert image(tmp_path / "photo.jpg")[0].shape == (1, 8, 8, 3)
