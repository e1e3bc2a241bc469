"""Join the labels table with the cache shards: the manifest of usable videos and the quarantine list."""

from __future__ import annotations

import pandas as pd

from cineflow.data.cache import SHARD_COLUMNS
from cineflow.data.deidentify import AUDIT_COLUMNS, audit_row

QUARANTINE_COLUMNS = ["video_id", "source", "reason"]


def build_manifest(labels: pd.DataFrame, shard_tables: list[pd.DataFrame]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(manifest: one row per usable video with its labels, targets and preprocessing; quarantine)."""
    shards = pd.concat(shard_tables, ignore_index=True)
    merged = labels.drop(columns=["path"]).merge(shards, on="video_id", how="inner", validate="one_to_one")
    ok = merged["status"] == "ok"
    columns = [c for c in labels.columns if c != "path"] + [c for c in SHARD_COLUMNS
                                                            if c not in ("video_id", "status", "reason", "deidentified")]
    manifest = merged.loc[ok, columns].sort_values("video_id").reset_index(drop=True)
    quarantine = merged.loc[~ok, QUARANTINE_COLUMNS].sort_values("video_id").reset_index(drop=True)
    if manifest.empty and len(quarantine):
        reasons = quarantine["reason"].value_counts()
        raise ValueError(f"all {len(quarantine)} videos were quarantined, so nothing is left to split; the most "
                         f"common reason ({reasons.iloc[0]} of them): {reasons.index[0]} (e.g. "
                         f"{quarantine.loc[quarantine['reason'] == reasons.index[0], 'source'].iloc[0]}). Fix the "
                         "setting or the files it names.")
    return manifest, quarantine


def deidentification_audit(shard_tables: list[pd.DataFrame]) -> pd.DataFrame:
    """results/deidentification.csv: per file, whether it was DICOM, its BurnedInAnnotation, the header tags removed
    and changed, what was blanked, and whether it was cached or quarantined (and why). Empty where
    data.deidentify is off."""
    shards = pd.concat(shard_tables, ignore_index=True)
    audits = shards.get("deidentified", pd.Series("", index=shards.index)).fillna("")
    if not (audits != "").any():  # off: nothing was de-identified
        return pd.DataFrame(columns=AUDIT_COLUMNS)
    rows = [audit_row(v, s, r, a) for v, s, r, a in zip(shards["video_id"], shards["status"], shards["reason"], audits)]
    return pd.DataFrame(rows, columns=AUDIT_COLUMNS).sort_values("video_id").reset_index(drop=True)
