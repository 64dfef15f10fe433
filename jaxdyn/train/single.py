"""The single-model parts of the host loop: evaluation, the chunk order, the loop's
:class:`Single` strategy (a population's is :class:`jaxdyn.train.population_loop.Population`)
and the checkpoint metadata both share. Re-exported by :mod:`jaxdyn.train.loop`."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from jaxdyn.checkpoint import to_jsonable
from jaxdyn.config import RunConfig
from jaxdyn.models.taps import initial_carry
from jaxdyn.trace.records import batch_means
from jaxdyn.train.build import compiled_steps
from jaxdyn.train.logs import epoch_row, ppl
from jaxdyn.train.optim import PlateauState, get_learning_rate, plateau_update, set_learning_rate
from jaxdyn.train.state import init_train_state
from jaxdyn.train.tasks import Stream


def evaluate(eval_step, params, stream: Stream, bptt: int, *, model=None) -> float:
    """Mean per-token cross-entropy of ``params`` on a stream (from the initial carry).

    Args:
      eval_step: ``make_eval_step(model)``.
      params: the model's parameters.
      stream: the evaluation stream.
      bptt: chunk length.
      model: the model, for its initial carry (``jaxdyn.models.taps``); None: the
        LSTM layout's zero carry (old callers).
    """
    if model is None:
        from jaxdyn.models.lstm import zero_carry

        carry = zero_carry(params, stream.inputs.shape[0])
    else:
        carry = initial_carry(model, params, stream.inputs.shape[0])
    total = jnp.zeros(())
    count = jnp.zeros(())
    for k in range(stream.num_chunks(bptt)):
        t, c, carry = eval_step(params, carry, stream.chunk(k, bptt))
        total, count = total + t, count + c
    total, count = jax.device_get((total, count))
    if count == 0:
        raise ValueError("evaluation stream has no tokens")
    return float(total / count)


def chunk_offset(seed: int, epoch: int, n_chunks: int) -> int:
    """The chunk an epoch starts at with ``data_order = "per_member"`` (0 with one chunk).

    Drawn from ``(seed, epoch)`` on the host, so member ``m`` of a population and a
    single run with seed ``seed + m`` see the same order.
    """
    if n_chunks < 2:
        return 0
    return int(np.random.default_rng([seed, epoch]).integers(n_chunks))


class Single:
    """The loop's strategy for one model (see :class:`~jaxdyn.train.population_loop.Population`)."""

    seeds = None
    per_member = False

    def __init__(self, cfg: RunConfig, model, tx, spec, batch_size: int, init_params):
        self.cfg, self.model = cfg, model
        self.step_plain, self.step_capture, self.eval_step = compiled_steps(model, tx, spec)
        self.state = init_train_state(model, tx, cfg.seed, batch_size, params=init_params)
        self.first = self.state
        self.batch_size = batch_size

    def reset_carry(self, state):
        return state._replace(carry=initial_carry(self.model, state.params, self.batch_size))

    def batch(self, stream: Stream, position: int, epoch: int, bptt: int):
        n = stream.num_chunks(bptt)
        offset = chunk_offset(self.cfg.seed, epoch, n) if self.cfg.data_order != "shared" else 0
        return stream.chunk((position + offset) % n, bptt)

    def host_step(self, state) -> int:
        return int(state.step)

    def evaluate(self, params, stream, bptt):
        return evaluate(self.eval_step, params, stream, bptt, model=self.model)

    def lrs(self, opt_state):
        return get_learning_rate(opt_state)

    def mean(self, losses):
        return float(jnp.mean(jnp.stack(losses)))

    def empty_loss(self):
        return float("nan")

    def check_finite(self, recent, step_no):
        if not math.isfinite(recent):
            raise FloatingPointError(f"training loss is {recent} at step {step_no}")

    def postfix(self, recent) -> float:
        return recent

    def step_rows(self, step, epoch, recent):
        return [{"step": step, "epoch": epoch, "loss": recent}]

    def init_plateau(self):
        return PlateauState()

    def plateau(self, state, plateau, val, lr, on):
        if on:
            plateau, new_lr, _ = plateau_update(plateau, val, lr, self.cfg.optim.plateau_factor)
            if new_lr != lr:
                state = state._replace(opt_state=set_learning_rate(state.opt_state, new_lr))
            return state, plateau
        return state, PlateauState(best=min(plateau.best, val))  # the best is still tracked

    def first_rows(self, val, lr):
        return [epoch_row(0, 0, float("nan"), val, lr, 0.0)]

    def epoch_rows(self, epoch, step, train_loss, val, lr, seconds):
        return [epoch_row(epoch, step, train_loss, val, lr, seconds)]

    def epoch_line(self, rows, train_loss) -> str:
        (row,) = rows
        lr = row["lr"]
        return (
            f"epoch {row['epoch']:3d} | step {row['step']:6d} | train ppl {ppl(train_loss):8.2f} | "
            f"valid ppl {row['valid_ppl']:8.2f} | lr {'-' if lr is None else f'{lr:g}'} | "
            f"{row['seconds']:.1f}s"
        )

    def meta(self, cfg, data, epoch, chunk, plateau, history, kind, losses):
        meta = _meta(cfg, data, epoch, chunk, plateau, history, kind)
        meta["epoch_losses"] = [float(x) for x in jax.device_get(losses)]
        return meta

    def restore(self, meta):
        losses = [jnp.float32(x) for x in meta.get("epoch_losses", [])]
        return PlateauState(best=float(meta["plateau_best"])), losses

    def emit(self, trace, sinks, writer, step_no, epoch):
        _emit(trace, sinks, writer, step_no, epoch)

    def describe(self) -> str:
        return ""


def _meta(cfg, data, epoch, chunk, plateau, history, kind):
    return to_jsonable(
        {
            "kind": kind,
            "epoch": epoch,
            "chunk": chunk,
            "plateau_best": plateau.best if math.isfinite(plateau.best) else 1e30,
            "history": history,
            "config": cfg.training_dict(),
            "vocab": data.vocab.to_dict(),
            "out_vocab": data.out_vocab.to_dict() if data.out_vocab is not data.vocab else None,
            "task": data.kind,
            "train_tokens": data.train.num_tokens,
        }
    )


def _emit(trace, sinks, writer, step_no, epoch):
    means, pg = jax.device_get((batch_means(trace), trace["reduced"].get("param_grad", {})))
    row = {"step": step_no, "epoch": epoch, **{k: float(v) for k, v in means.items()}}
    for path, stats in pg.items():
        row[f"param_grad/{path}/te"] = float(stats["te"]) if "te" in stats else None
    writer.jsonl("traces.jsonl", row)
    for sink in sinks:
        sink(step_no, epoch, trace)
