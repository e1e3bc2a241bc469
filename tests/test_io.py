import os
import subprocess
import sys

import numpy as np
import pytest

from cineflow.data.video_io import write_avi
from cineflow.io import atomic_dir, atomic_path, frames_dir, sweep_temporaries, write_text


def dead_pid() -> int:
    """The pid of a process that has ended."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_failed_write_leaves_neither_output_nor_temporary(tmp_path, monkeypatch):
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "out.json") as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed mid-write")
    assert list(tmp_path.iterdir()) == []
    import cv2

    def broken(*args):
        raise cv2.error("encoder failed")

    monkeypatch.setattr(cv2, "cvtColor", broken)  # OpenCV writes the AVI under its own temp name
    with pytest.raises(cv2.error):
        write_avi(tmp_path / "clip.avi", np.zeros((3, 16, 16, 3), np.uint8), 10)
    assert list(tmp_path.iterdir()) == []


def test_the_sweep_removes_what_killed_processes_left_and_keeps_live_ones(tmp_path):
    pid = dead_pid()
    nested = tmp_path / "model" / "fold_0"
    nested.mkdir(parents=True)
    dead = [nested / f".metrics.json.cineflow-{pid}-abc123.tmp", tmp_path / f".clip.avi.cineflow-{pid}-x_y.tmp.avi"]
    for path in dead:
        path.write_text("half")
    (tmp_path / f".cineflow-frames-{pid}-q1w2").mkdir()
    (tmp_path / f".cineflow-frames-{pid}-q1w2" / "v.npy").write_bytes(b"x")
    (nested / f".bundle.cineflow-{pid}-k9_x.tmpdir" / "folds").mkdir(parents=True)  # a killed atomic_dir
    # a user's files of the same shape (issue 45: a thesis draft and another project's frames were deleted)
    theirs = [tmp_path / "docs" / f".thesis.{pid}.draft.tmp", tmp_path / "other" / f".frames-{pid}-mydata",
              tmp_path / f".notes.{pid}.x.tmpdir"]
    theirs[0].parent.mkdir()
    theirs[0].write_text("a chapter")
    theirs[1].mkdir(parents=True)
    theirs[2].mkdir()
    with frames_dir(tmp_path) as live_frames, atomic_path(nested / "live.json") as live:
        live.write_text("writing")
        kept = [nested / "summary.json", tmp_path / ".hidden.tmp", tmp_path / ".frames-notapid"]
        write_text(kept[0], "{}")
        kept[1].write_text("not ours: no pid in the name")
        kept[2].mkdir()
        removed = sweep_temporaries(tmp_path)
        assert sorted(removed) == sorted([*dead, tmp_path / f".cineflow-frames-{pid}-q1w2",
                                          nested / f".bundle.cineflow-{pid}-k9_x.tmpdir"])
        assert live.exists() and os.path.isdir(live_frames) and all(p.exists() for p in kept + theirs)
        assert sweep_temporaries(tmp_path) == []  # nothing more of dead processes
        everything = sweep_temporaries(tmp_path, everything=True)  # the workflow's start, under its lock
        assert sorted(everything) == sorted([live, tmp_path / os.path.basename(live_frames)])
        assert all(p.exists() for p in theirs)
        live.write_text("rewritten")  # so that the context's rename has a file
    assert sweep_temporaries(tmp_path / "missing") == []
    # cineflow-predict's sweep: its output folder alone, not the folders below it
    (nested / f".p.csv.cineflow-{pid}-q.tmp").write_text("half")
    (tmp_path / f".p.csv.cineflow-{pid}-q.tmp").write_text("half")
    assert sweep_temporaries(tmp_path, recursive=False) == [tmp_path / f".p.csv.cineflow-{pid}-q.tmp"]
    assert (nested / f".p.csv.cineflow-{pid}-q.tmp").exists()


def test_a_folder_written_atomically_replaces_the_old_one_whole_or_not_at_all(tmp_path):
    out = tmp_path / "bundle"
    (out / "old").mkdir(parents=True)
    with atomic_dir(out) as tmp:
        assert not tmp.name.startswith("bundle") and tmp.parent == tmp_path
        (tmp / "new.txt").write_text("new")
    assert sorted(p.name for p in out.iterdir()) == ["new.txt"]
    with pytest.raises(RuntimeError), atomic_dir(out) as tmp:
        (tmp / "half.txt").write_text("half")
        raise RuntimeError("killed halfway")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"] and (out / "new.txt").exists()
