"""Training: state, optimizers, jitted steps that emit traces, and the host loop."""

from jaxdyn.train.loop import TrainResult, build_model, capture_spec, evaluate, load_run, train
from jaxdyn.train.optim import (
    PlateauState,
    get_learning_rate,
    make_optimizer,
    plateau_update,
    set_learning_rate,
)
from jaxdyn.train.state import TrainState, init_train_state
from jaxdyn.train.step import make_analysis_step, make_eval_step, make_train_step, masked_xent
from jaxdyn.train.tasks import Stream, TaskData, lm_task, load_task

__all__ = [
    "PlateauState",
    "Stream",
    "TaskData",
    "TrainResult",
    "TrainState",
    "build_model",
    "capture_spec",
    "evaluate",
    "get_learning_rate",
    "init_train_state",
    "lm_task",
    "load_run",
    "load_task",
    "make_analysis_step",
    "make_eval_step",
    "make_optimizer",
    "make_train_step",
    "masked_xent",
    "plateau_update",
    "set_learning_rate",
    "train",
]
