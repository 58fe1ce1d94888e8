"""One training run of any task, end to end: set-up, resume, epochs, evaluation, checkpoints, final weights, summary.

``run(task)`` trains (or resumes) a run in its folder, ``RUN/`` (``rundir.RunDir`` names its files)::

    RUN/config.yaml          the resolved config
    RUN/model.json           the model's description, written before the first step (what readers load)
    RUN/train_log.csv        loss, lr, samples/s every ``log_every`` steps
    RUN/eval_log.csv         the task's metrics of the model and its EMA after evaluated epochs
    RUN/checkpoints/step_*/  full training state (``--resume``)
    RUN/final/               model.safetensors, model_ema.safetensors, config.json (``load_model``, ``--init-from``)
    RUN/summary.json         wall time, epochs, samples/s, metrics, environment

A folder that holds a run is trained again only with ``--resume`` (one in which no step completed may be reused).
Reading a run (evaluation, prediction, generation) goes through ``rundir.open_model`` and never imports the
training machinery: it lives in ``session`` and is imported when a run starts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .rundir import RunResult

if TYPE_CHECKING:
    from .task import Task


def run(task: Task) -> RunResult:
    """Train (or resume) one run of ``task``; returns its directory and summary.

    Raises ``Interrupted`` (after writing a checkpoint) when SIGINT or SIGTERM stops it.
    """
    from .session import run_task  # the loop, optimizer, EMA and schedule load with the first run, not before

    return run_task(task)
