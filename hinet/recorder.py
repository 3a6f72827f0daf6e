"""The one writer of a run's metrics (rank 0): tidy JSONL records, per-image Parquet files and TensorBoard.

Train loss/lr/throughput at every log step, every validation's set means and per-image values, the model's size
at step 0. A resumed run writes the rows of the steps it repeats again; the record store keeps the latest value
of each identity, so nothing is duplicated.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from . import records as rec
from .evaluate import SetResult
from .image_records import image_store, write_image_metrics
from .spec import RunSpec, evaluation_labels, validation_protocols


@dataclass
class Recorder:
    """The one writer of a run's metrics (rank 0): JSONL records, per-image Parquet files, TensorBoard."""

    spec: RunSpec
    run_id: str
    path: Path  # records JSONL
    common: dict[str, Any]
    tensorboard: Any = None  # torch.utils.tensorboard.SummaryWriter or None

    @classmethod
    def open(cls, spec: RunSpec, run_dir: Path, path: Path, run_id: str, env: dict, tensorboard: bool) -> Recorder:
        common = dict(run_id=run_id, family=spec.family, variant=spec.variant, reference=spec.reference,
                      seed=spec.seed,
                      git_commit=env["git_commit"], git_dirty=env["git_dirty"], config_hash=env["config_hash"],
                      device=env["device"], torch_version=torch.__version__, synthetic=spec.synthetic,
                      recipe=spec.recipe.kind)
        writer = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter  # imported only by runs that write event files

            writer = SummaryWriter(log_dir=str(run_dir / "tensorboard"))
        return cls(spec, run_id, path, common, writer)

    @property
    def dataset(self) -> str:
        return ("synthetic-" + self.spec.recipe.task) if self.spec.synthetic else self.spec.recipe.name

    def _append(self, rows: list[rec.Record]) -> None:
        rec.append_records(self.path, rows)

    def model_size(self, params: int, macs: float) -> None:
        runs = [self.common] + [{**self.common, "run_id": f"{self.run_id}@{label}", "variant": label}
                                for label in evaluation_labels(self.spec).values()]
        sizes = {"params": float(params), "macs": float(macs)}
        self._append([r for common in runs for r in rec.make_records(common, sizes, dataset=self.dataset,
                                                                     split="model", protocol="model", step=0)])

    def train(self, step: int, values: dict[str, float]) -> None:
        self._append(rec.make_records(self.common, {k: float(v) for k, v in values.items()}, dataset=self.dataset,
                                      split="train", protocol="train", step=step))
        if self.tensorboard is not None:
            for k, v in values.items():
                self.tensorboard.add_scalar(f"train/{k}", v, step)

    def validation(self, step: int, results: list[SetResult], images: list[tuple[str, torch.Tensor]]) -> None:
        """Set means as records, per-image values as one Parquet file, scalars and images to TensorBoard.

        With ``spec.evaluations`` each evaluation is recorded as its own run (``<run id>@<label>``,
        variant ``label``) under the scoring protocol they share (the first evaluation's name): the
        inference treatment is the variant, so the report compares them like the variants of a family."""
        now = rec.utc_now()
        labels = evaluation_labels(self.spec)
        scoring = validation_protocols(self.spec)[0].name if labels else None
        rows, per_image = [], {}
        for res in results:
            common, protocol = self.common, res.protocol
            if labels:
                label, protocol = labels[res.protocol], scoring
                common = {**self.common, "run_id": f"{self.run_id}@{label}", "variant": label}
            image_rows = per_image.setdefault(common["run_id"], (common, []))[1]
            rows += rec.make_records(common, {k: float(v) for k, v in res.metrics.items()}, dataset=res.dataset,
                                     split="val", protocol=protocol, step=step, time=now)
            for metric in res.metrics:
                image_rows += [(res.dataset, "val", protocol, metric, name, scene, v)
                               for name, scene, v in zip(res.names, res.scenes, res.per_image[metric])]
        for common, image_rows in per_image.values():
            write_image_metrics(image_store(self.path), common, step, image_rows)
        self._append(rows)  # after the per-image files: a set mean is never recorded without its images
        if self.tensorboard is not None:
            for r in rows:
                self.tensorboard.add_scalar(f"val/{r.dataset}/{r.protocol}/{r.metric}", r.value, step)
            for name, grid in images:  # (3, H, 3W): degraded | restored | ground truth
                self.tensorboard.add_image(f"val_images/{name}", grid, step)
            self.tensorboard.flush()

    def close(self) -> None:
        if self.tensorboard is not None:
            self.tensorboard.close()
