#!/usr/bin/env bash
# GPU checks in one call (for the lent accelerator machine; see benchmarks/RESULTS.md).
# The machine has CUDA JAX, flax, optax, orbax-checkpoint, chex, torch and pytest; it
# reaches no package registry, so jaxdyn is installed without dependencies.
# Usage (from the repository root): OUT=/some/dir bash benchmarks/gpu.sh
set -uo pipefail
OUT="${OUT:-gpu-out}"
mkdir -p "$OUT"
pip install -q --no-deps --no-build-isolation -e . > "$OUT/install.log" 2>&1
python -c "import jax; print(jax.__version__, jax.devices())" > "$OUT/devices.txt" 2>&1
nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1
# kernels' tests on the accelerator (skip the data tests that need the corpora folder)
timeout 240 python -m pytest -q -x tests/test_sparsity.py tests/test_per_type.py tests/test_similarity.py \
    tests/test_cka.py tests/test_pairwise.py tests/test_cd.py tests/test_interdependence.py \
    tests/test_recurrence.py tests/test_train.py -p no:cacheprovider > "$OUT/pytest.txt" 2>&1
echo "pytest rc=$?" >> "$OUT/pytest.txt"
timeout 120 python benchmarks/train_step.py --quick > "$OUT/train_step.txt" 2>&1
timeout 120 python benchmarks/similarity.py --quick > "$OUT/similarity.txt" 2>&1
timeout 120 python benchmarks/sparsity.py --quick > "$OUT/sparsity.txt" 2>&1
tail -n 3 "$OUT"/*.txt
