"""Per-fold normalisation statistics come from the training partition only."""

import numpy as np
import pandas as pd
import pytest

from cineflow.data.normalisation import fold_normalisation


def test_statistics_use_train_videos_only(tmp_path):
    rows = []
    for vid, value, partition in (("a", 50, "train"), ("b", 150, "train"), ("c", 250, "val"), ("d", 0, "test")):
        np.save(tmp_path / f"{vid}.npy", np.full((8, 4, 4, 1), value, np.uint8))
        rows.append({"video_id": vid, "frames_path": str(tmp_path / f"{vid}.npy"), "partition": partition})
    table = pd.DataFrame(rows)
    stats = fold_normalisation(table[["video_id", "partition"]], table[["video_id", "frames_path"]], seed=0)
    assert stats["mean"] == pytest.approx([100 / 255]) and stats["std"] == pytest.approx([50 / 255])
    assert stats["n_videos"] == 2
