"""De-identification at ingest (data.deidentify): the header cleaned, the patient id hashed with a salt kept
outside results/, the banner and everything outside the sector blanked on every frame, the audit, and the
quarantine of what cannot be cleaned."""

import json
import stat
from dataclasses import replace

import numpy as np
import pandas as pd
import pydicom
import pytest

from cineflow.config import CacheConfig, ConfigError, ingest_rules, resolve
from cineflow.config.checks import check_data
from cineflow.data.cache import cache_shard
from cineflow.data.deidentify import DeidentifyError, clean_header, hashed_groups, read_salt
from cineflow.data.manifest import deidentification_audit
from cineflow.data.store import load_frames
from helpers import settings
from helpers.media import BANNER, PHI, write_phi_echo

RULES = ingest_rules(resolve({"data": {"deidentify": {"enabled": True}}})["data"]["deidentify"])


def cache(tmp_path, files: dict, rules: dict | None = RULES, out: str = "cache", **overrides) -> pd.DataFrame:
    """The cache shard of `files` (id: path under tmp_path) in tmp_path/out, de-identified by `rules`."""
    videos = pd.DataFrame({"video_id": list(files), "path": list(files.values())})
    cfg = settings(CacheConfig, "cache", **{"size": 64, "keep_aspect": False, "media": "any", **overrides})
    return cache_shard(videos, tmp_path, tmp_path / out, replace(cfg, deidentify=rules))


def phi_values(patient: int) -> list[str]:
    """Every header value write_phi_echo wrote for `patient`, as it could appear in text."""
    values = [f"{v}{patient:02d}" for k, v in PHI.items() if not k.endswith("Date")] + [PHI["PatientBirthDate"]]
    return values + [v.replace("^", " ") for v in values if "^" in v] + [f"operator notes for {PHI['PatientName']}"]


def test_the_header_is_cleaned_by_the_basic_profile_and_the_audit_says_what_changed(tmp_path):
    ds = pydicom.dcmread(write_phi_echo(tmp_path / "echo.dcm", patient=7))
    audit = clean_header(ds)
    text = str(ds)
    assert not [v for v in phi_values(7) if v in text]  # names, ids, accession, institution, birth date, notes
    assert {"PatientName", "PatientID", "PatientBirthDate", "AccessionNumber", "InstitutionName",
            "OtherPatientIDs", "ReferringPhysicianName"} <= set(audit.changed)
    assert "StudyDescription" in audit.removed and "(0009,1001)" in audit.removed  # free text, private tags
    assert audit.burned_in_annotation == "YES" and "DICOGNITO" in ds.DeidentificationMethod
    assert ds.pixel_array.shape == (12, 64, 96)  # the pixels are still there to decode


def test_the_patient_hash_is_keyed_by_a_salt_kept_outside_results(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    salt = read_salt(tmp_path / "keys" / "salt")  # written when missing, for its owner alone
    assert len(salt) == 64 and stat.S_IMODE((tmp_path / "keys" / "salt").stat().st_mode) == 0o600
    assert read_salt(tmp_path / "keys" / "salt") == salt  # kept: the same groups, the same splits next time
    groups = hashed_groups(["MRN1", "MRN2", "MRN1"], salt)
    assert groups[0] == groups[2] != groups[1] and all(g.startswith("pid-") and "MRN" not in g for g in groups)
    assert hashed_groups(["MRN1"], b"another salt of 24 bytes")[0] != groups[0]
    (tmp_path / "results").mkdir()
    with pytest.raises(DeidentifyError, match="inside results/"):
        read_salt(tmp_path / "results" / "salt")
    (tmp_path / "short").write_text("abc")
    with pytest.raises(DeidentifyError, match="at least 16"):
        read_salt(tmp_path / "short")
    config = resolve({"data": {"deidentify": {"enabled": True}}})
    with pytest.raises(ConfigError, match="salt_file is not set"):
        check_data(config)


def test_the_banner_and_all_outside_the_sector_are_blanked_on_every_frame_and_the_fan_is_untouched(tmp_path):
    write_phi_echo(tmp_path / "echo.dcm", patient=1)
    # 64 x 96 into 96 x 96, aspect kept: each source pixel where it was, 16 rows down
    same = dict(color="grey", fill=[0, 0, 0], size=96, keep_aspect=True)
    table = cache(tmp_path, {"echo": "echo.dcm"}, **same)
    plain = cache(tmp_path, {"echo": "echo.dcm"}, out="plain", rules=None, **same)
    got, before = load_frames(table["frames_path"][0]), load_frames(plain["frames_path"][0])
    assert got.shape == before.shape == (12, 96, 96, 1)  # a multi-frame loop stays a loop, in order
    rows, cols = BANNER
    banner = (slice(16 + rows.start, 16 + rows.stop), cols)
    assert before[:, banner[0], banner[1]].max() == 255 and got[:, banner[0], banner[1]].max() == 0  # text gone
    kept = got[..., 0] > 0
    assert (got[kept] == before[kept]).all() and kept.mean() > 0.1  # the fan as it was, frame by frame
    audit = json.loads(table["deidentified"][0])
    assert audit["burned_in_annotation"] == "YES" and audit["blanked"].startswith("outside the sector")
    csv = deidentification_audit([table])
    assert csv.loc[0, "status"] == "ok" and "PatientName" in csv.loc[0, "tags_changed"]
    assert deidentification_audit([plain]).empty  # off: nothing to audit


def test_the_ecg_trace_can_be_kept_while_the_text_beside_it_goes(tmp_path):
    write_phi_echo(tmp_path / "echo.dcm")
    keep = cache(tmp_path, {"echo": "echo.dcm"}, rules={**RULES, "ecg": "keep"}, color="grey", size=96,
                 keep_aspect=True)
    blank = cache(tmp_path, {"echo": "echo.dcm"}, out="b", color="grey", size=96, keep_aspect=True)
    trace = slice(16 + 60, 16 + 61)  # row 60 of the 64 x 96 source, padded by 16 rows at the top
    assert load_frames(keep["frames_path"][0])[:, trace].max() > 200  # the moving dot of the ECG sweep
    assert load_frames(blank["frames_path"][0])[:, trace].max() == 0
    assert load_frames(keep["frames_path"][0])[:, 16:26, :40].max() == 0  # the banner goes either way


def test_what_cannot_be_cleaned_is_quarantined_and_a_declared_rectangle_lets_it_through(tmp_path):
    write_phi_echo(tmp_path / "xray.dcm", still=True)  # one frame: no sector to find
    write_phi_echo(tmp_path / "unsure.dcm", still=True, burned_in="NO")
    table = cache(tmp_path, {"xray": "xray.dcm", "unsure": "unsure.dcm"}).set_index("video_id")
    assert table.loc["xray", "status"] == "quarantined"
    assert "BurnedInAnnotation YES" in table.loc["xray", "reason"] and "burned_in" in table.loc["xray", "reason"]
    assert table.loc["unsure", "status"] == "ok"  # the header says no text is burned in
    strict = cache(tmp_path, {"unsure": "unsure.dcm"}, out="s", rules={**RULES, "require_sector": "always"})
    assert "require_sector is always" in strict["reason"][0]
    boxed = cache(tmp_path, {"xray": "xray.dcm"}, out="r", rules={**RULES, "burned_in": [[0, 0, 48, 12]]},
                  color="grey", fill=[0, 0, 0], size=96, keep_aspect=True)
    assert boxed["status"][0] == "ok" and load_frames(boxed["frames_path"][0])[:, 16:28, :48].max() == 0
    (tmp_path / "junk.dcm").write_bytes(b"not dicom" * 40)
    audit = deidentification_audit([table.reset_index(), cache(tmp_path, {"junk": "junk.dcm"}, out="j")])
    assert audit.set_index("video_id").loc[["junk", "xray"], "status"].tolist() == ["quarantined"] * 2
