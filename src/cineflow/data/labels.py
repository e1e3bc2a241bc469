"""The internal labels table every layout produces, checked row by row before anything runs.

Columns: path, label, group (required); video_id, augment, split, numeric targets and subgroup columns
(optional; data.targets and data.subgroups name them).
"""

from __future__ import annotations

import codecs
import csv
import io
import sys
import zlib
from pathlib import Path, PurePosixPath

import pandas as pd

from cineflow.config import NAME_MAX, SplitConfig, schema_default, unsafe_name

REQUIRED = ["path", "label", "group"]
OPTIONAL = ["video_id", "augment", "split"]
FIELDS = REQUIRED + OPTIONAL
PARTITIONS = ["train", "val", "test"]
MISSING_SUBGROUP = "missing"  # the value of an empty subgroup cell


class LabelsError(ValueError):
    """A problem in the labels table: the message names the file, row and fix."""


TEXT_ENCODINGS = ("utf-8-sig", "cp1252")  # UTF-8 with or without a BOM, then what Excel on Windows saves
# Excel's "Unicode Text" (.txt) is UTF-16 with a byte-order mark and tabs; no cp1252 text starts with these
UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
SEPARATORS = {",": "comma", ";": "semicolon", "\t": "tab", "|": "bar"}
EXCEL_SUFFIXES = (".xlsx", ".xlsm")
TABLE_SUFFIXES = (".csv", ".tsv", ".txt", *EXCEL_SUFFIXES, ".parquet")
NA_VALUES = ["", "NA", "NaN", "nan"]


def read_table(path: str | Path) -> pd.DataFrame:
    """A labels table as clinicians save it, every cell as text (ids such as 007 stay 007, and labels 0/1 are
    looked up in data.label_map as written), header cells trimmed.

    CSV or TSV in UTF-8 (a BOM is fine), cp1252 (Excel's "CSV" on Windows) or UTF-16 with a BOM (Excel's
    "Unicode Text"), its separator found from its first
    lines (comma, semicolon, tab or bar); Excel workbooks (.xlsx, the first sheet); Parquet.
    """
    path = Path(path)
    if not path.is_file():
        raise LabelsError(f"labels table {path} not found: set data.labels in the config to your table")
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        table = pd.read_parquet(path)
    elif suffix in EXCEL_SUFFIXES:
        table = pd.read_excel(path, dtype=str, keep_default_na=False, na_values=NA_VALUES, engine="openpyxl")
    else:
        text, encoding = decoded(path)
        separator = "\t" if suffix == ".tsv" else sniff_separator(text)
        table = pd.read_csv(io.StringIO(text), sep=separator, dtype=str, keep_default_na=False, na_values=NA_VALUES)
        if encoding != TEXT_ENCODINGS[0]:
            print(f"{path}: read as {encoding} (not UTF-8)", file=sys.stderr)
    table.columns = [str(c).strip() for c in table.columns]
    if len(table.columns) == 1:
        header = table.columns[0]
        inside = [name for sep, name in SEPARATORS.items() if sep in header]
        if inside:
            raise LabelsError(f"{path}: the header reads as one column ('{header[:80]}'), which holds a "
                              f"{' and a '.join(inside)}; save the table with one separator throughout (comma, "
                              "semicolon or tab), or as .xlsx")
    return table


def decoded(path: Path) -> tuple[str, str]:
    """(text, encoding) of a text table: the first of TEXT_ENCODINGS that decodes it, else a LabelsError naming
    the byte that fits none and the fix."""
    data = path.read_bytes()
    if data.startswith(UTF16_BOMS):
        try:
            return data.decode("utf-16"), "utf-16"
        except UnicodeDecodeError as err:
            raise LabelsError(f"{path}: starts with a UTF-16 byte-order mark but is not UTF-16 ({err.reason} at "
                              f"offset {err.start}); save it again as 'Unicode Text' or 'CSV UTF-8'") from None
    for encoding in TEXT_ENCODINGS:
        try:
            return data.decode(encoding), encoding
        except UnicodeDecodeError as err:
            failure = err
    raise LabelsError(f"{path}: not UTF-8 and not cp1252 (byte 0x{data[failure.start]:02x} at offset "
                      f"{failure.start} fits neither); save it as 'CSV UTF-8' (Excel: Save As > CSV UTF-8) or as .xlsx")


def sniff_separator(text: str) -> str:
    """The separator of a text table, from its first lines: the one of SEPARATORS that splits the header and
    every sampled line into the same number of cells (more than one); a comma when none does."""
    lines = [line for line in text.splitlines()[:20] if line.strip()]
    try:
        return csv.Sniffer().sniff("\n".join(lines), delimiters="".join(SEPARATORS)).delimiter
    except csv.Error:
        return ","


def validate(table: pd.DataFrame, classes: list[str], root: str | Path, source: str = "labels table",
             targets: list[str] | tuple[str, ...] | None = None, originals: list[str] | tuple[str, ...] | None = None,
             subgroups: list[str] | tuple[str, ...] = ()) -> pd.DataFrame:
    """Return the table with `video_id`, `augment` and `split` filled; raise LabelsError naming the row and fix.

    Row numbers in messages are 1-based data rows (row 1 is the first line after the header).
    `targets` are the numeric columns the table may carry (regression targets such as ef). Augment tags
    in `originals` become "" (an original video); any other tag marks an augmented copy.

    Args:
        table: the raw table of a layout (path, label, group and optional columns).
        classes: data.classes.
        root: data.root; every path must stay under it.
        source: the table's file, for messages.
        targets: the numeric columns the table may carry; None: data.targets' default.
        originals: data.augment_original, the tags (any case) of original videos; None: its default.
        subgroups: data.subgroups, text columns the results are split by (an empty cell is "missing").
    """
    targets = list(schema_default("data", "targets") if targets is None else targets)
    originals = schema_default("data", "augment_original") if originals is None else originals
    subgroups = list(subgroups)
    check_columns(table, source, targets, subgroups)
    table = filled(table, originals, subgroups)
    root = Path(root).resolve()
    for i, row in enumerate(table.itertuples(index=False), start=1):
        check_row(row, f"{source} row {i} (path '{row.path}')", classes, root)
    duplicated = table["video_id"].duplicated(keep=False)
    if duplicated.any():
        rows = [i + 1 for i in table.index[duplicated]]
        ids = sorted(set(table.loc[duplicated, "video_id"]))
        raise LabelsError(f"{source}: duplicate video_id {ids[:5]} at rows {rows[:10]}; ids must be unique "
                          "(without a video_id column ids are the file stems, or the paths where stems repeat)")
    for column in targets:
        if column in table:
            table[column] = numeric(table, column, source)
    _check_fixed_split(table, source)
    return table


def check_columns(table: pd.DataFrame, source: str, targets: list[str], subgroups: list[str]) -> None:
    """The required columns are there, the subgroup columns named exist, and no column is unknown."""
    allowed = REQUIRED + OPTIONAL + targets + subgroups
    missing = [c for c in REQUIRED if c not in table.columns]
    if missing:
        raise LabelsError(f"{source}: missing column(s) {missing}; required: {REQUIRED}, optional: "
                          f"{OPTIONAL + targets + subgroups}")
    absent = [c for c in subgroups if c not in table.columns]
    if absent:
        raise LabelsError(f"{source}: data.subgroups names column(s) {absent}, which the table does not have; its "
                          f"columns are {list(table.columns)}. Add them, map them in data.columns, or remove them "
                          "from data.subgroups.")
    unknown = [c for c in table.columns if c not in allowed]
    if unknown:
        raise LabelsError(f"{source}: unknown column(s) {unknown}; allowed: {allowed}. Rename or drop them, "
                          "list numeric target columns in data.targets, or subgroup columns in data.subgroups.")


def filled(table: pd.DataFrame, originals, subgroups: list[str]) -> pd.DataFrame:
    """A copy with text cells stripped, `video_id` (the file stem where absent), `augment` ("" for the tags in
    `originals`) and `split` (lower case) filled, and empty subgroup cells "missing"."""
    table = table.reset_index(drop=True).copy()
    for column in subgroups:
        table[column] = table[column].fillna("").astype(str).str.strip().replace("", MISSING_SUBGROUP)
    for column in REQUIRED + OPTIONAL:
        if column in table:
            table[column] = table[column].fillna("").astype(str).str.strip()
    if "video_id" not in table or (table["video_id"] == "").all():
        table["video_id"] = video_ids(table["path"])
    for column in ("augment", "split"):
        if column not in table:
            table[column] = ""
    table["split"] = table["split"].str.lower()
    original = table["augment"].str.lower().isin([tag.lower() for tag in originals])
    table["augment"] = table["augment"].where(~original, "")
    return table


def video_ids(paths) -> list[str]:
    """Ids of videos a table or folder gives no id for: the file stems, unique as most archives' are; where stems
    repeat (DICOM exports name files IM_0001.dcm in every study folder, Kaggle archives repeat names across split
    folders), every id is the path relative to data.root without its suffix, folders joined by '__'
    (Study 1/IM_0001.dcm -> 'Study 1__IM_0001'): unique, the same on every run, and a safe file name."""
    paths = [str(p).replace("\\", "/") for p in paths]
    stems = [PurePosixPath(p).stem for p in paths]
    if len(set(stems)) == len(stems):
        return stems
    return [path_id(p) for p in paths]


def path_id(path: str) -> str:
    """The id of a video from its relative path (see video_ids): its folders and stem joined by '__', with what
    could not name a file replaced; over NAME_MAX characters, its end with a hash of the whole in front."""
    parts = [part for part in PurePosixPath(path).with_suffix("").parts if part not in ("", ".", "/")]
    name = "__".join(parts).replace("..", "_").lstrip(".")
    name = "".join(ch if ch.isprintable() else "_" for ch in name) or "video"
    if len(name) > NAME_MAX:
        digest = f"{zlib.crc32(path.encode()):08x}"
        name = digest + "__" + name[-(NAME_MAX - len(digest) - 2):]
    return name


def check_row(row, where: str, classes: list[str], root: Path) -> None:
    """One filled row (an itertuples row): a path under `root`, a known label, a group, a known split, a safe id."""
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
    if row.split and row.split not in PARTITIONS:
        raise LabelsError(f"{where}: split '{row.split}' is not one of {PARTITIONS}; fix it or leave it empty")
    if not row.video_id:
        raise LabelsError(f"{where}: empty video_id; fill it or drop the video_id column")
    reason = unsafe_name(row.video_id)
    if reason:
        raise LabelsError(f"{where}: video_id '{row.video_id:.60}' cannot name files: {reason}. Ids become "
                          "file names under results/; use letters, digits, spaces, '-' or '_'")


def numeric(table: pd.DataFrame, column: str, source: str) -> pd.Series:
    """The target `column` as floats; a LabelsError naming the first row that is empty or not a number."""
    values = table[column]
    if not pd.api.types.is_numeric_dtype(values):  # text: 35,5 from a table saved in a European locale is 35.5
        text = values.astype(str).str.strip()
        values = text.where(~text.str.fullmatch(r"[-+]?\d+,\d+"), text.str.replace(",", "."))
    values = pd.to_numeric(values, errors="coerce")
    if values.isna().any():
        i = int(table.index[values.isna()][0]) + 1
        raise LabelsError(f"{source} row {i} (path '{table['path'][i - 1]}'): {column} is empty, NaN or not "
                          f"a number ('{table[column][i - 1]}'); fill it or drop the row")
    return values.astype(float)


def _check_fixed_split(table: pd.DataFrame, source: str) -> None:
    given = table["split"] != ""
    if not given.any():
        return
    if not given.all():
        i = int(table.index[~given][0]) + 1
        raise LabelsError(f"{source} row {i}: split is empty while other rows have one; give every row a split "
                          "or none")
    crossing = table.groupby("group")["split"].nunique()
    crossing = crossing[crossing > 1]
    if len(crossing):
        group = crossing.index[0]
        raise LabelsError(f"{source}: group '{group}' appears in splits "
                          f"{sorted(set(table.loc[table['group'] == group, 'split']))}; a patient must stay in one "
                          "partition, so fix the split column (or set splits.mode: kfold to ignore it)")


def has_fixed_split(table: pd.DataFrame) -> bool:
    return "split" in table and bool((table["split"] != "").any())


def uses_fixed_split(cfg: SplitConfig, table: pd.DataFrame) -> bool:
    """Whether the table's own train/val/test column is the (single) fold."""
    if cfg.mode == "fixed" and not has_fixed_split(table):
        raise LabelsError("splits.mode is 'fixed' but the table has no split column (train/val/test); add one "
                          "or set splits.mode: kfold")
    return cfg.mode == "fixed" or (cfg.mode == "auto" and has_fixed_split(table))


def n_folds(cfg: SplitConfig, table: pd.DataFrame) -> int:
    return 1 if uses_fixed_split(cfg, table) else cfg.folds


def shard_of(video_id: str, n_shards: int) -> int:
    """Stable shard of a video: adding a video re-caches only its own shard."""
    return zlib.crc32(video_id.encode()) % n_shards
