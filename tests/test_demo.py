import numpy as np
from sklearn.metrics import roc_auc_score

from cineflow.config import DemoConfig, resolve
from cineflow.data import demo


def _default():
    cfg = resolve({})
    return cfg, DemoConfig.from_dict(cfg["demo"])


def test_single_frame_statistics_do_not_separate_the_classes():
    """The default demo hides EF from any static statistic: mean chamber area and first-frame area."""
    cfg, demo_cfg = _default()
    plan = demo.plan(demo_cfg, cfg["seed"], cfg["data"]["classes"])
    plan = plan[~plan["corrupt"]]
    mean_area, first_area, motion = [], [], []
    for _, row in plan.iterrows():
        dark = (demo.render(row, demo_cfg) < 40).mean(axis=(1, 2))  # chamber pixels per frame
        mean_area.append(dark.mean())
        first_area.append(dark[0])
        motion.append(dark.std() / dark.mean())
    y = (plan["label"] == "REDUCED").to_numpy()
    for statistic in (mean_area, first_area):
        auc = roc_auc_score(y, statistic)
        assert max(auc, 1 - auc) < 0.65
    # ... while the motion of the same chamber does separate them
    assert roc_auc_score(y, -np.asarray(motion)) > 0.85


def test_demo_is_deterministic_and_shaped_as_documented():
    cfg, demo_cfg = _default()
    a = demo.plan(demo_cfg, 1, ["NORMAL", "REDUCED"])
    b = demo.plan(demo_cfg, 1, ["NORMAL", "REDUCED"])
    assert a.equals(b)
    assert a["ef"].between(*demo_cfg.ef_range).all()
    assert set(a["augment"]) == {"", "hflip"}
    assert ((a["ef"] >= 50) == (a["label"] == "NORMAL")).all()
    # clips of one patient share EF and geometry
    clips = a[~a["corrupt"]]
    assert (clips.groupby("group")[["ef", "scale", "angle"]].nunique() == 1).all().all()
    row = a[a["augment"] == "hflip"].iloc[0]
    original = a[(a["path"] == row["path"].replace("_hflip", ""))].iloc[0]
    np.testing.assert_array_equal(demo.render(row, demo_cfg), demo.render(original, demo_cfg)[:, :, ::-1])


def test_amplitude_matches_ejection_fraction():
    a = demo.amplitude_for_ef(np.array([20.0, 50.0, 75.0]))
    esv_over_edv = ((1 - a) / (1 + a)) ** 3
    np.testing.assert_allclose(1 - esv_over_edv, [0.2, 0.5, 0.75])


def test_written_dataset_has_the_user_table_format(tmp_path):
    cfg = resolve({"demo": {"n_patients": 4, "clips_per_patient": 1, "n_frames": 6, "size": 32, "n_corrupt": 1}})
    labels = demo.write_dataset(DemoConfig.from_dict(cfg["demo"]), 0, cfg["data"]["classes"], tmp_path)
    assert list(labels.columns) == ["path", "label", "group", "ef", "augment", "site", "sex"]
    assert (tmp_path / "labels.csv").is_file()
    # one site and sex per patient, drawn from a stream of their own: the rest of the demo is as it was
    assert (labels.groupby("group")[["site", "sex"]].nunique() == 1).all().all()
    assert set(labels["site"]) <= {"A", "B"} and set(labels["sex"]) <= {"F", "M"}
    plain = demo.plan(DemoConfig.from_dict(cfg["demo"]), 0, cfg["data"]["classes"])
    other = demo.plan(DemoConfig.from_dict({**cfg["demo"], "sites": ["C"], "gain": 0.8}), 0, cfg["data"]["classes"])
    assert plain["ef"].equals(other["ef"]) and set(other["site"]) == {"C"}
    assert all((tmp_path / p).stat().st_size > 0 for p in labels["path"])
