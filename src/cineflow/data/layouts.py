"""Dataset layouts in a registry: each turns data as published into the internal labels table.

Users point the config at their folder; no conversion script of their own.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Callable

import pandas as pd

from cineflow.config import DataConfig, DemoConfig
from cineflow.data.columns import apply_label_map, apply_label_threshold, join_tables, map_columns
from cineflow.data.deidentify import hashed_groups, read_salt
from cineflow.data.demo import LABEL_COLUMNS, plan
from cineflow.data.labels import PARTITIONS, LabelsError, path_id, validate
from cineflow.data.readers import reader_suffixes
from cineflow.registry import Registry

Layout = Callable[[DataConfig], pd.DataFrame]
LAYOUTS: Registry[Layout] = Registry("layout", "data.layout")


def load_layout(cfg: DataConfig) -> pd.DataFrame:
    """The raw table of `cfg.layout` (validate it with labels.validate)."""
    return LAYOUTS.get(cfg.layout)(cfg)


def table_source(cfg: DataConfig) -> str:
    """The file(s) a layout's table comes from, for messages."""
    return {"table": " + ".join(cfg.tables), "echonet": f"{cfg.root}/FileList.csv",
            "demo": f"{cfg.root}/labels.csv"}.get(cfg.layout, cfg.root)


def labels_table(cfg: DataConfig, demo: DemoConfig | None = None, seed: int = 0) -> pd.DataFrame:
    """The checked labels table of a data section (training's or an external set's): errors name the row and
    the fix. The demo's table is its plan (known before its files are written), with the subgroup columns
    that data.subgroups asks for.

    Args:
        cfg: the data section.
        demo: the demo generator's settings (layout demo only).
        seed: the demo generator's seed.
    """
    if cfg.layout == "demo":
        table = plan(demo, seed, cfg.classes)
        table = table[LABEL_COLUMNS + [c for c in cfg.subgroups if c in table]]
    else:
        table = load_layout(cfg)
    table = validate(table, cfg.classes, cfg.root, source=table_source(cfg), targets=cfg.targets,
                     originals=cfg.augment_original, subgroups=cfg.subgroups)
    if cfg.deidentify.get("enabled"):  # the patient id never leaves this function: its salted hash does
        table = table.assign(group=hashed_groups(table["group"], read_salt(cfg.deidentify["salt_file"])))
    return table


def leakage_warning(cfg: DataConfig) -> str | None:
    """Why patient leakage between partitions cannot be ruled out, when each video is its own group for
    want of a patient id; None when the groups are patients (or, as in EchoNet-Dynamic, one video each)."""
    if cfg.layout == "table" and "group" in cfg.columns and cfg.columns["group"] is None:
        return ("data.columns.group is null: each video is its own group, so videos of one patient may sit in "
                "different partitions and the metrics may be optimistic. Map group to a patient column or "
                "'dicom:PatientID' to rule this out.")
    if cfg.layout == "imagefolder" and not cfg.group_pattern:
        return ("each image is its own group (no data.group_pattern): images of one patient may sit in different "
                "partitions and the metrics may be optimistic. Set data.group_pattern to the patient id in the "
                "file names to rule this out.")
    return None


@LAYOUTS.register
def table(cfg: DataConfig) -> pd.DataFrame:
    """A labels table, or several joined on data.join_on, with data.columns, data.query and data.label_map
    applied: a study's table as published."""
    if not cfg.labels:
        raise LabelsError("data.layout is 'table' but data.labels is not set; point it at your CSV/Parquet table")
    source = table_source(cfg)
    mapped = map_columns(join_tables(cfg.tables, cfg.join_on), cfg, source)
    if cfg.label_threshold is not None:
        return apply_label_threshold(mapped, cfg.label_threshold, cfg.classes, source)
    return apply_label_map(mapped, cfg.label_map, source)


@LAYOUTS.register
def echonet(cfg: DataConfig) -> pd.DataFrame:
    """EchoNet-Dynamic as published: FileList.csv (FileName, EF, ESV, EDV, ..., Split) beside Videos/*.avi.

    EF is kept as the regression target; the label is classes[1] (e.g. REDUCED) when EF < ef_threshold.
    Each video is its own patient in that release, so the group is the file name.
    """
    source = Path(cfg.root) / "FileList.csv"
    if not source.is_file():
        raise LabelsError(f"data.layout is 'echonet' but {source} does not exist; point data.root at the folder "
                          "holding FileList.csv and Videos/")
    table = pd.read_csv(source, dtype={"FileName": str, "Split": str})
    missing = [c for c in ("FileName", "EF") if c not in table]
    if missing:
        raise LabelsError(f"{source}: missing column(s) {missing}; is this EchoNet-Dynamic's FileList.csv?")
    names = table["FileName"].fillna("").str.strip()
    ef = pd.to_numeric(table["EF"], errors="coerce")
    out = pd.DataFrame({
        "path": [f"Videos/{n}" if Path(n).suffix else f"Videos/{n}.avi" for n in names],
        "label": [cfg.classes[1] if value < cfg.ef_threshold else cfg.classes[0] for value in ef],
        "group": [Path(n).stem for n in names],
        "video_id": [Path(n).stem for n in names],
    })
    for column in cfg.targets:
        if column.upper() in table:
            out[column] = pd.to_numeric(table[column.upper()], errors="coerce")
    if "Split" in table:
        out["split"] = table["Split"].fillna("").str.strip().str.lower()
    return out


SPLIT_FOLDERS = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val",
                 "test": "test", "testing": "test"}  # folder names (any case) of a fixed split
SEARCH_DEPTH = 4  # folders below data.root that imagefolder looks through for the class or split folders


@LAYOUTS.register
def imagefolder(cfg: DataConfig) -> pd.DataFrame:
    """root/<class>/<file> (cross-validation over them) or root/{train,val,test}/<class>/<file> (that fixed split;
    any case, validation or valid for val), found wherever they sit below data.root: an archive usually unpacks
    into a folder of its own ("Lung X-Ray Image/train/NORMAL/..."). data.folder names that folder instead.

    Each image is its own group, unless data.group_pattern's first capture group finds a patient id
    in the file name, so that several images of one patient stay together.
    """
    base = Path(cfg.root)
    root = base / cfg.folder if cfg.folder else find_image_root(base, cfg.classes)
    if not root.is_dir():
        raise LabelsError(f"{root} is not a folder; point data.root (and data.folder) at the folder holding the "
                          "class folders or train/val/test")
    tops = split_folders(root) or [("", root)]
    pattern = re.compile(cfg.group_pattern) if cfg.group_pattern else None
    rows = []
    for split, top in tops:
        for folder in subfolders(top):
            if folder.name not in cfg.classes:
                raise LabelsError(f"{folder}: folder '{folder.name}' is not among data.classes {cfg.classes}; "
                                  "add the class to the config or move the folder out of data.root")
            for file in sorted(folder.iterdir()):
                if file.name.startswith(".") or file.suffix.lower() not in reader_suffixes():
                    continue
                video_id = path_id(file.relative_to(root).as_posix())
                rows.append({"path": file.relative_to(base).as_posix(), "label": folder.name, "split": split,
                             "group": _group(file.stem, pattern, file) if pattern else video_id,
                             "video_id": video_id})
    if not rows:
        raise LabelsError(f"no images found under {root}/<class>/ for classes {cfg.classes}")
    return pd.DataFrame(rows)


def subfolders(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def split_folders(folder: Path) -> list[tuple[str, Path]]:
    """[(partition, its folder)] of the fixed split `folder` holds (a train folder and a val or test one), in
    PARTITIONS order; [] when it holds none."""
    found = {}
    for sub in subfolders(folder):
        partition = SPLIT_FOLDERS.get(sub.name.lower())
        if partition:
            if partition in found:
                raise LabelsError(f"{folder}: both '{found[partition].name}' and '{sub.name}' are {partition} "
                                  "folders; keep one")
            found[partition] = sub
    if "train" not in found or len(found) < 2:
        return []
    return [(name, found[name]) for name in PARTITIONS if name in found]


def find_image_root(base: Path, classes: list[str]) -> Path:
    """The shallowest folder at or below `base` (SEARCH_DEPTH levels) that holds train/val/test folders, or
    folders named after classes; a LabelsError when none does, or when two at that depth do."""
    if not base.is_dir():
        raise LabelsError(f"{base} is not a folder; point data.root at the folder holding the images")
    level = [base]
    for _ in range(SEARCH_DEPTH + 1):
        hits = [f for f in level if split_folders(f) or set(classes) & {p.name for p in subfolders(f)}]
        if len(hits) > 1:
            raise LabelsError(f"{base}: {len(hits)} folders hold the class or split folders ("
                              f"{', '.join(str(h.relative_to(base)) for h in hits[:4])}); set data.folder to the one "
                              "to use")
        if hits:
            return hits[0]
        level = [sub for f in level for sub in subfolders(f)]
    names = [p.name for p in subfolders(base)]
    raise LabelsError(f"{base}: no folder within {SEARCH_DEPTH} levels holds class folders {classes} or train and "
                      f"val/test folders of them; the folders in it, {names[:6]}, are not among data.classes: check "
                      "data.classes against the folder names, or set data.folder")


def _group(stem: str, pattern: re.Pattern, file: Path) -> str:
    match = pattern.search(stem)
    if not match:
        raise LabelsError(f"{file}: data.group_pattern '{pattern.pattern}' does not match the file name; "
                          "fix the pattern or the file name")
    return match.group(1) if match.groups() else match.group(0)
