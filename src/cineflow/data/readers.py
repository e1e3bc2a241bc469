"""Readers in a registry: each turns one file into uint8 frames [T, H, W, 3 (RGB) or 1 (grey)] and its fps.

A reader is chosen by the file's suffix (`cache.reader: auto`) or by name. Still images are
1-frame clips, so X-ray studies run through the same DAG as cine loops.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Callable

import numpy as np

from cineflow.registry import Registry

# (path, grey wanted) -> (frames, fps); a reader may return RGB even when grey is wanted
Reader = Callable[[Path, bool], tuple[np.ndarray, float]]
READERS: Registry[Reader] = Registry("reader", "cache.reader")  # metadata: the file suffixes it reads


class UnreadableVideo(Exception):
    """A file that cannot be used; the message is the reason recorded in quarantine.csv."""


def reader_for(path: str | Path, reader: str = "auto") -> str:
    """Registry name of the reader for `path`: by suffix under `auto`, else `reader` itself."""
    if reader != "auto":
        READERS.get(reader)
        return reader
    if Path(path).is_dir():
        return "frames"
    suffix = Path(path).suffix.lower()
    by_suffix = reader_suffixes()
    if suffix not in by_suffix:
        raise UnreadableVideo(f"no reader for '{suffix}' files (known suffixes: {sorted(by_suffix)}); "
                              "set cache.reader to force one")
    return by_suffix[suffix]


def reader_suffixes() -> dict[str, str]:
    """{file suffix: reader name} of every reader that claims suffixes."""
    return {s: name for name in READERS.names() for s in READERS.meta(name).get("suffixes", ())}


def read_video(path: str | Path, reader: str = "auto", grey: bool = False,
               normalised: dict | None = None, clean: Callable | None = None) -> tuple[np.ndarray, float]:
    """(frames [T, H, W, 3] uint8 RGB, or [T, H, W, 1] when `grey`; fps or 0.0 when unknown).

    Raises UnreadableVideo with the reason. Asking for grey lets a decoder skip the RGB step. `normalised`:
    cache.frame_normalisation, the {mean, std} that a frame folder's float tensors were saved normalised with.
    `clean`: for DICOM, called on the dataset as read, before anything else reads it (de-identification); its
    ValueError is the file's quarantine reason.
    """
    path = Path(path)
    name = reader_for(path, reader)
    if name == "frames":
        if not path.is_dir():
            raise UnreadableVideo("frame folder not found")
    elif not path.is_file():
        raise UnreadableVideo("file not found")
    elif path.stat().st_size == 0:
        raise UnreadableVideo("empty file (0 bytes)")
    if name == "dicom" and clean is not None:
        dataset = read_dicom(path)
        try:
            clean(dataset)
        except ValueError as err:
            raise UnreadableVideo(str(err)) from None
        frames, fps = dicom_frames(dataset, grey)
    elif name == "frames" and normalised is not None:
        frames, fps = read_frame_folder(path, grey, normalised)
    else:
        frames, fps = READERS.get(name)(path, grey)
    if grey and frames.shape[-1] == 3:
        frames = rgb_to_grey(frames)
    elif not grey and frames.shape[-1] == 1:
        frames = np.repeat(frames, 3, axis=-1)
    if len(frames) == 0:
        raise UnreadableVideo(f"no decodable frames ({name} reader): zero frames, a corrupt file or an "
                              "unsupported codec")
    return frames, fps


def rgb_to_grey(frames: np.ndarray) -> np.ndarray:
    import cv2

    n, height, width = frames.shape[:3]
    tall = np.ascontiguousarray(frames).reshape(n * height, width, 3)  # one call for the whole stack
    return cv2.cvtColor(tall, cv2.COLOR_RGB2GRAY).reshape(n, height, width, 1)


@READERS.register(suffixes=(".avi", ".mp4", ".mov", ".m4v", ".mkv", ".wmv"))
def opencv(path: Path, grey: bool = False) -> tuple[np.ndarray, float]:
    """Videos through OpenCV, taking the fastest route per codec (bench/cache.py measures them):
    Motion-JPEG (EchoNet-Dynamic's AVIs) as raw JPEG packets that libjpeg decodes straight to RGB or to
    luma alone; other codecs, when grey is wanted, as the decoder's luma plane through PyAV; else
    OpenCV's own decode to BGR, converted once for the whole stack."""
    import cv2

    if grey and path.suffix.lower() in MPEG_CONTAINERS:  # no Motion-JPEG to expect: no OpenCV probe first
        return pyav(path, grey=True)
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise UnreadableVideo("OpenCV cannot open the file (corrupt or unsupported container)")
    fps = float(capture.get(cv2.CAP_PROP_FPS) or 0.0)
    codec = int(capture.get(cv2.CAP_PROP_FOURCC)).to_bytes(4, "little").decode("ascii", "replace").upper()
    if codec == "MJPG":
        frames = _jpeg_packets(capture, grey)
        capture.release()
        if frames is not None:
            return frames, fps
        capture = cv2.VideoCapture(str(path))  # packets libjpeg cannot take alone: FFmpeg decodes them
    elif grey:
        capture.release()
        return pyav(path, grey=True)
    try:
        return _decoded_frames(capture, grey), fps
    finally:
        capture.release()


def _jpeg_packets(capture, grey: bool) -> np.ndarray | None:
    """Every frame of a Motion-JPEG stream decoded from its raw packets (CAP_PROP_FORMAT -1) by
    cv2.imdecode: no FFmpeg decode and scaling pass, and for grey no chroma at all (JPEG's Y is the
    ITU-R 601 luma OpenCV's colour-to-grey computes). None when this OpenCV hands out no raw packets
    or a packet is no complete JPEG (AVI1 streams that leave out their Huffman tables)."""
    import cv2

    if not capture.set(cv2.CAP_PROP_FORMAT, -1):
        return None
    flag = cv2.IMREAD_GRAYSCALE if grey else cv2.IMREAD_COLOR_RGB
    frames = []
    while True:
        ok, packet = capture.read()
        if not ok:
            break
        frame = cv2.imdecode(packet, flag) if packet is not None and packet.size else None
        if frame is None:
            return None
        frames.append(frame[..., None] if grey else frame)
    return stack_frames(frames) if frames else None


def _decoded_frames(capture, grey: bool) -> np.ndarray:
    """OpenCV's decode: into one BGR array sized by the header's frame count (grown if the header is
    short), then converted in one call; per-frame conversions cost as much as decoding."""
    import cv2

    ok, frame = capture.read()
    if not ok:
        return np.zeros((0, 1, 1, 1 if grey else 3), np.uint8)
    expected = max(1, int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 1))
    video = np.empty((expected,) + frame.shape, np.uint8)
    video[0], n = frame, 1
    while True:
        ok, frame = capture.read(video[n]) if n < len(video) else capture.read()
        if not ok:
            break
        if frame.shape != video.shape[1:]:
            raise UnreadableVideo(f"frame size changes at frame {n}: {video.shape[1:3]} -> {frame.shape[:2]}")
        if n == len(video):
            video = np.concatenate([video, np.empty_like(video)])
        if frame.ctypes.data != video[n].ctypes.data:  # not decoded in place
            video[n] = frame
        n += 1
    height, width = video.shape[1:3]
    tall = video[:n].reshape(n * height, width, 3)  # all frames as one image: one conversion call
    if grey:
        return cv2.cvtColor(tall, cv2.COLOR_BGR2GRAY).reshape(n, height, width, 1)
    return cv2.cvtColor(tall, cv2.COLOR_BGR2RGB, dst=tall).reshape(n, height, width, 3)


# containers of MPEG-family codecs (H.264, HEVC, ...), where a Motion-JPEG stream is rare: grey goes to PyAV at once
MPEG_CONTAINERS = (".mp4", ".m4v", ".mov")
# limited ("TV") range luma 16-235 -> full range 0-255, as a colour decode followed by colour-to-grey gives
_TV_TO_FULL = np.clip(np.round((np.arange(256) - 16) * 255.0 / 219.0), 0, 255).astype(np.uint8)


@READERS.register
def pyav(path: Path, grey: bool = False) -> tuple[np.ndarray, float]:
    """FFmpeg through PyAV: codecs OpenCV's build lacks (set cache.reader: pyav), and the luma route for
    grey caches: the decoder's Y plane as it is (full range) or rescaled from TV range, with no colour
    conversion. FFmpeg's threads help large frames only (bench/cache.py): they are used from 320 x 240."""
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise UnreadableVideo("no video stream in the container")
            stream = container.streams.video[0]
            if stream.codec_context is None:
                raise UnreadableVideo("FFmpeg has no decoder for the video's codec")
            if stream.codec_context.width * stream.codec_context.height >= 320 * 240:
                stream.thread_type = "AUTO"
            fps = float(stream.average_rate or stream.guessed_rate or 0.0)
            if grey:
                return _luma_stack(container.decode(stream), int(stream.frames or 0)), fps
            frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
    except av.FFmpegError as err:
        raise UnreadableVideo(f"FFmpeg cannot decode the file: {err}") from None
    if not frames:
        return np.zeros((0, 1, 1, 3), np.uint8), fps
    return stack_frames(frames), fps


def _luma_stack(decoded, expected: int) -> np.ndarray:
    """[T, H, W, 1] full-range luma of the decoded frames: each Y plane copied once into one array sized by
    the header's frame count (grown if it is short), TV range rescaled by one table lookup over the stack."""
    import cv2

    video, n, tv = None, 0, False
    for frame in decoded:
        name = frame.format.name
        if not (name.startswith(("yuv", "nv12", "nv21")) or name == "gray"):
            y = frame.to_ndarray(format="gray")
        else:
            plane = frame.planes[0]
            y = np.frombuffer(plane, np.uint8).reshape(frame.height, plane.line_size)[:, :frame.width]
            tv = not (name == "gray" or name.startswith("yuvj") or getattr(frame, "color_range", 0) == 2)
        if video is None:
            video = np.empty((max(1, expected),) + y.shape, np.uint8)
        elif y.shape != video.shape[1:]:
            raise UnreadableVideo(f"frame size changes at frame {n}: {video.shape[1:3]} -> {y.shape}")
        if n == len(video):
            video = np.concatenate([video, np.empty_like(video)])
        video[n] = y
        n += 1
    if video is None:
        return np.zeros((0, 1, 1, 1), np.uint8)
    video = video[:n]
    if tv:
        flat = video.reshape(n * video.shape[1], video.shape[2])
        cv2.LUT(flat, _TV_TO_FULL, dst=flat)
    return video[..., None]


def stack_frames(frames: list[np.ndarray]) -> np.ndarray:
    """[T, H, W, C] of decoded frames that must share one size."""
    for n, frame in enumerate(frames):
        if frame.shape != frames[0].shape:
            raise UnreadableVideo(f"frame size changes at frame {n}: {frames[0].shape[:2]} -> {frame.shape[:2]}")
    return np.stack(frames)


# The most pixels a file may claim before it is decoded: a 3 MB PNG can claim 32000 x 32000 and take 25 s and
# 6.7 GB to decode (a decompression bomb). 100 megapixels is ten times a chest X-ray's; a cine loop may hold
# 4 gigasamples (about 8,000 frames of 800 x 600 RGB).
MAX_IMAGE_PIXELS = 100_000_000
MAX_VIDEO_SAMPLES = 4_000_000_000
IMAGE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".bmp": "BMP", ".tif": "TIFF", ".tiff": "TIFF"}


def checked_image_header(path: Path) -> None:
    """Raise UnreadableVideo where an image's content is not the format its suffix names, or where its header
    claims more than MAX_IMAGE_PIXELS: read from the header alone (Pillow's lazy open), before any decoding."""
    import warnings

    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as header:
                kind, (width, height) = header.format, header.size
    except Image.DecompressionBombError as error:
        raise UnreadableVideo(f"refused before decoding: {error}") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise UnreadableVideo(f"not a readable image ({type(error).__name__}: {error})") from None
    expected = IMAGE_FORMATS.get(path.suffix.lower())
    if expected and kind != expected:
        raise UnreadableVideo(f"its content is {kind}, not the {expected} its name says; rename or convert it")
    if width * height > MAX_IMAGE_PIXELS:
        raise UnreadableVideo(f"refused before decoding: the header claims {width} x {height} pixels, over the "
                              f"{MAX_IMAGE_PIXELS:,}-pixel limit (a decompression bomb, or an image to downscale first)")


@READERS.register(suffixes=tuple(IMAGE_FORMATS))
def image(path: Path, grey: bool = False) -> tuple[np.ndarray, float]:
    """A still image as a 1-frame clip (16-bit and alpha handled); fps 0. Its header is checked first
    (checked_image_header)."""
    import cv2

    checked_image_header(path)
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise UnreadableVideo("OpenCV cannot decode the image (corrupt or unsupported format)")
    image = to_uint8(image)
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    elif image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
    else:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    return image[None], 0.0


@READERS.register(suffixes=(".dcm", ".dicom"))
def dicom(path: Path, grey: bool = False) -> tuple[np.ndarray, float]:
    """Single- and multi-frame DICOM, compressed or not, in the photometric interpretations of echo."""
    return dicom_frames(read_dicom(path), grey)


def read_dicom(path: Path):
    """The pydicom dataset of a file, pixels not yet decoded; UnreadableVideo when it is no DICOM."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        return pydicom.dcmread(path)
    except (InvalidDicomError, EOFError, OSError, ValueError, KeyError, TypeError) as err:
        raise UnreadableVideo(f"not a readable DICOM file ({type(err).__name__}: {err})") from None


def dicom_frames(ds, grey: bool = False) -> tuple[np.ndarray, float]:
    """(frames, fps) decoded from a dataset read by read_dicom (the dicom reader's work)."""
    from pydicom.pixels import apply_color_lut

    if "PixelData" not in ds:
        raise UnreadableVideo("DICOM file has no pixel data (a report or structured document?)")
    claimed = (int(ds.get("NumberOfFrames", 1) or 1) * int(ds.get("Rows", 0) or 0) * int(ds.get("Columns", 0) or 0)
               * int(ds.get("SamplesPerPixel", 1) or 1))
    if claimed > MAX_VIDEO_SAMPLES:
        raise UnreadableVideo(f"refused before decoding: the header claims {claimed:,} samples (frames x rows x "
                              f"columns x samples), over the {MAX_VIDEO_SAMPLES:,} limit")
    syntax = ds.file_meta.get("TransferSyntaxUID")
    interpretation = str(ds.get("PhotometricInterpretation", "MONOCHROME2"))
    luma = grey and interpretation.startswith("YBR")  # Y is the grey wanted: no YBR -> RGB -> grey
    try:
        pixels = _dicom_pixels(ds, syntax, as_rgb=not luma)  # decompresses; YBR comes back as RGB unless luma
    except Exception as err:
        name = getattr(syntax, "name", syntax)
        raise UnreadableVideo(f"cannot decode transfer syntax '{name}' ({syntax}): {err}. Install the "
                              "decoders in pyproject.toml (pylibjpeg-libjpeg, pylibjpeg-openjpeg, "
                              "pylibjpeg-rle, pyjpegls)") from None
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    samples = int(ds.get("SamplesPerPixel", 1))
    if frames == 1:
        pixels = pixels[None]
    if luma:
        pixels = to_uint8(pixels[..., :1], bits=int(ds.get("BitsStored", 8)))
    elif interpretation == "PALETTE COLOR":
        pixels = to_uint8(apply_color_lut(pixels, ds), bits=int(ds.get("RedPaletteColorLookupTableDescriptor",
                                                                        [0, 0, 8])[2]))
    elif samples == 1:
        pixels = to_uint8(pixels, bits=int(ds.get("BitsStored", 8)))
        if interpretation == "MONOCHROME1":  # 0 is white there
            pixels = 255 - pixels
        pixels = pixels[..., None] if grey else np.repeat(pixels[..., None], 3, axis=-1)
    else:
        pixels = to_uint8(pixels, bits=int(ds.get("BitsStored", 8)))
    return np.ascontiguousarray(pixels), dicom_fps(ds)


# pydicom's fastest installed decoder plugin per transfer syntax (bench/cache.py: Pillow decodes JPEG
# baseline about twice as fast as pylibjpeg, five times as fast when the YBR -> RGB step is skipped)
FASTEST_DICOM_PLUGIN = {"1.2.840.10008.1.2.4.50": "pillow", "1.2.840.10008.1.2.4.51": "pillow"}


def _dicom_pixels(ds, syntax, as_rgb: bool) -> np.ndarray:
    """Pixel data through pydicom's fastest plugin for its transfer syntax, else pydicom's own choice."""
    from pydicom.pixels import pixel_array

    plugin = FASTEST_DICOM_PLUGIN.get(str(syntax))
    if plugin:
        try:
            return pixel_array(ds, decoding_plugin=plugin, as_rgb=as_rgb)
        except (ImportError, RuntimeError, ValueError):  # the plugin is not installed here
            pass
    return pixel_array(ds, as_rgb=as_rgb)


def dicom_fps(ds) -> float:
    """Frame rate from CineRate, RecommendedDisplayFrameRate or FrameTime (ms); 0.0 when absent."""
    for keyword in ("CineRate", "RecommendedDisplayFrameRate"):
        value = ds.get(keyword)
        if value:
            return float(value)
    frame_time = ds.get("FrameTime")
    if frame_time:
        return 1000.0 / float(frame_time)
    vector = ds.get("FrameTimeVector")
    if vector and len(vector) > 1:
        return 1000.0 / float(np.mean([float(v) for v in vector[1:]]))
    return 0.0


def to_uint8(pixels: np.ndarray, bits: int | None = None) -> np.ndarray:
    """Scale integer pixels of `bits` significant bits (default: the dtype's) to 0-255."""
    if pixels.dtype == np.uint8:
        return pixels
    if bits is None:
        bits = 16 if pixels.dtype.kind in "ui" else 0
    if bits and bits <= 8 and pixels.dtype.kind in "ui":
        return np.clip(pixels, 0, 255).astype(np.uint8)
    if bits and pixels.dtype.kind in "ui":
        return np.clip(pixels.astype(np.float32) * (255.0 / (2**bits - 1)), 0, 255).round().astype(np.uint8)
    lo, hi = float(pixels.min()), float(pixels.max())
    return ((pixels.astype(np.float32) - lo) * (255.0 / max(hi - lo, 1e-6))).round().astype(np.uint8)


FRAME_SUFFIXES = (".pt", ".pth", ".png", ".jpg", ".jpeg")


@READERS.register
def frames(path: Path, grey: bool = False) -> tuple[np.ndarray, float]:
    """A folder of per-frame files as one video, in natural order of the names (frame_2 before frame_10):
    .pt/.pth tensors of shape (C, H, W) or (H, W), uint8 or float in [0, 1], or PNG/JPEG images. Frames carry
    no rate: fps 0, so cache.source_fps gives it."""
    return read_frame_folder(path, grey, None)


def read_frame_folder(path: Path, grey: bool, normalised: dict | None) -> tuple[np.ndarray, float]:
    """The frames reader, with float tensors saved normalised by `normalised` ({mean, std}) undone."""
    files = sorted((f for f in path.iterdir() if f.suffix.lower() in FRAME_SUFFIXES and not f.name.startswith(".")),
                   key=natural_key)
    if not files:
        raise UnreadableVideo(f"empty frame folder: no {'/'.join(FRAME_SUFFIXES)} files")
    stack = [_tensor_frame(f, normalised) if f.suffix.lower() in (".pt", ".pth") else image(f)[0][0] for f in files]
    shapes = sorted({frame.shape for frame in stack})
    if len(shapes) > 1:
        first = next(f.name for f, frame in zip(files, stack) if frame.shape != stack[0].shape)
        raise UnreadableVideo(f"frame folder mixes frame sizes {[s[:2] for s in shapes]} ({files[0].name} is "
                              f"{stack[0].shape[:2]}, {first} is not); every frame must have one size")
    return np.stack(stack), 0.0


def _tensor_frame(file: Path, normalised: dict | None = None) -> np.ndarray:
    """[H, W, 1 or 3] uint8 of one saved frame tensor; float tensors saved normalised by `normalised` ({mean, std}
    per channel, on the [0, 1] scale) are brought back to [0, 1] first."""
    import torch

    try:
        value = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as err:
        raise UnreadableVideo(f"{file.name}: not a loadable tensor file ({type(err).__name__}: {err})") from None
    if not isinstance(value, torch.Tensor):
        raise UnreadableVideo(f"{file.name}: holds a {type(value).__name__}, not a tensor")
    if value.ndim == 2:
        value = value[None]
    if value.ndim != 3 or value.shape[0] not in (1, 3):
        raise UnreadableVideo(f"{file.name}: tensor of shape {tuple(value.shape)}; a frame is (C, H, W) with C 1 or "
                              "3, or (H, W)")
    if value.dtype == torch.uint8:
        array = value.numpy()
    elif value.is_floating_point():
        value = value.float() if normalised is None else denormalised(value.float(), normalised, file)
        lo, hi = float(value.min()), float(value.max())
        if lo < -EDGE or hi > 1 + EDGE:
            hint = ("cache.frame_normalisation's mean and std are not the ones they were saved with" if normalised
                    else "if they were saved normalised, give their mean and std in cache.frame_normalisation")
            raise UnreadableVideo(f"{file.name}: float values from {lo:.3g} to {hi:.3g}, outside [0, 1]; {hint}")
        array = (value.clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    else:
        raise UnreadableVideo(f"{file.name}: tensor of dtype {value.dtype}; a frame is uint8 or float in [0, 1]")
    return np.ascontiguousarray(array.transpose(1, 2, 0))


EDGE = 0.01  # rounding beyond [0, 1] that a float frame may show (clipped); more means the wrong scale


def denormalised(value, normalised: dict, file: Path):
    """x * std + mean per channel: a frame tensor saved as (x - mean) / std back on the [0, 1] scale."""
    import torch

    mean, std = (torch.tensor(normalised[k], dtype=torch.float32)[:, None, None] for k in ("mean", "std"))
    if len(mean) != value.shape[0]:
        raise UnreadableVideo(f"{file.name}: {value.shape[0]} channel(s) but cache.frame_normalisation gives "
                              f"{len(mean)} mean/std values; give one per channel")
    return value * std + mean


def natural_key(path: Path) -> list:
    """Sort key that orders the numbers in a name by value: frame_2 before frame_10."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]
