"""Every bad input gets one clear line naming the file or field. One table row per bad input.

Library rows (:data:`LIBRARY_ROWS`): ``build(tmp_path)`` writes the bad input and returns a :class:`Case` -- the
call, the words its message must contain, and files that must be left intact. The runner checks that the
exception is a user error (``hinet.errors.USER_ERRORS``), that ``run_command`` turns it into exit code 2 and one
line on stderr containing every word, and that the kept files did not change.

Command rows (:data:`CLI_ROWS`): ``build(tmp_path)`` returns the ``python -m ...`` arguments and the words; the
runner starts the command in a subprocess (cwd = tmp_path) and checks exit code 2, one line on stderr holding the
words, and no traceback. To cover another command, append a row.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
from test_data_folders import write_pairs
from test_data_sidd import save_mat_v73

import hinet
from hinet.checkpoint import FORMAT, atomic_save, load_training_state
from hinet.config import PRESETS, scaled
from hinet.errors import USAGE, USER_ERRORS, run_command

REPO = Path(__file__).resolve().parents[1]
TINY = scaled(PRESETS["sidd-1x"], width=4, depth=2)


@dataclass
class Case:
    call: Callable[[], object]
    words: list[str]  # every one must appear in the one-line message
    keep: list[Path] = field(default_factory=list)  # files whose bytes must survive the failed call


@dataclass(frozen=True)
class Row:
    id: str
    build: Callable[[Path], Case]


@dataclass(frozen=True)
class CliRow:
    id: str
    build: Callable[[Path], tuple[list[str], list[str]]]  # -> (argv after the interpreter, words)
    skip_as_root: bool = False  # permission rows mean nothing to root


# ------------------------------------------------------------------------------------------- builders
def _tiny_checkpoint(path: Path) -> Path:
    torch.manual_seed(0)
    hinet.save(hinet.HINet(TINY), path)
    return path


def _damaged_checkpoint(how: str) -> Callable[[Path], Case]:
    def build(tmp: Path) -> Case:
        path = tmp / "model.pth"
        if how == "missing":
            return Case(lambda: hinet.load(path), [str(path), "does not exist"])
        if how == "directory":
            path.mkdir()
            return Case(lambda: hinet.load(path), [str(path), "folder"])
        data = _tiny_checkpoint(path).read_bytes()
        path.write_bytes({"truncated": data[: len(data) // 2], "empty": b"", "random": os.urandom(512)}[how])
        words = {"truncated": "truncated or corrupt", "empty": "empty file", "random": "not a PyTorch checkpoint"}
        return Case(lambda: hinet.load(path), [str(path), words[how]])

    return build


def _stored_config(tmp: Path) -> Case:
    path = tmp / "model.pth"
    model = hinet.HINet(TINY)
    torch.save({"format": FORMAT, "config": {**TINY.to_dict(), "width": 0}, "state_dict": model.state_dict()}, path)
    return Case(lambda: hinet.load(path), [str(path), "stored config", "HINetConfig.width=0"])


def _nan_weights(tmp: Path) -> Case:
    path = tmp / "model.pth"
    model = hinet.HINet(TINY)
    state = model.state_dict()
    key = next(k for k, v in state.items() if v.is_floating_point())
    state[key].view(-1)[0] = float("nan")
    torch.save({"format": FORMAT, "config": TINY.to_dict(), "state_dict": state}, path)
    return Case(lambda: hinet.load(path), [str(path), repr(key), "NaN/inf"])


def _resume_truncated(tmp: Path) -> Case:
    path = tmp / "checkpoints" / "last.pth"
    atomic_save({"model": hinet.HINet(TINY).state_dict(), "optimizer": {}, "step": 3}, path)
    path.write_bytes(path.read_bytes()[:300])
    return Case(lambda: load_training_state(path), [str(path)])


def _full_disk(tmp: Path) -> Case:
    path = _tiny_checkpoint(tmp / "model.pth")
    real_fdopen = os.fdopen

    class Full:
        def __init__(self, fh):
            self.fh = fh

        def write(self, data):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        def flush(self):
            self.fh.flush()

        def fileno(self):
            return self.fh.fileno()

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.fh.close()

    def call():
        os.fdopen = lambda fd, *a, **k: Full(real_fdopen(fd, *a, **k))
        try:
            hinet.save(hinet.HINet(TINY), path)
        finally:
            os.fdopen = real_fdopen

    return Case(call, [str(path), "No space left on device"], keep=[path])


def _override(cls_name: str, items: list[str], words: list[str], frozen=()) -> Callable[[Path], Case]:
    def build(tmp: Path) -> Case:
        from hinet.fields import apply_overrides
        from hinet.recipes import recipe

        obj, flag = (recipe("sidd-proxy"), "--recipe-set") if cls_name == "Recipe" else (TINY, "--model-set")
        return Case(lambda: apply_overrides(obj, items, flag, frozen=frozen), words)

    return build


def _gopro(tmp: Path) -> Path:
    root = tmp / "GoPro"
    write_pairs(root / "test", ["000", "001"])
    return root


def _truncated_image(tmp: Path) -> Case:
    from hinet.data import GoPro

    root = _gopro(tmp)
    bad = root / "test" / "input" / "001.png"
    bad.write_bytes(bad.read_bytes()[:60])
    ds = GoPro(root, "test")
    return Case(lambda: ds[1], [str(bad), "cannot decode image"])


def _verify_size_mismatch(tmp: Path) -> Case:
    from hinet.data import GoPro, verify_pairs, write_image

    root = _gopro(tmp)
    write_image(root / "test" / "target" / "000.png", torch.zeros(3, 8, 8))
    ds = GoPro(root, "test")
    return Case(lambda: verify_pairs(ds, progress=False), [str(root / "test" / "target" / "000.png"), "8x8"])


def _sidd_mat(kind: str) -> Callable[[Path], Case]:
    def build(tmp: Path) -> Case:
        from hinet.data import SIDDValidation

        arrays = {k: np.zeros((1, 1, 256, 256, 3), np.uint8) for k in ("ValidationNoisyBlocksSrgb",
                                                                      "ValidationGtBlocksSrgb")}
        for key, arr in arrays.items():
            (save_mat_v73 if kind == "v7.3-truncated" else scipy.io.savemat)(tmp / f"{key}.mat", {key: arr})
        bad = tmp / "ValidationGtBlocksSrgb.mat"
        size = 100 if kind == "100-bytes" else bad.stat().st_size // 2
        bad.write_bytes(bad.read_bytes()[:size])
        return Case(lambda: SIDDValidation(tmp).load(), [str(bad)])

    return build


def _metric_target_255(tmp: Path) -> Case:
    from hinet.metrics import psnr

    target = torch.rand(1, 3, 8, 8) * 255
    return Case(lambda: psnr(target / 255, target), ["target", "[0, 1]", "divide 0..255 images by 255"])


LIBRARY_ROWS = [
    *[Row(f"checkpoint-{how}", _damaged_checkpoint(how))
      for how in ("missing", "directory", "truncated", "empty", "random")],
    Row("checkpoint-stored-config", _stored_config),
    Row("checkpoint-nan-weights", _nan_weights),
    Row("checkpoint-resume-truncated", _resume_truncated),
    Row("checkpoint-full-disk", _full_disk),
    Row("override-bool", _override("HINetConfig", ["csff=maybe"], ["--model-set csff=maybe", "HINetConfig.csff"])),
    Row("override-unknown", _override("Recipe", ["crops=48"], ["--recipe-set crops=48", "'crop'"])),
    Row("override-blame", _override("Recipe", ["lr=-1"], ["--recipe-set lr=-1", "Recipe.eta_min"])),
    Row("override-val-limit-0", _override("Recipe", ["val_limit=0"], ["Recipe.val_limit=0"])),
    Row("override-frozen", _override("Recipe", ["preset=gopro"], ["Recipe.preset cannot be overridden"],
                                     frozen=("preset",))),
    Row("image-truncated", _truncated_image),
    Row("verify-size-mismatch", _verify_size_mismatch),
    *[Row(f"sidd-mat-{kind}", _sidd_mat(kind)) for kind in ("100-bytes", "v5-truncated", "v7.3-truncated")],
    Row("metric-target-0..255", _metric_target_255),
]


@pytest.mark.parametrize("row", LIBRARY_ROWS, ids=[r.id for r in LIBRARY_ROWS])
def test_library_rows(row: Row, tmp_path: Path, capsys) -> None:
    case = row.build(tmp_path)
    kept = {p: p.read_bytes() for p in case.keep}
    with pytest.raises(USER_ERRORS):
        case.call()
    capsys.readouterr()
    assert run_command("prog", case.call, argv=[]) == USAGE
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("prog: error: "), lines
    missing = [w for w in case.words if w not in lines[0]]
    assert not missing, (missing, lines[0])
    for path, data in kept.items():
        assert path.read_bytes() == data, f"{path} changed"
        assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")], "temp file left behind"


# ----------------------------------------------------------------------------------------- commands
def _prepare_args(tmp: Path, out: Path, data: Path | None = None) -> list[str]:
    return ["-m", "hinet.data.prepare", "gopro", "--data", str(data or tmp / "data"), "--out", str(out),
            "--workers", "0"]


def _gopro_train(tmp: Path) -> Path:
    data = tmp / "data"
    write_pairs(data / "GoPro" / "train", ["a", "b"])
    write_pairs(data / "GoPro" / "test", ["c"])
    return data


def _prepare_missing_data(tmp: Path):
    return _prepare_args(tmp, tmp / "out", tmp / "nowhere"), [str(tmp / "nowhere")]


def _prepare_nonempty_out(tmp: Path):
    _gopro_train(tmp)
    (tmp / "out").mkdir()
    (tmp / "out" / "notes.txt").write_text("mine")
    return _prepare_args(tmp, tmp / "out"), [str(tmp / "out"), "not empty", "--overwrite"]


def _prepare_out_under_a_file(tmp: Path):
    _gopro_train(tmp)
    (tmp / "file").write_text("x")
    return _prepare_args(tmp, tmp / "file" / "out"), [str(tmp / "file" / "out"), "cannot create folder"]


def _prepare_read_only_out(tmp: Path):
    _gopro_train(tmp)
    (tmp / "out").mkdir()
    (tmp / "out").chmod(0o500)
    return _prepare_args(tmp, tmp / "out"), [str(tmp / "out"), "Permission denied"]


def _prepare_corrupt_image(tmp: Path):
    data = _gopro_train(tmp)
    bad = data / "GoPro" / "train" / "target" / "b.png"
    bad.write_bytes(bad.read_bytes()[:80])
    return _prepare_args(tmp, tmp / "out"), [str(bad), "cannot decode image"]


CLI_ROWS = [
    CliRow("prepare-missing-data", _prepare_missing_data),
    CliRow("prepare-nonempty-out", _prepare_nonempty_out),
    CliRow("prepare-out-under-a-file", _prepare_out_under_a_file),
    CliRow("prepare-read-only-out", _prepare_read_only_out, skip_as_root=True),
    CliRow("prepare-corrupt-image", _prepare_corrupt_image),
]


@pytest.mark.parametrize("row", CLI_ROWS, ids=[r.id for r in CLI_ROWS])
def test_command_rows(row: CliRow, tmp_path: Path) -> None:
    if row.skip_as_root and hasattr(os, "geteuid") and os.geteuid() == 0:
        pytest.skip("root ignores permissions")
    argv, words = row.build(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "HINET_DEBUG": ""}
    proc = subprocess.run([sys.executable, *argv], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == USAGE, proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(lines) == 1 and ": error: " in lines[0], proc.stderr
    missing = [w for w in words if w not in lines[0]]
    assert not missing, (missing, lines[0])


def test_one_line_unwraps_a_multi_line_message_from_a_worker():
    from hinet.data import DatasetNotFoundError
    from hinet.errors import one_line

    wrapped = ("Caught DatasetNotFoundError in DataLoader worker process 0.\n"
               "Original Traceback (most recent call last):\n"
               '  File "worker.py", line 1, in fetch\n    raise DatasetNotFoundError(message)\n'
               "hinet.data.io.DatasetNotFoundError: GoPro not found at /x.\nExpected layout:\n  <root>/test\n"
               "Published at: https://example.org")
    assert one_line(DatasetNotFoundError(wrapped)) == (
        "GoPro not found at /x. Expected layout: <root>/test Published at: https://example.org")
