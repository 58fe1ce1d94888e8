"""Run logs: CSV files (always), TensorBoard (when installed) and a live progress bar on a terminal."""

from __future__ import annotations

import csv
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .rundir import RunDir


class CsvLog:
    """Appends rows to a CSV file; on resume, rows past the resumed step (written after it by a killed run) go."""

    def __init__(self, path: Path, resume_step: int | None = None) -> None:
        self.path = path
        self.fields: list[str] | None = None
        if path.is_file() and resume_step is not None:
            self._truncate_after(resume_step)
        elif path.is_file():
            path.unlink()

    def _truncate_after(self, step: int) -> None:
        lines = self.path.read_text().splitlines(keepends=True)
        if lines and not lines[-1].endswith("\n"):
            lines.pop()  # a row cut short by the kill
        reader = csv.DictReader(lines)
        fields, rows = reader.fieldnames, [r for r in reader if int(float(r["step"])) <= step]
        if fields:
            with open(self.path, "w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=fields)
                writer.writeheader()
                writer.writerows(rows)
            self.fields = list(fields)

    def write(self, row: dict[str, Any]) -> None:
        new = self.fields is None
        if new:
            self.fields = list(row)
        with open(self.path, "a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=self.fields, extrasaction="ignore")
            if new:
                writer.writeheader()
            writer.writerow({k: _fmt(v) for k, v in row.items()})


def _fmt(v: Any) -> Any:
    return f"{v:.6g}" if isinstance(v, float) else v


def read_csv(path: Path) -> list[dict[str, float]]:
    """Rows of a run log as floats (empty when the file is absent)."""
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return [{k: float(v) for k, v in r.items() if v not in ("", None)} for r in csv.DictReader(f)]


class RunLogger:
    """Train/eval rows to CSV and TensorBoard, and a progress display (rich bar on a terminal, lines otherwise)."""

    def __init__(self, run: RunDir, *, resume_step: int | None, progress: bool, tensorboard: bool) -> None:
        self.train = CsvLog(run.train_log, resume_step)  # a row per log interval: step, loss, lr, img_s ...
        self.eval = CsvLog(run.eval_log, resume_step)  # a row per evaluation: step, the task's metrics (+ ema_*)
        self.tb = _tensorboard(run.tensorboard) if tensorboard else None
        self.bar = _Bar() if progress and sys.stderr.isatty() else None
        self._last_line = 0.0

    def start_epoch(self, epoch: int, epochs: int, steps: int, done: int) -> None:
        if self.bar is not None:
            self.bar.start(f"epoch {epoch + 1}/{epochs}", steps, done)

    def train_row(self, row: dict[str, Any], advance: int) -> None:
        self.train.write(row)
        if self.tb is not None:
            for key in ("loss", "lr", "img_s"):
                self.tb.add_scalar(f"train/{key}", row[key], int(row["step"]))
        text = f"loss {row['loss']:.4f}  lr {row['lr']:.2e}  {row['img_s']:.0f} img/s"
        if self.bar is not None:
            self.bar.update(advance, text)
        elif time.monotonic() - self._last_line > 10:  # a line every 10 s keeps CI logs short
            self._last_line = time.monotonic()
            print(f"epoch {int(row['epoch']) + 1} step {int(row['step'])}  {text}", file=sys.stderr, flush=True)

    def eval_row(self, row: dict[str, Any], metric: str = "") -> None:
        self.eval.write(row)
        if self.tb is not None:
            for key, value in row.items():
                if key not in ("epoch", "step", "epochs_done"):
                    self.tb.add_scalar(f"eval/{key}", value, int(row["step"]))
        shown = [k for k in row if k not in ("epoch", "step", "epochs_done")]
        if metric:
            shown = [k for k in shown if k.removeprefix("ema_") == metric]
        parts = [f"{k} {row[k]:.2f}" for k in shown]
        message = f"eval after {row['epochs_done']:.2f} epochs: " + "  ".join(parts)
        if self.bar is not None:
            self.bar.console.print(message)
        else:
            print(message, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
        if self.tb is not None:
            self.tb.close()


def _tensorboard(path: Path) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is optional
        return None
    return SummaryWriter(str(path))


class _Bar:
    """rich progress bar: epoch, steps, loss, lr, img/s, elapsed and ETA."""

    def __init__(self) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[text]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            transient=False,
        )
        self.console = self.progress.console
        self.task = None
        self.progress.start()

    def start(self, description: str, total: int, done: int) -> None:
        if self.task is not None:
            self.progress.stop_task(self.task)
        self.task = self.progress.add_task(description, total=total, completed=done, text="")

    def update(self, advance: int, text: str) -> None:
        self.progress.update(self.task, advance=advance, text=text)

    def stop(self) -> None:
        self.progress.stop()
