"""`mmlink.fileio.atomic_write`: whole files or none."""

import os

import pytest

from mmlink.fileio import atomic_write


def test_atomic_write_replaces_whole_files_and_cleans_up(tmp_path, monkeypatch):
    target = tmp_path / "f.json"
    atomic_write(target, "old")
    atomic_write(target, b"new")
    assert target.read_text() == "new" and [p.name for p in tmp_path.iterdir()] == ["f.json"]

    def broken(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, "never")
    assert target.read_text() == "new" and [p.name for p in tmp_path.iterdir()] == ["f.json"]


def test_store_by_content_writes_each_content_once(tmp_path):
    from mmlink.fileio import store_by_content

    a = store_by_content(b"\x89PNG same bytes", tmp_path / "cache", ".png")
    b = store_by_content(b"\x89PNG same bytes", tmp_path / "cache", ".png")
    c = store_by_content(b"\x89PNG other bytes", tmp_path / "cache", ".png")
    assert a == b != c and a.read_bytes() == b"\x89PNG same bytes" and a.is_absolute()
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == sorted([a.name, c.name])
