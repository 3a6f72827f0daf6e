"""Whole-file writes: atomic, umask-honouring, temp files of killed writes removed, errors name the path."""

from __future__ import annotations

import errno
import os
import stat

import pytest

from hinet.atomic import OutputError, atomic_write, atomic_write_text, replacing, stale_temp_files


def test_writes_whole_file_with_the_umask_mode(tmp_path):
    for mask, mode in ((0o022, 0o644), (0o077, 0o600), (0o002, 0o664)):
        old = os.umask(mask)
        try:
            path = atomic_write_text(tmp_path / f"f{mask:o}.json", "{}")
        finally:
            os.umask(old)
        assert stat.S_IMODE(path.stat().st_mode) == mode and path.read_text() == "{}"


def test_full_disk_keeps_the_previous_file_and_leaves_no_temp(tmp_path):
    path = atomic_write_text(tmp_path / "summary.json", "old")

    def fill(fh):
        fh.write(b"new, partly")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OutputError, match=r"summary\.json: cannot write: No space left on device"):
        atomic_write(path, fill)
    assert path.read_text() == "old" and not stale_temp_files(path)


def test_temp_files_of_a_killed_write_are_removed_by_the_next_write(tmp_path):
    path = tmp_path / "last.pth"
    import socket
    import subprocess
    import sys

    host = socket.gethostname().split(".")[0]
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    left = tmp_path / f".last.pth.{host}.{dead}-abcd.tmp1234"
    left.write_bytes(b"x" * 1000)  # what a SIGKILL between write and rename leaves
    live = tmp_path / f".last.pth.{host}.{os.getpid()}-beef.tmp5678"
    live.write_bytes(b"z")  # another worker's write in progress: never removed
    old = tmp_path / ".last.pth.untagged.tmp"
    old.write_bytes(b"w")
    os.utime(old, (1, 1))  # a temp without a writer tag, hours old
    other = tmp_path / ".other.pth.abc.tmp"
    other.write_bytes(b"y")
    atomic_write_text(path, "weights")
    assert not left.exists() and not old.exists() and live.exists() and other.exists()
    assert path.read_text() == "weights"


def test_replacing_for_writers_that_need_a_file_name(tmp_path):
    target = tmp_path / "fig.png"
    with replacing(target) as tmp:
        assert tmp.parent == tmp_path and tmp.suffix == ".png"
        tmp.write_bytes(b"png")
    assert target.read_bytes() == b"png" and not stale_temp_files(target)
    with pytest.raises(RuntimeError), replacing(target) as tmp:
        tmp.write_bytes(b"torn")
        raise RuntimeError("the plotting library failed")
    assert target.read_bytes() == b"png" and not stale_temp_files(target)


def test_unwritable_folder_names_the_path(tmp_path):
    (tmp_path / "out").write_text("a file in the way")
    with pytest.raises(OutputError, match="out: cannot create folder"):
        atomic_write_text(tmp_path / "out" / "table.md", "x")


def test_temp_files_named_as_atomic_write_names_them_are_removed_when_their_writer_is_dead(tmp_path):
    """atomic_write's temp files are ``.<name>.<host>.<pid>-<rand>.<mkstemp>.tmp``: the writer's tag is read
    from the front, so a checkpoint write killed at any step is cleaned by the next one, not after an hour."""
    import socket
    import subprocess
    import sys
    import tempfile

    from hinet.atomic import _tag

    host = socket.gethostname().split(".")[0]
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    path = tmp_path / "last.pth"
    left = []
    for _ in range(3):  # three killed checkpoint writes
        fd, name = tempfile.mkstemp(prefix=f".last.pth.{host}.{dead}-{os.urandom(4).hex()}.", suffix=".tmp",
                                    dir=tmp_path)
        os.write(fd, b"x" * 1000)
        os.close(fd)
        left.append(name)
    fd, live = tempfile.mkstemp(prefix=f".last.pth.{_tag()}.", suffix=".tmp", dir=tmp_path)  # this live process
    os.close(fd)
    assert sorted(map(str, stale_temp_files(path))) == sorted(left)
    atomic_write_text(path, "weights")
    assert not any(os.path.exists(n) for n in left) and os.path.exists(live)


def test_a_write_cleans_the_temp_files_that_dead_writers_left_for_other_targets(tmp_path):
    """A kill during the per-image write of step 10 leaves a temp file that no later write of step 10 may
    come to remove: the next write into the folder (step 20) removes it, since its writer is gone."""
    import socket
    import subprocess
    import sys

    from hinet.atomic import _tag, dead_writer_temp_files

    host = socket.gethostname().split(".")[0]
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    by_replacing = tmp_path / f".step-00000010.parquet.{host}.{dead}-0123abcd.tmp.parquet"
    by_atomic_write = tmp_path / f".last.pth.{host}.{dead}-89abcdef.k2j_9x1q.tmp"
    live = tmp_path / f".step-00000030.parquet.{_tag()}.tmp.parquet"
    foreign = tmp_path / ".notes.txt.tmp"  # not written by the suite: never touched
    for p in (by_replacing, by_atomic_write, live, foreign):
        p.write_bytes(b"x")
    assert dead_writer_temp_files(tmp_path) == sorted([by_replacing, by_atomic_write])
    with replacing(tmp_path / "step-00000020.parquet") as tmp:
        tmp.write_bytes(b"new")
    assert not by_replacing.exists() and not by_atomic_write.exists() and live.exists() and foreign.exists()
