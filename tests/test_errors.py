"""Every bad input gets one clear line naming the file or field. One table row per bad input.

Library rows (:data:`LIBRARY_ROWS`): ``build(tmp_path)`` writes the bad input and returns a :class:`Case` -- the
call, the words its message must contain, and files that must be left intact. The runner checks that the
exception is a user error (``hinet.errors.USER_ERRORS``), that ``run_command`` turns it into exit code 2 and one
line on stderr containing every word, and that the kept files did not change.

Command rows (:data:`MAIN_ROWS`, one group per command: train, ablate, tune, the three benchmarks, report,
prepare, speed, hardware): ``build(tmp_path)`` writes the bad input and returns a :class:`Bad` -- the argv, the
words, files that must survive byte for byte and paths that must not exist afterwards. The runner calls the
command's ``main(argv)`` (or ``command(argv)``) in process and checks exit code 2, exactly one visible line on
stderr of the form ``<command>: error: ...`` holding the words (no usage block, no progress bar left on screen,
no traceback) and no Python warning on the way. :data:`SUBPROCESS_ROWS` start one real ``python -m ...`` per
command, all at once, so that the entry points are covered too. To cover another mistake, append a row.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import re
import subprocess
import sys
import warnings
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
from hinet.config import PRESETS, HINetConfig, scaled
from hinet.errors import USAGE, USER_ERRORS, run_command
from hinet.recipes import Recipe

REPO = Path(__file__).resolve().parents[1]
TINY = scaled(PRESETS["sidd-1x"], width=4, depth=2)
RANDOM_BYTES = np.random.default_rng(12345).integers(0, 256, 512, dtype=np.uint8).tobytes()  # fixed: never flaky


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
        garbage = {"truncated": data[: len(data) // 2], "empty": b"", "random": RANDOM_BYTES,
                   "not-utf8": b"cN\x10\xc8\n" + bytes(500)}  # GLOBAL opcode, a name that is not UTF-8
        path.write_bytes(garbage[how])
        words = {"truncated": "truncated or corrupt", "empty": "empty file", "random": "not a PyTorch checkpoint",
                 "not-utf8": "neither a zip archive nor a pickle"}
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
      for how in ("missing", "directory", "truncated", "empty", "random", "not-utf8")],
    Row("checkpoint-stored-config", _stored_config),
    Row("checkpoint-nan-weights", _nan_weights),
    Row("checkpoint-resume-truncated", _resume_truncated),
    Row("checkpoint-full-disk", _full_disk),
    Row("override-bool", _override("HINetConfig", ["csff=maybe"], ["--model-set csff=maybe", "HINetConfig.csff"])),
    Row("override-unknown", _override("Recipe", ["crops=48"], ["--recipe-set crops=48", "'crop'"])),
    Row("override-blame", _override("Recipe", ["lr=-1"], ["--recipe-set lr=-1", "Recipe.lr"])),
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


# (argv after the interpreter, words) of `python -m hinet.data.prepare`; run in process by test_main_rows
PREPARE_CASES = {
    "prepare-missing-data": _prepare_missing_data,
    "prepare-nonempty-out": _prepare_nonempty_out,
    "prepare-out-under-a-file": _prepare_out_under_a_file,
    "prepare-read-only-out": _prepare_read_only_out,
    "prepare-corrupt-image": _prepare_corrupt_image,
}
AS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


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


# ------------------------------------------------------------------------------- commands, in process
# Every command's main(argv) returns its exit code (user errors through hinet.errors.run_command; usage
# errors through hinet.errors.ArgumentParser, which prints one line and exits 2). What counts as "stderr" is
# what a terminal shows: text after the last carriage return of each line, blank lines dropped, so that a
# progress bar left on screen counts as a line and a cleared one does not. A Python warning emitted on the
# way to a user error counts as residue too: the rows fail on any warning.
@dataclass
class Bad:
    argv: list[str]
    words: list[str]  # every one must appear in the one line
    keep: list[Path] = field(default_factory=list)  # files whose bytes must survive
    absent: list[Path] = field(default_factory=list)  # paths that must not exist afterwards


@dataclass(frozen=True)
class MainRow:
    id: str
    command: str  # module path of the command; its main(argv) (or command(argv)) is called
    build: Callable[[Path], Bad]


def visible_lines(text: str) -> list[str]:
    """The lines a terminal shows for ``text`` (``\\r`` returns to the start of the line)."""
    return [shown for ln in text.split("\n") if (shown := ln.rsplit("\r", 1)[-1]).strip()]


def _entry(command: str) -> Callable[[list[str]], int]:
    import importlib

    module = importlib.import_module(command)
    return getattr(module, "command", None) or module.main


def _expect_one_line(stderr: str, words: list[str]) -> str:
    assert "Traceback" not in stderr, stderr
    lines = visible_lines(stderr)
    # starts with "<command>: error: ", nothing before it (a progress bar left on the line would be)
    assert len(lines) == 1 and re.match(r"[\w. -]+: error: ", lines[0]), stderr
    missing = [w for w in words if w not in lines[0]]
    assert not missing, (missing, lines[0])
    return lines[0]


TRAIN_FAST = ["--recipe", "sidd-proxy", "--iters", "1", "--model-set", "width=4", "--recipe-set", "val_limit=1",
              "--recipe-set", "crop=16", "--recipe-set", "batch_size=1", "--no-progress", "--no-tensorboard"]


def _train(*extra: str, words: list[str], run: str = "run") -> Callable[[Path], Bad]:
    def build(tmp: Path) -> Bad:
        return Bad(["--run-dir", str(tmp / run), *TRAIN_FAST, *extra], words, absent=[tmp / run / "config.json"])

    return build


def _train_spec(content: str, words: list[str]) -> Callable[[Path], Bad]:
    def build(tmp: Path) -> Bad:
        spec = tmp / "spec.json"
        if content == "bad-field":
            from hinet.spec import resolve_spec
            from hinet.train import build_parser

            data = resolve_spec(build_parser().parse_args(["--run-dir", str(tmp / "x"), *TRAIN_FAST])).to_dict()
            data["model"]["csff"] = "no"
            spec.write_text(json.dumps(data))
        else:
            spec.write_text(content)
        return Bad(["--spec", str(spec), "--run-dir", str(tmp / "run")], [str(spec), *words], keep=[spec],
                   absent=[tmp / "run" / "config.json"])

    return build


def _train_spec_edit(edit: Callable[[dict], object], words: list[str]) -> Callable[[Path], Bad]:
    """A spec file written by RunSpec.to_dict(), then edited: a hole, or a frozen field changed."""

    def build(tmp: Path) -> Bad:
        from hinet.spec import resolve_spec
        from hinet.train import build_parser

        data = resolve_spec(build_parser().parse_args(["--run-dir", str(tmp / "x"), *TRAIN_FAST])).to_dict()
        edit(data)
        spec = tmp / "spec.json"
        spec.write_text(json.dumps(data))
        return Bad(["--spec", str(spec), "--run-dir", str(tmp / "run")], [str(spec), *words], keep=[spec],
                   absent=[tmp / "run"])

    return build


def _train_resume(damaged: str) -> Callable[[Path], Bad]:
    """A started run (config.json + checkpoints/last.pth written as the trainer writes them), one damaged."""

    def build(tmp: Path) -> Bad:
        from hinet.spec import resolve_spec
        from hinet.train import build_parser

        argv = ["--run-dir", str(tmp / "run"), *TRAIN_FAST]
        spec = resolve_spec(build_parser().parse_args(argv))
        run = tmp / "run"
        ckpt = run / "checkpoints" / "last.pth"
        atomic_save({"model": hinet.HINet(spec.model).state_dict(), "optimizer": {}, "step": 1}, ckpt)
        (run / "config.json").write_text(json.dumps({"spec": spec.to_dict()}))
        bad = ckpt if damaged == "last.pth" else run / "config.json"
        bad.write_bytes(bad.read_bytes()[: len(bad.read_bytes()) // 2])
        return Bad([*argv, "--resume"], [str(bad)], keep=[bad])

    return build


def _train_blocked(option: str) -> Callable[[Path], Bad]:
    """A regular file where the command must create a folder."""

    def build(tmp: Path) -> Bad:
        (tmp / "file").write_text("mine")
        target = tmp / "file" / "sub"
        argv = ["--run-dir", str(target if option == "--run-dir" else tmp / "run"), *TRAIN_FAST]
        if option != "--run-dir":
            argv += [option, str(target / "x.jsonl" if option == "--records" else target)]
        return Bad(argv, [str(tmp / "file")], keep=[tmp / "file"])

    return build


def _train_truncated_image(tmp: Path) -> Bad:
    data = tmp / "data"
    write_pairs(data / "GoPro" / "train", ["a", "b", "c", "d"])
    write_pairs(data / "GoPro" / "test", ["e"])
    bad = data / "GoPro" / "train" / "input" / "c.png"
    bad.write_bytes(bad.read_bytes()[:60])
    argv = ["--run-dir", str(tmp / "run"), "--recipe", "gopro-proxy", "--data", str(data), "--iters", "2",
            "--model-set", "width=4", "--recipe-set", "crop=16", "--recipe-set", "batch_size=2",
            "--recipe-set", "val_limit=1", "--no-verify", "--workers", "2", "--no-tensorboard"]  # bar on screen
    return Bad(argv, [str(bad), "cannot decode image"])


TRAIN_ROWS = [
    MainRow("train-unknown-recipe", "hinet.train", _train("--recipe", "nope", words=["--recipe", "'nope'"])),
    MainRow("train-unknown-preset", "hinet.train", _train("--preset", "nope", words=["--preset", "'nope'"])),
    MainRow("train-iters-0", "hinet.train", _train("--iters", "0", words=["--iters 0"])),
    MainRow("train-iters-abc", "hinet.train", _train("--iters", "abc", words=["--iters", "'abc'"])),
    MainRow("train-norm-ratio-abc", "hinet.train",
            _train("--model-set", "norm_ratio=abc", words=["norm_ratio", "'abc'", "number"])),
    MainRow("train-lr-abc", "hinet.train", _train("--recipe-set", "lr=abc", words=["Recipe.lr", "'abc'"])),
    MainRow("train-seed-abc", "hinet.train", _train("--recipe-set", "seed=abc", words=["Recipe.seed", "integer"])),
    MainRow("train-betas-one", "hinet.train", _train("--recipe-set", "betas=[0.9]", words=["Recipe.betas", "2"])),
    MainRow("train-loss-foo", "hinet.train", _train("--recipe-set", "loss=foo", words=["Recipe.loss", "'foo'"])),
    MainRow("train-lr-negative", "hinet.train", _train("--recipe-set", "lr=-1", words=["lr=-1", "Recipe.lr"])),
    MainRow("train-csff-maybe", "hinet.train", _train("--model-set", "csff=maybe", words=["HINetConfig.csff"])),
    MainRow("train-unknown-field", "hinet.train", _train("--model-set", "widht=4", words=["widht"])),
    MainRow("train-frozen-preset", "hinet.train", _train("--recipe-set", "preset=gopro", words=["Recipe.preset"])),
    MainRow("train-unknown-precision", "hinet.train", _train("--precision", "fp8", words=["--precision", "fp8"])),
    MainRow("train-spec-not-json", "hinet.train", _train_spec("{not json", ["not a JSON run spec"])),
    MainRow("train-spec-empty", "hinet.train", _train_spec("", ["not a JSON run spec"])),
    MainRow("train-spec-bad-field", "hinet.train", _train_spec("bad-field", ["csff", "'no'"])),
    MainRow("train-spec-not-a-spec", "hinet.train", _train_spec("[1, 2]", ["invalid run spec"])),
    MainRow("train-spec-missing", "hinet.train",
            lambda tmp: Bad(["--spec", str(tmp / "none.json"), "--run-dir", str(tmp / "r")], [str(tmp / "none.json")])),
    MainRow("train-resume-corrupt-last.pth", "hinet.train", _train_resume("last.pth")),
    MainRow("train-resume-corrupt-config.json", "hinet.train", _train_resume("config.json")),
    *[MainRow(f"train-blocked{opt}", "hinet.train", _train_blocked(opt))
      for opt in ("--run-dir", "--records", "--images-dir")],
    *[MainRow(f"train{flag}-{value}", "hinet.train", _train(flag, value, words=[f"{flag} {value}"]))
      for flag, value in (("--workers", "-1"), ("--ckpt-every", "0"), ("--micro-batch", "0"),
                          ("--images-limit", "-1"))],
    MainRow("train-truncated-image-workers-2", "hinet.train", _train_truncated_image),
    *[MainRow(f"train-spec-{name}", "hinet.train", _train_spec_edit(edit, words)) for name, edit, words in (
        ("without-crop", lambda d: d["recipe"].pop("crop"), ["missing field", "'crop'"]),  # never crop 256
        ("without-seed", lambda d: d.pop("seed"), ["missing field", "'seed'"]),
        ("without-width", lambda d: d["model"].pop("width"), ["missing field", "'width'"]),
        ("proxy-false", lambda d: d["recipe"].update(proxy=False), ["recipe.proxy=False", "sidd-proxy"]),
        ("preset-relabelled", lambda d: d["recipe"].update(preset="gopro"), ["recipe.preset='gopro'", "sidd-1x"]),
        ("unknown-recipe-name", lambda d: d["recipe"].update(name="mine"), ["recipe.name='mine'"]))],
    MainRow("train-seed-negative", "hinet.train", _train("--seed", "-1", words=["--seed", "RunSpec.seed=-1"])),
    MainRow("train-spec-seed-negative", "hinet.train",
            _train_spec_edit(lambda d: d.update(seed=-2), ["RunSpec.seed=-2", "non-negative"])),
    MainRow("train-resume-no-run", "hinet.train",
            lambda tmp: Bad(["--run-dir", str(tmp / "rnu"), *TRAIN_FAST, "--resume"],
                            ["--resume", str(tmp / "rnu"), "holds no run"], absent=[tmp / "rnu"])),
    MainRow("train-refused-leaves-no-folder", "hinet.train",
            lambda tmp: Bad(["--run-dir", str(tmp / "a" / "run"), *TRAIN_FAST, "--data", str(tmp / "none")],
                            [str(tmp / "none")], absent=[tmp / "a"])),
    MainRow("train-records-is-a-folder", "hinet.train",
            lambda tmp: (tmp / "rec").mkdir() or Bad(["--run-dir", str(tmp / "run"), *TRAIN_FAST, "--records",
                                                      str(tmp / "rec")], ["--records", "is a folder"],
                                                     absent=[tmp / "run"])),
]


# ----------------------------------------------------------------------------------------------- ablate
def _ablate(*extra: str, words: list[str]) -> Callable[[Path], Bad]:
    def build(tmp: Path) -> Bad:
        records = tmp / "results" / "records" / "x.jsonl"
        return Bad(["--runs-dir", str(tmp / "runs"), "--records", str(records), "--no-progress", "--no-report",
                    *extra], words, absent=[tmp / "runs", records])

    return build


ABLATE_ROWS = [
    MainRow("ablate-unknown-family", "ablations.run", _ablate("--family", "nope", words=["--family", "'nope'"])),
    MainRow("ablate-unknown-variants", "ablations.run",
            _ablate("--family", "components", "--variants", "nope", words=["--variants", "'nope'"])),
    MainRow("ablate-iters-0", "ablations.run", _ablate("--iters", "0", words=["--iters 0"])),
    MainRow("ablate-unknown-recipe", "ablations.run", _ablate("--recipe", "fast", words=["--recipe", "'fast'"])),
    MainRow("ablate-seeds-abc", "ablations.run", _ablate("--seeds", "abc", words=["--seeds", "'abc'"])),
    *[MainRow(f"ablate{flag}-{value}", "ablations.run", _ablate(flag, value, words=[f"{flag} {value}"]))
      for flag, value in (("--parallel", "0"), ("--gpus-per-run", "0"), ("--loader-workers", "-1"),
                          ("--images", "-1"))],
    MainRow("ablate-bad-gpus", "ablations.run", _ablate("--gpus", "zero", words=["--gpus", "zero"])),
    MainRow("ablate-gpus-absent", "ablations.run", _ablate("--gpus", "0,1", words=["--gpus 0,1", "no CUDA device"])),
    MainRow("ablate-seeds-negative", "ablations.run", _ablate("--seeds", "-1", words=["--seeds -1", "non-negative"])),
    MainRow("ablate-records-is-a-folder", "ablations.run",
            lambda tmp: (tmp / "rec.jsonl").mkdir() or _ablate("--records", str(tmp / "rec.jsonl"),
                                                              words=["--records", "is a folder"])(tmp)),
    MainRow("ablate-seeds-twice", "ablations.run", _ablate("--seeds", "0", "0", words=["--seeds 0 0", "distinct"])),
]


# ------------------------------------------------------------------------------------------------- tune
def _tune(*extra: str, words: list[str]) -> Callable[[Path], Bad]:
    def build(tmp: Path) -> Bad:
        return Bad(["--runs-dir", str(tmp / "runs"), "--results", str(tmp / "results"), "--storage",
                    str(tmp / "study.log"), "--trials", "1", "--iters", "2", "--device", "cpu", *extra], words,
                   absent=[tmp / "runs"])

    return build


def _tune_mismatch(tmp: Path) -> Bad:
    from hinet import tune

    storage = tmp / "study.log"
    recipe = tune.base_recipe("sidd-proxy", 2)
    space = tune.SearchSpace()
    settings = {"recipe": recipe.to_dict(), "space": dataclasses.asdict(space), "data": None,
                "train_seed": recipe.seed, "protocol": tune.objective_protocol(recipe.task)}
    tune.load_study("s", tune.open_storage(str(storage)), settings=json.loads(json.dumps(settings)))
    kept = storage.read_bytes()
    bad = _tune("--study", "s", "--iters", "3", words=["'s'", "iters", "2", "3"])(tmp)
    bad.keep.append(storage)
    assert storage.read_bytes() == kept
    return bad


def _tune_results_blocked(tmp: Path) -> Bad:
    (tmp / "results").write_text("mine")
    return Bad(["--runs-dir", str(tmp / "runs"), "--results", str(tmp / "results"), "--trials", "1",
                "--iters", "2", "--device", "cpu"], [str(tmp / "results")], keep=[tmp / "results"],
               absent=[tmp / "runs"])


TUNE_ROWS = [
    MainRow("tune-unknown-recipe", "hinet.tune", _tune("--recipe", "nope", words=["--recipe", "'nope'"])),
    MainRow("tune-iters-0", "hinet.tune", _tune("--iters", "0", words=["--iters", "0"])),
    MainRow("tune-lr-reversed", "hinet.tune", _tune("--lr", "1e-2", "1e-3", words=["--lr", "low <= high"])),
    MainRow("tune-lr-zero", "hinet.tune", _tune("--lr", "0", "1e-3", words=["--lr", "0 < low"])),
    *[MainRow(f"tune{flag}-0", "hinet.tune", _tune(flag, "0", words=[f"{flag} 0"]))
      for flag in ("--trials", "--total-trials", "--threads")],
    MainRow("tune-lr-abc", "hinet.tune", _tune("--lr", "abc", "1", words=["--lr", "'abc'"])),
    MainRow("tune-batch-0", "hinet.tune", _tune("--batch", "0", words=["--batch", "positive"])),
    MainRow("tune-crop-odd", "hinet.tune", _tune("--crop", "33", words=["--crop", "multiples"])),
    MainRow("tune-width-odd", "hinet.tune", _tune("--width", "7", words=["--width", "even"])),
    MainRow("tune-norm-ratio-2", "hinet.tune", _tune("--norm-ratio", "2", words=["--norm-ratio", "[0, 1]"])),
    MainRow("tune-unknown-loss", "hinet.tune", _tune("--loss", "foo", words=["--loss", "'foo'"])),
    MainRow("tune-unknown-protocol", "hinet.tune", _tune("--protocol", "nope", words=["--protocol", "'nope'"])),
    MainRow("tune-bad-storage", "hinet.tune", _tune("--storage", "study.txt", words=["--storage", "'study.txt'"])),
    MainRow("tune-task-recipe-clash", "hinet.tune",
            _tune("--task", "deblur", "--recipe", "sidd-proxy", words=["--recipe", "--task"])),
    MainRow("tune-study-mismatch", "hinet.tune", _tune_mismatch),
    MainRow("tune-report-only-missing-study", "hinet.tune",
            _tune("--report-only", "--study", "none", words=["'none'", "study"])),
    MainRow("tune-results-blocked", "hinet.tune", _tune_results_blocked),
    MainRow("tune-seed-negative", "hinet.tune", _tune("--seed", "-1", words=["--seed -1", "non-negative"])),
    MainRow("tune-train-seed-negative", "hinet.tune",
            _tune("--train-seed", "-3", words=["--train-seed -3", "non-negative"])),
    MainRow("tune-storage-bad-port", "hinet.tune",
            _tune("--storage", "postgresql://u@localhost:abc/db", words=["--storage", "not a database URL"])),
    MainRow("tune-storage-unreachable", "hinet.tune",  # port 1: refused at once, no server needed
            _tune("--storage", "postgresql+psycopg://u:secret@127.0.0.1:1/db",
                  words=["--storage", "cannot reach the database", "***"])),
    MainRow("tune-storage-unknown-driver", "hinet.tune",
            _tune("--storage", "nosuchdb://u@h/db", words=["--storage", "nosuchdb"])),
    MainRow("tune-gpus-absent", "hinet.tune",
            _tune("--workers", "2", "--gpus", "0,1", "--device", "cuda", words=["--gpus 0,1", "no CUDA device"])),
]


# ------------------------------------------------------------------------------------------- benchmarks
SYNTH = ["--synthetic-size", "16", "--synthetic-count", "1", "--no-progress"]


def _bench_weights(how: str) -> Callable[[Path], Bad]:
    def build(tmp: Path) -> Bad:
        path = tmp / "w.pth"
        if how == "nan":
            _nan_weights(tmp)
        elif how != "missing":
            data = _tiny_checkpoint(path).read_bytes()
            path.write_bytes({"truncated": data[: len(data) // 2], "empty": b"", "random": RANDOM_BYTES}[how])
        if how == "nan":
            (tmp / "model.pth").rename(path)
        return Bad([*SYNTH, "--weights", str(path), "--json", str(tmp / "out.json"), "--records",
                    str(tmp / "records.jsonl")], [str(path)], absent=[tmp / "out.json", tmp / "records.jsonl"])

    return build


def _bench_blocked(option: str) -> Callable[[Path], Bad]:
    def build(tmp: Path) -> Bad:
        (tmp / "file").write_text("mine")
        target = tmp / "file" / ("x.json" if option != "--save-images" else "images")
        argv = [*SYNTH, option, str(target)]
        if option != "--records":
            argv += ["--records", str(tmp / "records.jsonl")]
        return Bad(argv, [str(tmp / "file")], keep=[tmp / "file"], absent=[tmp / "records.jsonl"])

    return build


def _gopro_truncated(tmp: Path) -> Bad:
    root = _gopro(tmp)
    bad = root / "test" / "input" / "001.png"
    bad.write_bytes(bad.read_bytes()[:60])
    return Bad(["--data", str(tmp), "--no-verify", "--workers", "2", "--no-records", "--json",
                str(tmp / "out.json")], [str(bad), "cannot decode image"], absent=[tmp / "out.json"])


def _gopro_truncated_verified(tmp: Path) -> Bad:
    root = _gopro(tmp)
    bad = root / "test" / "target" / "000.png"
    bad.write_bytes(bad.read_bytes()[:60])
    return Bad(["--data", str(tmp), "--no-records"], [str(bad)])  # progress bars on: none may stay on screen


def _gopro_output_checked_first(option: str) -> Callable[[Path], Bad]:
    """A folder where a file goes (or a file where a folder goes), on data that the evaluation would fail on
    (a truncated image): the output is named, so it was checked before any work."""

    def build(tmp: Path) -> Bad:
        root = _gopro(tmp)
        bad = root / "test" / "input" / "001.png"
        bad.write_bytes(bad.read_bytes()[:60])
        target = tmp / "out"
        if option == "--save-images":
            target.write_text("mine")
        else:
            target.mkdir()
        argv = ["--data", str(tmp), "--no-verify", "--no-progress", option, str(target)]
        if option != "--records":
            argv += ["--records", str(tmp / "records.jsonl")]
        return Bad(argv, [option, str(target), "is a f"], absent=[tmp / "records.jsonl"])

    return build


def _sidd_100_bytes(tmp: Path) -> Bad:
    _sidd_mat("100-bytes")(tmp)
    return Bad(["--data", str(tmp), "--no-progress", "--no-records"], [str(tmp / "ValidationGtBlocksSrgb.mat")])


def _cuda_absent(tmp: Path) -> Bad:
    return Bad([*SYNTH, "--device", "cuda", "--no-records"], ["--device", "cuda"])


BENCH_ROWS = [
    *[MainRow(f"{name}-weights-{how}", f"benchmarks.{name}", _bench_weights(how))
      for name in ("sidd", "gopro", "rain13k") for how in ("truncated", "empty", "random", "nan", "missing")],
    *[MainRow(f"gopro-blocked{opt}", "benchmarks.gopro", _bench_blocked(opt))
      for opt in ("--json", "--records", "--save-images")],
    *[MainRow(f"gopro-output-checked-first{opt}", "benchmarks.gopro", _gopro_output_checked_first(opt))
      for opt in ("--json", "--records", "--save-images")],
    MainRow("gopro-truncated-image-workers-2", "benchmarks.gopro", _gopro_truncated),
    *[MainRow(f"gopro-tlc-train-size-{size}", "benchmarks.gopro", lambda tmp, size=size: Bad(
        [*SYNTH, "--weights", str(_tiny_checkpoint(tmp / "w.pth")), "--tlc", "--tlc-train-size", size, "--no-records"],
        ["--tlc-train-size", f"train_size=({size}, {size})"])) for size in ("1", "100000")],
    MainRow("gopro-truncated-target-verified", "benchmarks.gopro", _gopro_truncated_verified),
    MainRow("sidd-mat-100-bytes", "benchmarks.sidd", _sidd_100_bytes),
    MainRow("sidd-unknown-protocol", "benchmarks.sidd", lambda tmp: Bad([*SYNTH, "--protocol", "x"], ["--protocol"])),
    MainRow("rain13k-limit-0", "benchmarks.rain13k", lambda tmp: Bad([*SYNTH, "--limit", "0"], ["--limit"])),
    MainRow("gopro-missing-data", "benchmarks.gopro",
            lambda tmp: Bad(["--data", str(tmp / "none"), "--no-records"], [str(tmp / "none")])),
    *[MainRow(f"{name}-cuda-absent", f"benchmarks.{name}", _cuda_absent) for name in ("sidd", "gopro", "rain13k")],
    MainRow("gopro-bad-device", "benchmarks.gopro", lambda tmp: Bad([*SYNTH, "--device", "gpu"], ["--device", "gpu"])),
]


# ----------------------------------------------------------------------------------------------- report
def _report_records(tmp: Path, content: str) -> Path:
    folder = tmp / "records"
    folder.mkdir()
    (folder / "r.jsonl").write_text(content)
    return folder / "r.jsonl"


def _report_corrupt(tmp: Path) -> Bad:
    from test_report import _rec

    from hinet.records import append_records

    path = tmp / "records" / "r.jsonl"
    append_records(path, [_rec("r", "a", "val", "psnr", 30.0, 1, 0)])
    with path.open("a") as fh:
        fh.write('{"broken\n')
    return Bad(["--records", str(path.parent), "--out", str(tmp / "out")], [f"{path}:2", "not a valid record line"],
               absent=[tmp / "out"])


def _report_out_blocked(tmp: Path) -> Bad:
    (tmp / "out").write_text("mine")
    path = _report_records(tmp, "")
    return Bad(["--records", str(path.parent), "--out", str(tmp / "out"), "--published", str(REPO / "results" /
                "published")], [str(tmp / "out")], keep=[tmp / "out"])


def _report_out_checked_first(tmp: Path) -> Bad:
    """A file where --out must be a folder, and corrupt records: the output is named, so it came first."""
    (tmp / "out").write_text("mine")
    path = _report_records(tmp, '{"broken\n')
    return Bad(["--records", str(path.parent), "--out", str(tmp / "out")], ["--out", str(tmp / "out"), "is a file"],
               keep=[tmp / "out"])


REPORT_ROWS = [
    MainRow("report-corrupt-records", "hinet.report", _report_corrupt),
    MainRow("report-missing-records", "hinet.report",
            lambda tmp: Bad(["--records", str(tmp / "none"), "--out", str(tmp / "out")], [str(tmp / "none")],
                            absent=[tmp / "out"])),
    MainRow("report-out-blocked", "hinet.report", _report_out_blocked),
    MainRow("report-out-checked-first", "hinet.report", _report_out_checked_first),
]


# ------------------------------------------------------------------------------- prepare, speed, hardware
def _prepare_inproc(tmp: Path, out: Path, words: list[str], data: Path | None = None) -> Bad:
    return Bad(_prepare_args(tmp, out, data)[2:], words)


def _prepare_out_file(tmp: Path) -> Bad:
    _gopro_train(tmp)
    (tmp / "out").write_text("mine")
    bad = _prepare_inproc(tmp, tmp / "out", [str(tmp / "out")])
    bad.keep.append(tmp / "out")
    return bad


def _speed_blocked(tmp: Path) -> Bad:
    (tmp / "file").write_text("mine")
    return Bad(["--records", str(tmp / "file" / "speed.jsonl"), "-k", "nothing"], [str(tmp / "file")],
               keep=[tmp / "file"])


def _speed_records_folder(tmp: Path) -> Bad:
    (tmp / "folder").mkdir()
    return Bad(["--records", str(tmp / "folder"), "-k", "nothing"], [str(tmp / "folder")])


def _prepare_case(build: Callable[[Path], tuple[list[str], list[str]]]) -> Callable[[Path], Bad]:
    def wrapped(tmp: Path) -> Bad:
        argv, words = build(tmp)
        return Bad(argv[2:], words, absent=[tmp / "out" / "input_crops"])

    return wrapped


def _compact(content: str | None) -> Callable[[Path], Bad]:
    def build(tmp: Path) -> Bad:
        path = tmp / "r.jsonl"
        if content is None:
            path.mkdir()
            return Bad(["--compact", str(path)], [str(path), "folder"])
        if content:
            path.write_text(content)
            return Bad(["--compact", str(path)], [f"{path}:1", "not a valid record line"], keep=[path])
        return Bad(["--compact", str(path)], [str(path), "does not exist"], absent=[path])

    return build


OTHER_ROWS = [
    MainRow("compact-missing-file", "hinet.records", _compact("")),
    MainRow("compact-a-folder", "hinet.records", _compact(None)),
    MainRow("compact-corrupt-line", "hinet.records", _compact('{"broken": 1}\n')),
    *[MainRow(name, "hinet.data.prepare", _prepare_case(build)) for name, build in PREPARE_CASES.items()
      if not (AS_ROOT and name == "prepare-read-only-out")],  # root ignores permissions
    MainRow("prepare-unknown-dataset", "hinet.data.prepare",
            lambda tmp: Bad(["nope", "--data", str(tmp), "--out", str(tmp / "o")], ["'nope'"])),
    MainRow("prepare-out-is-a-file", "hinet.data.prepare", _prepare_out_file),
    MainRow("speed-records-blocked", "benchmarks.speed.runner", _speed_blocked),
    MainRow("speed-records-is-a-folder", "benchmarks.speed.runner", _speed_records_folder),
    MainRow("hardware-cuda-absent", "hinet.hardware", lambda tmp: Bad(["--device", "cuda"], ["--device", "cuda"])),
    MainRow("hardware-bad-device", "hinet.hardware", lambda tmp: Bad(["--device", "gpu"], ["--device", "gpu"])),
    MainRow("hardware-threads-0", "hinet.hardware", lambda tmp: Bad(["--threads", "0"], ["--threads 0"])),
    MainRow("roofline-bad-shape", "benchmarks.speed.roofline",
            lambda tmp: Bad(["--shapes", "4y16"], ["--shapes", "4y16"])),
]

MAIN_ROWS = [*TRAIN_ROWS, *ABLATE_ROWS, *TUNE_ROWS, *BENCH_ROWS, *REPORT_ROWS, *OTHER_ROWS]


@pytest.fixture
def no_cuda(monkeypatch):
    """Rows run as on a machine without CUDA, wherever the suite runs."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)


def _snapshot(paths: list[Path]) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in paths}


@pytest.mark.parametrize("row", MAIN_ROWS, ids=[r.id for r in MAIN_ROWS])
def test_main_rows(row: MainRow, tmp_path: Path, capsys, monkeypatch, no_cuda) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HINET_DEBUG", "")
    bad = row.build(tmp_path)
    kept = _snapshot(bad.keep)
    main = _entry(row.command)
    capsys.readouterr()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            code = main(bad.argv)
        except SystemExit as err:  # argparse
            code = err.code
    out = capsys.readouterr()
    assert code == USAGE, (code, out.err)
    _expect_one_line(out.err, bad.words)
    assert not [str(w.message) for w in caught], "warnings on the way to a user error"
    for path, data in kept.items():
        assert path.read_bytes() == data, f"{path} changed"
    for path in bad.absent:
        assert not path.exists(), f"{path} written by a failed command"


def test_study_mismatch_names_only_the_differing_fields(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    bad = _tune_mismatch(tmp_path)
    from hinet import tune

    assert tune.command(bad.argv) == USAGE
    line = _expect_one_line(capsys.readouterr().err, [])
    for same in ("lr", "crop", "batch_size", "train_seed", "protocol", "width"):  # equal in both: not listed
        assert f"{same}=" not in line and f"'{same}'" not in line, line
    assert "recipe.total_iters" in line, line


def test_debug_shows_the_traceback(tmp_path, capsys, monkeypatch):
    from hinet.train import main

    monkeypatch.chdir(tmp_path)
    assert main(["--run-dir", str(tmp_path / "r"), "--recipe", "nope", "--debug"]) == USAGE
    err = capsys.readouterr().err
    assert "Traceback" in err and err.strip().splitlines()[-1].startswith("hinet.train: error: --recipe 'nope'")


# One real process per command: the real entry points (python -m ...), warnings and all.
SUBPROCESS_ROWS = [
    CliRow("train", lambda tmp: (["-m", "hinet.train", "--run-dir", str(tmp / "r"), "--recipe-set", "lr=-1"],
                                 ["lr"])),
    CliRow("ablate", lambda tmp: (["-m", "ablations", "--iters", "0", "--runs-dir", str(tmp / "runs")],
                                  ["--iters 0"])),
    CliRow("tune", lambda tmp: (["-m", "hinet.tune", "--width", "7", "--results", str(tmp / "res")], ["--width"])),
    CliRow("benchmarks.sidd", lambda tmp: (["-m", "benchmarks.sidd", "--weights", str(tmp / "none.pth")],
                                           [str(tmp / "none.pth")])),
    CliRow("report", lambda tmp: (["-m", "hinet.report", "--records", str(tmp / "none")], [str(tmp / "none")])),
    CliRow("speed", lambda tmp: (["-m", "benchmarks.speed", "--records", str(tmp)], [str(tmp)])),
    CliRow("hardware", lambda tmp: (["-m", "hinet.hardware", "--threads", "0"], ["--threads"])),
    CliRow("prepare", _prepare_corrupt_image),
]


@pytest.fixture(scope="module")
def entry_point_runs(tmp_path_factory) -> dict[str, tuple[subprocess.CompletedProcess, list[str]]]:
    """Every SUBPROCESS_ROWS command started at once (each mostly waits on its imports), then collected."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "HINET_DEBUG": "", "CUDA_VISIBLE_DEVICES": ""}
    started = {}
    for row in SUBPROCESS_ROWS:
        tmp = tmp_path_factory.mktemp(row.id)
        argv, words = row.build(tmp)
        proc = subprocess.Popen([sys.executable, *argv], cwd=tmp, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        started[row.id] = (proc, argv, words)
    done = {}
    for name, (proc, argv, words) in started.items():
        out, err = proc.communicate(timeout=300)
        done[name] = (subprocess.CompletedProcess(argv, proc.returncode, out, err), words)
    return done


@pytest.mark.parametrize("row", SUBPROCESS_ROWS, ids=[r.id for r in SUBPROCESS_ROWS])
def test_entry_points(row: CliRow, entry_point_runs) -> None:
    proc, words = entry_point_runs[row.id]
    assert proc.returncode == USAGE, proc.stderr
    _expect_one_line(proc.stderr, words)


# ------------------------------------------------------------------------------------------ bool overrides
def _bool_fields(cls: type) -> list[str]:
    from hinet.fields import field_types

    return [name for name, hint in field_types(cls).items() if hint is bool]


def _spellings() -> list[tuple[str, bool]]:
    """Every accepted word in three spellings (lower, upper, padded title case) with its meaning."""
    from hinet.fields import FALSE_WORDS, TRUE_WORDS

    words = [(w, True) for w in TRUE_WORDS] + [(w, False) for w in FALSE_WORDS]
    return [(s, meaning) for w, meaning in words for s in (w, w.upper(), f" {w.title()} ")]


BOOL_CASES = [(cls.__name__, name, word, meaning) for cls in (HINetConfig, Recipe) for name in _bool_fields(cls)
              for word, meaning in _spellings()]


def test_the_bool_fields_are_the_expected_ones():
    assert set(_bool_fields(HINetConfig)) >= {"csff", "sam"} and "proxy" in _bool_fields(Recipe)


@pytest.mark.parametrize(("cls", "name", "word", "meaning"), BOOL_CASES,
                         ids=[f"{c}.{n}={w.strip()}{'_' if w != w.strip() else ''}" for c, n, w, _ in BOOL_CASES])
def test_bool_override_means_what_it_says(cls, name, word, meaning):
    """Every accepted word gives the field its meaning, both from the opposite value and from the same one; for
    csff and sam the built network has (or lacks) the modules, and the stored spec keeps the bool."""
    from hinet.fields import apply_overrides
    from hinet.recipes import recipe

    base = TINY if cls == "HINetConfig" else recipe("sidd-proxy")
    flag = "--model-set" if cls == "HINetConfig" else "--recipe-set"
    for start in (True, False):
        obj = dataclasses.replace(base, **{name: start})
        got = apply_overrides(obj, [f"{name}={word}"], flag)
        assert getattr(got, name) is meaning, (start, word)
        assert json.loads(json.dumps(got.to_dict()))[name] is meaning  # what a run's config.json stores
        if isinstance(got, HINetConfig):
            assert HINetConfig.from_dict(got.to_dict()) == got
    if name in ("csff", "sam"):
        names = [n for n, _ in hinet.HINet(got).named_modules()]
        marker = {"csff": "csff_enc", "sam": "sams"}[name]
        assert any(marker in n for n in names) is meaning, (name, word)


@pytest.mark.parametrize("word", ["maybe", "2", "", "truee", "none", "-1", "t", "nein"])
def test_other_words_are_refused_naming_the_field(word):
    from hinet.fields import apply_overrides

    for name in _bool_fields(type(TINY)):
        with pytest.raises(ValueError, match=rf"HINetConfig\.{name}"):
            apply_overrides(TINY, [f"{name}={word}"], "--model-set")


@pytest.mark.parametrize("word", ["no", "OFF", "0", "yes"])
def test_bool_override_through_the_trainer_command_line(word, tmp_path):
    """``--model-set csff=<word> --model-set sam=<word>`` builds the run spec and network the word means."""
    from hinet.fields import TRUE_WORDS
    from hinet.spec import resolve_spec
    from hinet.train import build_parser

    meaning = word.lower() in TRUE_WORDS
    spec = resolve_spec(build_parser().parse_args(["--run-dir", str(tmp_path), *TRAIN_FAST, "--model-set",
                                                   f"csff={word}", "--model-set", f"sam={word}"]))
    assert spec.model.csff is meaning and spec.model.sam is meaning
    stored = json.loads(json.dumps(spec.to_dict()))
    assert stored["model"]["csff"] is meaning and stored["model"]["sam"] is meaning
    names = [n for n, _ in hinet.HINet(spec.model).named_modules()]
    assert any("csff_enc" in n for n in names) is meaning and any("sams" in n for n in names) is meaning


@pytest.mark.parametrize("seed", range(40))
def test_any_random_bytes_are_one_clear_checkpoint_error(tmp_path, seed):
    """torch's weights-only unpickler fails on arbitrary bytes with many exception types: all are one line."""
    from hinet.checkpoint import CheckpointError, read_checkpoint

    path = tmp_path / "random.pth"
    path.write_bytes(np.random.default_rng(seed).integers(0, 256, 64 + 16 * seed, dtype=np.uint8).tobytes())
    with pytest.raises(CheckpointError, match="random.pth") as exc:
        read_checkpoint(path)
    assert "\n" not in str(exc.value) and "weights_only=False" not in str(exc.value)
