"""The labels table a user brings (path, label, group, [ef], [augment], [video_id]), checked row by row."""

from __future__ import annotations

import zlib
from pathlib import Path

import pandas as pd

REQUIRED = ["path", "label", "group"]
OPTIONAL = ["video_id", "ef", "augment"]


class LabelsError(ValueError):
    """A problem in the labels table: the message names the file, row and fix."""


def read_table(path: str | Path) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise LabelsError(f"labels table {path} not found: set data.labels in the config to your table")
    if path.suffix.lower() == ".parquet":
        return pd.read_parquet(path)
    return pd.read_csv(path, dtype={"path": str, "label": str, "group": str, "augment": str}, keep_default_na=False,
                       na_values={"ef": ["", "NA", "NaN", "nan"]})


def validate(table: pd.DataFrame, classes: list[str], root: str | Path, source: str = "labels table") -> pd.DataFrame:
    """Return the table with `video_id` and `augment` filled; raise LabelsError naming the row and fix.

    Row numbers in messages are 1-based data rows (row 1 is the first line after the header).
    """
    missing = [c for c in REQUIRED if c not in table.columns]
    if missing:
        raise LabelsError(f"{source}: missing column(s) {missing}; required: {REQUIRED}, optional: {OPTIONAL}")
    unknown = [c for c in table.columns if c not in REQUIRED + OPTIONAL]
    if unknown:
        raise LabelsError(f"{source}: unknown column(s) {unknown}; allowed: {REQUIRED + OPTIONAL}. "
                          "Rename or drop them.")
    table = table.copy()
    for column in ["path", "label", "group", "augment", "video_id"]:
        if column in table:
            table[column] = table[column].fillna("").astype(str).str.strip()
    if "video_id" not in table or (table["video_id"] == "").all():
        table["video_id"] = [Path(p).stem for p in table["path"]]
    if "augment" not in table:
        table["augment"] = ""
    root = Path(root).resolve()
    for i, row in enumerate(table.itertuples(index=False), start=1):
        where = f"{source} row {i} (path '{row.path}')"
        if not row.path:
            raise LabelsError(f"{where}: empty path")
        if not (root / row.path).resolve().is_relative_to(root):
            raise LabelsError(f"{where}: path leaves the data root {root}; keep videos under data.root")
        if not row.label:
            raise LabelsError(f"{where}: missing label; give one of {classes} or drop the row")
        if row.label not in classes:
            raise LabelsError(f"{where}: label '{row.label}' is not among data.classes {classes}; "
                              "fix the label or add the class to the config")
        if not row.group:
            raise LabelsError(f"{where}: missing group (patient/scan id); every row needs one so no "
                              "patient crosses partitions")
    duplicated = table["video_id"].duplicated(keep=False)
    if duplicated.any():
        rows = [i + 1 for i in table.index[duplicated]]
        ids = sorted(set(table.loc[duplicated, "video_id"]))
        raise LabelsError(f"{source}: duplicate video_id {ids[:5]} at rows {rows[:10]}; ids must be unique "
                          "(file stems are used when there is no video_id column)")
    if "ef" in table and table["ef"].isna().any():
        i = int(table.index[table["ef"].isna()][0]) + 1
        raise LabelsError(f"{source} row {i}: ef is empty/NaN; fill it or drop the row")
    return table.reset_index(drop=True)


def shard_of(video_id: str, n_shards: int) -> int:
    """Stable shard of a video: adding a video re-caches only its own shard."""
    return zlib.crc32(video_id.encode()) % n_shards
