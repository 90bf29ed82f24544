#!/usr/bin/env bash
# The device checks of a session lent a GPU, in one command (about 5 minutes on an H200):
#
#   bash benchmarks/gpu/fetch_wheels.sh          # here, once: the wheels the GPU machine lacks, into .whl/
#   run(command="bash benchmarks/gpu/checks.sh", carry=[".whl"], timeout_s=540)     # the device tool
#
# 1. the CUDA tests (tests/test_gpu.py) but the recipe run, which needs dm_control and MLflow;
# 2. the DreamerV3 update at size12m, ours against TorchRL's, fp32 and bf16 (benchmarks.update_speed);
# 3. one PlaNet CEM plan, ours against TorchRL's CEMPlanner, fp32 and bf16 (benchmarks.plan_speed);
# 4. ours compiled (train.compile reduce-overhead: inductor kernels + CUDA graphs) in bf16 at the same size
#    (benchmarks.speed_harness; TorchRL's compiled step takes minutes to compile, beyond this budget).
# Everything goes to $OUT/gpu.log (one file back); DEVICE=cpu SIZE=small_v3 runs the same steps here, in seconds.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-$(mktemp -d)}
DEVICE=${DEVICE:-cuda}
SIZE=${SIZE:-size12m_v3}
ITERS=${ITERS:-10}
export PYTHONUNBUFFERED=1 MUJOCO_GL=egl PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if [ -d .whl ] && [ "$DEVICE" = cuda ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH="$PYTHONPATH:/tmp/site" || exit 1
fi
log=$OUT/gpu.log
step() { echo "=== $* ($(date +%T))" | tee -a "$log"; timeout 200 "$@" 2>&1 | grep -v "UserWarning\|warnings.warn" | tee -a "$log"; }
step python3 -c "import torch, torchrl, tensordict; print(torch.__version__, torchrl.__version__, tensordict.__version__, torch.cuda.is_available() and torch.cuda.get_device_name())"
if [ "$DEVICE" = cuda ]; then
  step python3 -m pytest -q -p no:cacheprovider -m gpu tests/test_gpu.py -k "not recipe"
fi
for precision in fp32 bf16; do
  step python3 -m benchmarks.update_speed --algo dreamer_v3 --size "$SIZE" --device "$DEVICE" --iters "$ITERS" \
    --precision "$precision"
  step python3 -m benchmarks.plan_speed --device "$DEVICE" --repeats 20 --precision "$precision"
done
step python3 -m benchmarks.speed_harness --impl ours_v3 --size "$SIZE" --device "$DEVICE" --warmup 2 \
  --iters "$ITERS" --precision bf16 --compile reduce-overhead
echo "=== done ($(date +%T))" | tee -a "$log"
