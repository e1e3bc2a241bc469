"""A study's own labels table(s) as published -> cineflow's fields, with no conversion script.

Joins several tables on one key, keeps the rows of `data.query`, maps each field to a column or a
template over the columns (`data.columns`), maps raw labels to class names (`data.label_map`) and can
read the patient id from each file's DICOM header. Everything is read as text: ids such as 007 stay 007.
"""

from __future__ import annotations

import re
import string
import sys
from pathlib import Path, PurePosixPath

import pandas as pd

from cineflow.config import DataConfig
from cineflow.data.labels import FIELDS, LabelsError, read_table

DICOM_PREFIX = "dicom:"
FOLDER = "folder"  # data.columns.group: each file's parent folder is its patient (a study folder of an export)
# header values that name no patient: what anonymisers and empty exports leave
ANONYMOUS = re.compile(r"(anon(ymi[sz]ed|ymous)?|unknown|none|null|n/?a|removed|-+|0+|x+|\*+)?", re.IGNORECASE)


def join_tables(paths: list[str], key: str | None) -> pd.DataFrame:
    """One table from `paths` joined on `key`: every key present once in every table, else LabelsError
    naming the file, the key values and the fix."""
    tables = [read_table(p) for p in paths]
    if len(tables) == 1:
        return tables[0]
    for path, table in zip(paths, tables):
        if key not in table:
            raise LabelsError(f"{path}: no join column '{key}' (data.join_on); its columns are {list(table.columns)}")
        duplicated = table[key][table[key].duplicated()].unique().tolist()
        if duplicated:
            raise LabelsError(f"{path}: {key} {duplicated[:5]} appear(s) more than once; each {key} must be one row "
                              "in every joined table: drop the duplicates")
    joined = tables[0]
    for path, table in zip(paths[1:], tables[1:]):
        shared = sorted((set(joined.columns) & set(table.columns)) - {key})
        if shared:
            raise LabelsError(f"{path}: column(s) {shared} also in {paths[0]}; a joined column must come from one "
                              "table: drop or rename it in one of them")
        unmatched = [(paths[0], path, sorted(set(joined[key]) - set(table[key]))),
                     (path, paths[0], sorted(set(table[key]) - set(joined[key])))]
        for have, lack, keys in unmatched:
            if keys:
                raise LabelsError(f"{have}: {len(keys)} {key}(s) not in {lack}, e.g. {keys[:5]}; every row must join: "
                                  f"add them to {lack} or remove them from {have}")
        joined = joined.merge(table, on=key, how="inner", validate="one_to_one")
    return joined


def map_columns(raw: pd.DataFrame, cfg: DataConfig, source: str) -> pd.DataFrame:
    """cineflow's fields (labels.FIELDS and data.targets) from the raw table: a column name, a template
    over the columns, a DICOM header field (group only) or, for group, None = each video its own group.

    Args:
        raw: the table as read (all text).
        cfg: data settings (columns, label_map, targets, root).
        source: the table's file(s), for messages.
    """
    if cfg.query:
        try:
            raw = raw.query(cfg.query, engine="python").reset_index(drop=True)
        except Exception as err:
            raise LabelsError(f"{source}: data.query '{cfg.query}' fails: {type(err).__name__}: {err}; its columns "
                              f"are {list(raw.columns)} (all read as text, so compare with 'True', '1')") from None
    if not cfg.columns:
        return raw
    fields = FIELDS + list(cfg.targets) + list(cfg.subgroups)
    unknown = sorted(set(cfg.columns) - set(fields))
    if unknown:
        raise LabelsError(f"data.columns: unknown field(s) {unknown}; map any of {fields}")
    out = pd.DataFrame(index=raw.index)
    for field in fields:
        spec = cfg.columns.get(field, field if field in raw else None)
        if spec is None or (field == "group" and (spec.startswith(DICOM_PREFIX) or spec == FOLDER)):
            continue
        out[field] = _values(raw, spec, field, source)
    if "group" in cfg.columns and cfg.columns["group"] is None:
        out["group"] = out["video_id"] if "video_id" in out else [Path(p).stem for p in out["path"]]
    elif cfg.columns.get("group") == FOLDER:
        out["group"] = folder_groups(out["path"], source)
    elif str(cfg.columns.get("group", "")).startswith(DICOM_PREFIX):
        out["group"] = dicom_groups(out["path"], cfg.root, cfg.columns["group"][len(DICOM_PREFIX):], source)
    return out.reset_index(drop=True)


def _values(raw: pd.DataFrame, spec: str, field: str, source: str) -> pd.Series:
    """A column, or a template `{COLUMN}` filled row by row. A part of a template in square brackets holding a
    `{COLUMN}` is optional: it is left out where that column is absent from the table or its cell is empty
    ("preprocessed_frames_aug/{VIDEO_NAME}[_{AUGMENT}]" for a study whose AUGMENT column is "if available")."""
    if "{" not in spec:
        if spec not in raw:
            raise LabelsError(f"{source}: data.columns.{field} names column '{spec}', which the table does not have; "
                              f"its columns are {list(raw.columns)}")
        return raw[spec]
    optional = [_names(part) for part in OPTIONAL_PART.findall(spec)]
    names = _names(spec)
    missing = [name for name in names if name not in raw and not any(name in part for part in optional)]
    if missing:
        raise LabelsError(f"{source}: data.columns.{field} template '{spec}' names column(s) {missing}, which the "
                          f"table does not have; its columns are {list(raw.columns)} (a part in [brackets] may be "
                          "absent)")
    present = [name for name in names if name in raw]
    records = raw[present].fillna("").astype(str).to_dict("records")
    return pd.Series([_render(spec, record) for record in records], index=raw.index)


# an optional part of a template: square brackets around text holding at least one {COLUMN}
OPTIONAL_PART = re.compile(r"\[([^\[\]]*\{[^\[\]]*\}[^\[\]]*)\]")


def _names(template: str) -> list[str]:
    return [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]


def _render(spec: str, record: dict) -> str:
    """`spec` filled from one row: optional parts whose columns are absent or empty are dropped."""
    def part(match: re.Match) -> str:
        names = _names(match.group(1))
        return match.group(1).format_map(record) if all(record.get(n, "").strip() for n in names) else ""
    return OPTIONAL_PART.sub(part, spec).format_map(record)


def folder_groups(paths: pd.Series, source: str, rows: list[int] | None = None) -> list[str]:
    """Each file's parent folder (relative to data.root) as its group; a LabelsError naming the first file that
    sits in data.root itself, which has no folder of its own. `rows`: the rows' numbers for messages."""
    groups = []
    for i, path in zip(rows or range(1, len(paths) + 1), paths):
        parent = PurePosixPath(str(path).replace("\\", "/")).parent.as_posix()
        if parent in ("", "."):
            raise LabelsError(f"{source} row {i} (path '{path}'): the file sits in data.root itself, so it has no "
                              "folder to be its patient; move it into its patient's folder, or map "
                              "data.columns.group to a column of the table")
        groups.append(parent)
    return groups


def dicom_groups(paths: pd.Series, root: str, keyword: str, source: str) -> list[str]:
    """Each file's DICOM header field `keyword` (e.g. PatientID), read without its pixel data.

    Where the header names no patient (empty, or an anonymiser's placeholder such as ANONYMOUS), the file's
    folder stands in for it; where every file has the same value (an export anonymised to one id), every file's
    folder does: one group cannot be split. When the folders cannot stand in either, a LabelsError gives the
    counts and the fix. A file that is missing or not DICOM is its own group here: the cache quarantines it,
    so it never reaches a split."""
    import pydicom
    from pydicom.datadict import tag_for_keyword

    if tag_for_keyword(keyword) is None:
        raise LabelsError(f"data.columns.group: '{keyword}' is not a DICOM keyword; use one such as PatientID or "
                          "StudyInstanceUID")
    groups = []
    for i, path in enumerate(paths, start=1):
        try:
            ds = pydicom.dcmread(Path(root) / path, stop_before_pixels=True, specific_tags=[keyword])
        except Exception:  # unreadable here: quarantined by the cache, with its reason
            groups.append(Path(path).stem)
            continue
        groups.append(str(ds.get(keyword, "") or "").strip())
    return _named_patients(groups, paths, keyword, source)


def _named_patients(values: list[str], paths: pd.Series, keyword: str, source: str) -> list[str]:
    """`values` with the folder where a header value names no patient, or every folder where all values are one
    (see dicom_groups)."""
    blank = [i for i, v in enumerate(values) if ANONYMOUS.fullmatch(v)]
    constant = len(values) > 1 and len(set(values)) == 1
    if not blank and not constant:
        return values
    replace = list(range(len(values))) if constant else blank
    why = (f"all {len(values)} files have {keyword} '{values[0]}'" if constant else
           f"{len(blank)} of {len(values)} files have no {keyword} (empty or anonymised)")
    fix = (f"fill {keyword} in the headers, or map data.columns.group to a column of the table (or to 'folder', "
           "with one folder per patient)")
    out = list(values)
    for i in replace:
        out[i] = PurePosixPath(str(paths.iloc[i]).replace("\\", "/")).parent.as_posix()
    at_root = sum(out[i] in ("", ".") for i in replace)
    if at_root:
        raise LabelsError(f"{source}: {why}, and {at_root} of them sit in data.root itself, with no folder to stand "
                          f"in for the patient; {fix}")
    if len(set(out)) < 2:
        raise LabelsError(f"{source}: {why}, and they sit in one folder, so every video would be one patient and "
                          f"no split could keep patients apart; {fix}")
    print(f"{source}: {why}; their folders stand in as the patient (group)", file=sys.stderr)
    return out


def apply_label_map(table: pd.DataFrame, label_map: dict | None, source: str) -> pd.DataFrame:
    """Raw label values -> class names; a value the map lacks is an error naming the row."""
    if not label_map or "label" not in table:
        return table
    mapping = {raw_key(k): v for k, v in label_map.items()}
    labels = []
    for i, value in enumerate(table["label"], start=1):
        key = raw_key(value)
        if key not in mapping:
            raise LabelsError(f"{source} row {i}: label value '{value}' is not in data.label_map {label_map}; add it "
                              "to the map or drop the row")
        labels.append(mapping[key])
    return table.assign(label=labels)


def apply_label_threshold(table: pd.DataFrame, threshold: float, classes: list[str], source: str) -> pd.DataFrame:
    """A continuous label made binary: classes[1] at or above `threshold`, classes[0] below; a value that is not
    a number is an error naming the row."""
    values = pd.to_numeric(table["label"].astype(str).str.strip().str.replace(",", ".", regex=False),
                           errors="coerce")
    if values.isna().any():
        i = int(values.isna().to_numpy().argmax()) + 1
        raise LabelsError(f"{source} row {i}: label '{table['label'].iloc[i - 1]}' is not a number, and "
                          f"data.label_threshold ({threshold}) cuts numbers; fix the value or drop the row")
    return table.assign(label=[classes[1] if v >= threshold else classes[0] for v in values])


def raw_key(value) -> str:
    """A raw label as text, numbers written the same way however they were read (1, 1.0, '1' -> '1')."""
    text = str(value).strip()
    try:
        number = float(text)
    except ValueError:
        return text
    return str(int(number)) if number.is_integer() else text
