"""Output paths checked before work, results files valid as they grow, and atomic writes with the user's umask."""

import errno
import json
import os
import stat
from pathlib import Path

import pytest

from yolact.io import atomic_write
from yolact.outputs import JsonListWriter, OutputError, check_output_dir, check_output_file, os_error_line


def test_atomic_write_gives_the_mode_of_the_umask(tmp_path: Path) -> None:
    previous = os.umask(0o022)
    try:
        path = atomic_write(tmp_path / "a.bin", lambda f: f.write(b"x"))
        assert stat.S_IMODE(path.stat().st_mode) == 0o644
        os.umask(0o077)
        path = atomic_write(tmp_path / "b.bin", lambda f: f.write(b"x"))
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    finally:
        os.umask(previous)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin", "b.bin"]  # no temporary file left


def test_atomic_write_leaves_the_old_file_when_writing_fails(tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    path.write_text("old")

    def fail(f) -> None:  # type: ignore[no-untyped-def]
        f.write(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError):
        atomic_write(path, fail)
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_json_list_is_valid_after_every_batch(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    with JsonListWriter(path) as writer:
        assert json.loads(path.read_text()) == []
        writer.extend([{"a": 1}])
        assert json.loads(path.read_text()) == [{"a": 1}]
        writer.extend([])
        writer.extend([{"b": 2}, {"c": [3]}])
        assert json.loads(path.read_text()) == [{"a": 1}, {"b": 2}, {"c": [3]}]
        assert writer.saved_description() == "3 images" and writer.records == 3


def test_a_failed_batch_rolls_back_to_the_last_complete_list(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                             ) -> None:
    path = tmp_path / "r.json"
    writer = JsonListWriter(path)
    writer.extend([{"a": 1}])
    real = os.pwrite
    calls = {"n": 0}

    def short_then_full(fd: int, data, offset: int) -> int:  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 1:
            return real(fd, bytes(data)[:5], offset)  # part of the batch reaches the disk
        if calls["n"] == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd, data, offset)  # the roll-back's bracket fits in the space the truncation freed

    monkeypatch.setattr(os, "pwrite", short_then_full)
    with pytest.raises(OutputError, match=r"No space left on device; the disk is full.*holds the detections of the 1 "
                       r"image before the failure"):
        writer.extend([{"b": 2}])
    monkeypatch.setattr(os, "pwrite", real)
    writer.close()
    assert json.loads(path.read_text()) == [{"a": 1}]


def test_output_checks(tmp_path: Path) -> None:
    image = tmp_path / "imgs" / "a.jpg"
    image.parent.mkdir()
    image.write_bytes(b"jpeg")
    (tmp_path / "link.json").symlink_to(image)
    (tmp_path / "file").write_text("x")
    inputs = [image.parent, image]
    assert check_output_file(tmp_path / "new" / "deeper" / "r.json", "--json", inputs)
    assert check_output_file(image.parent / "r.json", "--json", inputs)  # a new file beside the images is fine
    for path, message in ((image, "input"), (tmp_path / "link.json", "is an input"), (tmp_path / "imgs", "folder"),
                          (tmp_path / "file" / "r.json", "is a file, not a folder")):
        with pytest.raises(OutputError, match=message):
            check_output_file(path, "--json", inputs)
    assert check_output_dir(tmp_path / "out", "--output", inputs, [image.name])
    for path, message in ((image.parent, "input folder"), (image.parent / "sub", "input folder"),
                          (tmp_path / "file", "is a file")):
        with pytest.raises(OutputError, match=message):
            check_output_dir(path, "--output", inputs, [image.name])
    with pytest.raises(OutputError, match="would overwrite the input"):  # a single image and its own folder
        check_output_dir(image.parent, "--output", [image], [image.name])


def test_os_errors_are_one_line_with_a_fix() -> None:
    line = os_error_line(PermissionError(errno.EACCES, "Permission denied", "/x/y.json"))
    assert line == "/x/y.json: Permission denied; choose a folder you can write to"
    assert "disk is full" in os_error_line(OSError(errno.ENOSPC, "No space left on device"))
