"""Training: state, optimizers, jitted steps that emit traces, and the host loop."""

from jaxdyn.train.build import build_model, capture_spec, optimizer_for
from jaxdyn.train.loop import TrainResult, evaluate, train
from jaxdyn.train.optim import (
    PlateauState,
    get_learning_rate,
    has_learning_rate,
    learning_rate_of,
    make_optimizer,
    plateau_update,
    set_learning_rate,
)
from jaxdyn.train.run_folder import load_run
from jaxdyn.train.state import TrainState, init_train_state
from jaxdyn.train.step import make_analysis_step, make_eval_step, make_train_step, masked_xent
from jaxdyn.train.tasks import Stream, TaskData, lm_task, load_task
from jaxdyn.train.trajectory import Checkpoint, iter_checkpoints, run_model, trace_stream

__all__ = [
    "Checkpoint",
    "PlateauState",
    "Stream",
    "TaskData",
    "TrainResult",
    "TrainState",
    "build_model",
    "capture_spec",
    "evaluate",
    "get_learning_rate",
    "has_learning_rate",
    "init_train_state",
    "iter_checkpoints",
    "learning_rate_of",
    "lm_task",
    "load_run",
    "load_task",
    "make_analysis_step",
    "make_eval_step",
    "make_optimizer",
    "make_train_step",
    "masked_xent",
    "optimizer_for",
    "plateau_update",
    "run_model",
    "set_learning_rate",
    "trace_stream",
    "train",
]
