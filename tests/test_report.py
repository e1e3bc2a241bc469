"""The report's own tables, built from result files: whole-number counts under named headers."""

import pandas as pd

from cineflow.report.html import data_summary


def test_the_data_table_counts_videos_per_fold_partition_and_class():
    splits = {0: pd.DataFrame({"partition": ["test", "train", "train", "val", "train"],
                               "label": ["B", "A", "B", "A", "A"]}),
              1: pd.DataFrame({"partition": ["train", "val", "test"], "label": ["A", "A", "A"]})}
    table = data_summary(splits)
    assert list(table.columns) == ["fold", "partition", "A", "B", "videos"]  # no 'label' axis name
    assert table.to_dict("list") == {"fold": [0, 0, 0, 1, 1, 1], "partition": ["train", "val", "test"] * 2,
                                     "A": [2, 1, 0, 1, 1, 1], "B": [1, 0, 1, 0, 0, 0], "videos": [3, 1, 1, 1, 1, 1]}
    html = table.to_html(index=False)
    assert "<td>2</td>" in html and ".0<" not in html and "<th></th>" not in html
