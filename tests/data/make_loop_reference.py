"""Reference for tests/test_loop.py: a single-seed run of the pre-merge host loop (commit 0b96cb3)."""

import json
import sys
import tempfile

import jax
import numpy as np

sys.path.insert(0, ".")  # run from the repository root: python tests/data/make_loop_reference.py
from jaxdyn.train import train
from tests.test_loop import REF_CFG, ref_data

with tempfile.TemporaryDirectory() as d:
    data = ref_data()
    n = data.train.num_chunks(REF_CFG.data.bptt)
    # interrupted and resumed once, as a user would
    train(REF_CFG, d, data, progress=False, max_steps=n + 3)
    res = train(REF_CFG, d, data, progress=False)
    leaves = {f"p{i}": np.asarray(x) for i, x in enumerate(jax.tree_util.tree_leaves(res.state))}
    hist = json.dumps([{k: v for k, v in r.items() if k != "seconds"} for r in res.history])
    steps = open(f"{d}/metrics/steps.jsonl").read()
    traces = open(f"{d}/metrics/traces.jsonl").read()
    np.savez(
        "tests/data/loop_single_seed_reference.npz",
        history=np.array(hist),
        steps=np.array(steps),
        traces=np.array(traces),
        **leaves,
    )
    print(len(leaves), res.history[-1])
