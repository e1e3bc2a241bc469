"""De-identification at ingest (data.deidentify): what of a patient's identity an archive carries, taken out
before anything of it reaches results/.

Three places carry it in echo and ultrasound archives:
- the DICOM header (names, ids, birth dates, accession numbers, institutions): cleaned with dicognito plus
  the removals of PS3.15 Table E.1-1's basic profile that dicognito leaves (private tags, overlays, free
  text, patient characteristics), before the pixels are decoded from it (clean_header);
- the patient id used for grouping, from a table column, a folder or the header: kept only as a salted HMAC
  (hashed_groups), so that the splits keep patients apart without naming them; the salt lives outside
  results/ (read_salt);
- the pixels: the banner above the sector and the labels beside the ECG are burned in. Everything outside
  the ultrasound sector (or the outline ROI), and every burned_in rectangle, is set to the cache's fill
  colour on the decoded frames, every frame alike (blank_outside). Working on the decoded [T, H, W, C]
  array, not on the encoded PixelData, is what keeps multi-frame ultrasound intact (a naive pixel cleaner
  scrambles it: pydicom/deid #228). A video whose header says BurnedInAnnotation YES and where nothing says
  where the image is (no sector found, no ROI, no rectangle) cannot be cleaned and is quarantined.

The cache applies the pixel and header rules (preprocess.read_deidentified) as it reads each video; the same
rules travel in the cache settings to the CAMs, the checkpoints, the bundle, predict and the app.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

PROFILE = "PS3.15 Annex E basic profile"
# what Table E.1-1 removes (X) or empties (Z) and dicognito 0.19 keeps: free text that may name a patient or a
# clinician, the patient's characteristics, device and protocol names (the profile's options that retain them
# are not applied)
REMOVED = (
    "AdditionalPatientHistory", "AdmittingDiagnosesDescription", "Allergies", "ContentCreatorName",
    "DerivationDescription", "DeviceSerialNumber", "EthnicGroup", "ImageComments", "InterpretationText",
    "MedicalAlerts", "OperatorsName", "OtherPatientNames", "PatientAge", "PatientBirthName", "PatientBirthTime",
    "PatientComments", "PatientMotherBirthName", "PatientSex", "PatientSexNeutered", "PatientSize",
    "PatientState", "PatientWeight", "PerformedProcedureStepDescription", "PregnancyStatus", "ProtocolName",
    "ReasonForStudy", "RequestAttributesSequence", "RequestedProcedureDescription", "ScheduledProcedureStepDescription",
    "SeriesDescription", "SmokingStatus", "SpecialNeeds", "StudyComments", "StudyDescription", "TextComments",
    "InstitutionalDepartmentName", "AcquisitionComments", "PersonName", "PatientInsurancePlanCodeSequence",
    "IssuerOfPatientID", "ReferencedPatientSequence", "ReferencedStudySequence",
)
BULK_VRS = ("OB", "OW", "OF", "OD", "OL", "OV", "UN")


class DeidentifyError(ValueError):
    """A setting that keeps de-identification from running (the salt file); the message says what to do."""


@dataclass(frozen=True)
class Rules:
    """data.deidentify's rules as the cache applies them (config.ingest_rules).

    Attributes:
        profile: the header profile ("basic").
        burned_in: [x, y, width, height] rectangles blanked in every frame, in source pixels.
        ecg: "blank" everything outside the sector, or "keep" what moves there (the trace).
        require_sector: "burned_in": quarantine a video with nowhere to keep when its header says
            BurnedInAnnotation YES; "always": whatever its header says.
    """

    profile: str
    burned_in: list
    ecg: str
    require_sector: str

    @classmethod
    def from_dict(cls, rules: dict) -> "Rules":
        return cls(**rules)


@dataclass
class Audit:
    """What de-identification did to one file: the deidentification.csv row (audit_row)."""

    dicom: bool = False
    burned_in_annotation: str = ""
    removed: list = field(default_factory=list)
    changed: list = field(default_factory=list)
    blanked: str = ""

    def row(self) -> dict:
        return {"dicom": self.dicom, "burned_in_annotation": self.burned_in_annotation,
                "tags_removed": ";".join(self.removed), "tags_changed": ";".join(self.changed),
                "blanked": self.blanked}


AUDIT_COLUMNS = ["video_id", "status", "reason", "dicom", "burned_in_annotation", "tags_removed", "tags_changed",
                 "blanked"]


# --- the patient id --------------------------------------------------------------------------------------------

def read_salt(path: str | Path, results: str | Path = "results") -> bytes:
    """The secret salt of the patient-id hash, from `path` (data.deidentify.salt_file); a new random one is
    written there (readable by its owner alone) when the file does not exist. A DeidentifyError when the file
    lies inside `results`, where it would travel with the results and undo the hash, or holds too little."""
    path = Path(path).expanduser()
    if path.resolve().is_relative_to(Path(results).resolve()):
        raise DeidentifyError(f"data.deidentify.salt_file {path} lies inside {results}/, which is shared with the "
                              "results; put it outside, e.g. ~/.cineflow/salt")
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.cineflow-{os.getpid()}.tmp")
        descriptor = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as fh:
            fh.write(secrets.token_hex(32) + "\n")
        os.replace(tmp, path)
        print(f"data.deidentify: a new random salt written to {path}; keep it (and keep it private) to get the "
              "same patient hashes, hence the same splits, again", file=sys.stderr)
    salt = path.read_bytes().strip()
    if len(salt) < 16:
        raise DeidentifyError(f"data.deidentify.salt_file {path} holds {len(salt)} bytes; a salt needs at least 16 "
                              "(delete the file to have a random one written)")
    return salt


def hashed_groups(groups, salt: bytes) -> list[str]:
    """Each group (patient id) as 'pid-' and the first 16 hex digits of its HMAC-SHA256 under `salt`: the same id
    gives the same hash, and without the salt no id can be tried against it."""
    return [f"pid-{hmac.new(salt, str(g).encode('utf-8'), hashlib.sha256).hexdigest()[:16]}" for g in groups]


# --- the header ------------------------------------------------------------------------------------------------

def _elements(ds) -> dict[str, str]:
    """{tag path: value as text} of every element, nested ones included; bulk values by their length only."""
    out = {}

    def visit(dataset, element):
        key = f"{element.keyword or element.tag}"
        out[key] = f"<{len(element.value or b'')} bytes>" if element.VR in BULK_VRS else str(element.value)

    ds.walk(visit)
    return out


def clean_header(ds, profile: str = "basic", audit: Audit | None = None) -> Audit:
    """Clean a pydicom dataset in place with `profile` and say what changed, in `audit` (a new one when None).
    dicognito replaces the identifying elements (names, ids, UIDs, addresses, institutions; dates shifted);
    private tags, overlays and REMOVED go.

    Raises:
        ValueError: the header cannot be cleaned (the message is the quarantine reason).
    """
    from dicognito.anonymizer import Anonymizer

    if profile != "basic":
        raise ValueError(f"unknown de-identification profile '{profile}'")
    before = _elements(ds)
    burned_in = str(ds.get("BurnedInAnnotation", "") or "").strip().upper()
    try:
        Anonymizer(seed="cineflow").anonymize(ds)
        ds.remove_private_tags()
        for element in list(ds):
            group = element.tag.group
            if element.keyword in REMOVED or 0x6000 <= group <= 0x60FF or 0x5000 <= group <= 0x50FF:
                del ds[element.tag]
    except Exception as err:  # a header dicognito cannot walk: quarantined, never read on
        raise ValueError(f"the header cannot be de-identified ({type(err).__name__}: {err})") from None
    after = _elements(ds)
    audit = audit if audit is not None else Audit()
    audit.dicom, audit.burned_in_annotation = True, burned_in
    audit.removed = sorted(k for k in before if k not in after)
    audit.changed = sorted(k for k in before if k in after and before[k] != after[k])
    return audit


# --- the pixels ------------------------------------------------------------------------------------------------

def blank_outside(frames: np.ndarray, keep: np.ndarray | None, rules: Rules, fill: list[int],
                  audit: Audit, moving: np.ndarray | None = None) -> np.ndarray:
    """`frames` [T, H, W, C] with every pixel outside `keep` ([H, W] bool: the sector or the ROI; None = nowhere
    found) and inside a burned_in rectangle set to `fill` (one value per channel), in every frame; `moving` ([H, W] bool) is kept outside
    `keep` too when rules.ecg is keep. What was blanked goes to `audit.blanked`.

    Raises:
        ValueError: nothing says where the image is (keep None, no rectangle) and the header says
            BurnedInAnnotation YES, or rules.require_sector is always (the quarantine reason).
    """
    height, width = frames.shape[1:3]
    rectangles = [r for r in rules.burned_in if r[0] < width and r[1] < height]
    if keep is None and not rectangles and (audit.burned_in_annotation == "YES" or rules.require_sector == "always"):
        why = ("its header says BurnedInAnnotation YES" if audit.burned_in_annotation == "YES"
               else "data.deidentify.require_sector is always")
        raise ValueError(f"not de-identified: {why}, and no ultrasound sector was found (nor an outline ROI) to "
                         "keep the image apart from burned-in text; give the text's place in "
                         "data.deidentify.burned_in, or leave the file out")
    kept = np.ones((height, width), bool) if keep is None else keep.copy()
    if keep is not None and rules.ecg == "keep" and moving is not None:
        kept |= moving
    for x, y, w, h in rectangles:
        kept[y: y + h, x: x + w] = False
    done = []
    if keep is not None:
        done.append(f"outside the {'sector' if moving is not None else 'ROI'} "
                    f"({100 * (1 - keep.mean()):.1f}% of the frame)"
                    + (", the moving trace kept" if rules.ecg == "keep" and moving is not None else ""))
    if rectangles:
        done.append(f"{len(rectangles)} burned_in rectangle(s)")
    audit.blanked = "; ".join(done) or "nothing (no sector, ROI or rectangle; no burned-in annotation declared)"
    if kept.all():
        return frames
    out = frames.copy()
    out[:, ~kept] = fill
    return out


def moving_outside(frames: np.ndarray, sector: np.ndarray) -> np.ndarray:
    """[H, W] bool: pixels outside `sector` that change over the loop (an ECG trace, its sweep line), slightly
    widened; static pixels (text) are never in it."""
    import cv2

    step = max(1, len(frames) // 16)
    spread = frames[::step].mean(-1, dtype=np.float32).std(0)
    moving = ((spread > 8.0) & ~sector).astype(np.uint8)
    return cv2.dilate(moving, np.ones((3, 3), np.uint8)).astype(bool) & ~sector


def audit_row(video_id: str, status: str, reason: str, deidentified: str) -> dict:
    """One deidentification.csv row from a shard-table row's `deidentified` JSON."""
    import json

    audit = json.loads(deidentified) if deidentified else {}
    return {"video_id": video_id, "status": status, "reason": reason,
            **{k: audit.get(k, "") for k in AUDIT_COLUMNS[3:]}}


def described(deidentify: dict, audit) -> str:
    """What de-identification did in a run, in a sentence for the report: the profile and its library, the groups'
    hash, the pixel rules, and the counts of the audit (results/deidentification.csv as a DataFrame)."""
    from importlib.metadata import PackageNotFoundError, version

    if not deidentify.get("enabled"):
        return ("off (data.deidentify.enabled is false): headers, patient ids and pixels were used as the archive "
                "has them")
    try:
        library = f"dicognito {version('dicognito')}"
    except PackageNotFoundError:
        library = "dicognito"
    rectangles = len(deidentify.get("burned_in", []))
    dicom = int(audit["dicom"].astype(str).str.lower().eq("true").sum()) if len(audit) else 0
    burned = int(audit["burned_in_annotation"].astype(str).eq("YES").sum()) if len(audit) else 0
    quarantined = int((audit["status"] != "ok").sum()) if len(audit) else 0
    return (f"on, profile '{deidentify['profile']}': DICOM headers cleaned by the {PROFILE} ({library}: names, ids, "
            "UIDs, addresses and institutions replaced, dates shifted; private tags, overlays, free text and patient "
            "characteristics removed) before anything was read from them; patient ids kept only as salted "
            "HMAC-SHA256 hashes, the salt outside results/; pixels outside the ultrasound sector or outline ROI"
            + (f" and inside {rectangles} burned_in rectangle(s)" if rectangles else "")
            + " blanked in every frame before caching, so in every CAM and prediction too; the ECG trace "
            + ("kept where it moves" if deidentify.get("ecg") == "keep" else "blanked")
            + f". {len(audit)} file(s) audited: {dicom} DICOM, {burned} with BurnedInAnnotation YES, {quarantined} "
            "quarantined (results/deidentification.csv).")
