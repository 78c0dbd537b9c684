"""outputs.replacing, the controller's one temporary name and rename: readers see the old file or
folder or the whole new one, and a failed write leaves the old one and no partial behind."""

from __future__ import annotations

import pytest

from edgebench.outputs import replacing, write_whole


def test_a_file_is_replaced_whole_and_nothing_is_left_beside_it(tmp_path):
    target = tmp_path / "run.json"
    target.write_text("old")
    write_whole(target, '{"new": 1}', sync=True)
    assert target.read_text() == '{"new": 1}'
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]


def test_a_failed_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "model.gguf"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), replacing(target) as partial:
        partial.write_bytes(b"half")
        raise RuntimeError("disk full")
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["model.gguf"]


def test_the_temporary_name_keeps_the_suffix(tmp_path):
    with replacing(tmp_path / "report.html") as partial:
        assert partial.suffix == ".html" and partial.parent == tmp_path and partial.name.startswith(".")
        partial.write_text("<html>")


def test_a_folder_replaces_a_folder(tmp_path):
    target = tmp_path / "baseline"
    target.mkdir()
    (target / "old.jsonl").write_text("old")
    with replacing(target) as partial:
        partial.mkdir()
        (partial / "new.jsonl").write_text("new")
    assert [p.name for p in target.iterdir()] == ["new.jsonl"]
    assert [p.name for p in tmp_path.iterdir()] == ["baseline"]


def test_exclusive_never_replaces_a_file(tmp_path):
    target = tmp_path / "pi.yaml"
    target.write_text("mine")
    with pytest.raises(FileExistsError):
        write_whole(target, "theirs", exclusive=True)
    assert target.read_text() == "mine" and [p.name for p in tmp_path.iterdir()] == ["pi.yaml"]
    write_whole(tmp_path / "new.yaml", "fresh", exclusive=True)
    assert (tmp_path / "new.yaml").read_text() == "fresh"
