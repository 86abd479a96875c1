#!/usr/bin/env bash
# The GPU rows of benchmarks/speed.py in one go, on a machine with a CUDA GPU, torch, accelerate and transformers but
# possibly no diffusers and no index to install from: it installs the wheels carried in .whl/ (diffusers as in our venv,
# lpips; safetensors if the machine's is older than diffusers needs) into $SITE (default /tmp/site), then runs
#   digits (the README run, batch 32) in fp32 and bf16, cifar10-sized (35.7M, batch 128) in bf16, digits bf16 compiled with
#   CUDA graphs (--cudagraphs: does replaying graphs take the host out of the digits step?), cifar10-sized bf16 with --compile,
#   and cifar10-sized in fp32 (compiling is the slow, uncertain part: the compiled rows skip sampling; fp32 is least needed);
#   the eager bf16 rows and digits fp32 also profile 5 steps (--profile: time by kind of op, an idle GPU, a bf16 matmul for scale),
# each writing speed-gpu-<row>.json and .log to $OUT (default benchmarks/results). At most ~6 minutes (TOTAL, plus the install).
# The wheels, once, on a machine with an index (.whl/ is git-ignored through .git/info/exclude):
#   echo /.whl/ >> .git/info/exclude
#   w='--no-deps --only-binary=:all: --python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64
#      --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64'
#   pip download $w -d .whl diffusers==0.42.1 lpips && pip download $w -d .whl/if-old safetensors==0.8.0
# Then, on the machine with a CUDA GPU, with the .whl/ folder beside the repository:   bash benchmarks/gpu_speed.sh
# A quick check of this script's logic on the CPU (tiny sizes, a few steps):   SPEED_TINY=1 OUT=/tmp/o bash benchmarks/gpu_speed.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-benchmarks/results}
SITE=${SITE:-/tmp/site}
mkdir -p "$OUT"

wheels=(.whl/*.whl)
[ -e "${wheels[0]}" ] || { echo "No wheels in .whl/: download them first (the commands at the top of this script) and copy .whl/ to this machine."; exit 1; }
old_safetensors=$(python3 -c "
import importlib.metadata as m
try: v = tuple(int(x) for x in m.version('safetensors').split('.')[:2])
except m.PackageNotFoundError: v = (0, 0)
print(int(v < (0, 8)))")
[ "$old_safetensors" = 1 ] && wheels+=(.whl/if-old/safetensors-*.whl)
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" "${wheels[@]}" || exit 1
export PYTHONPATH="$SITE:$PWD"
python3 -c "import torch, diffusers; print('torch', torch.__version__, 'diffusers', diffusers.__version__)" || exit 1

if [ "${SPEED_TINY:-0}" = 1 ]; then       # the same rows, tiny: checks the script, measures nothing
    common=(--device cpu --threads 1 --steps 2 --warmup 1 --ddim-steps 2)
    digits_batch=4; cifar=(--teacher cifar10-sized --cifar-scale 0.0625 --batch-size 2); sample=(--sample-batch 4)
    export TORCH_COMPILE_DISABLE=1      # inductor on a busy 2-core CPU takes many minutes; the compile rows' flow still runs
    graphs=(--compile)                  # CUDA graphs need a GPU
else
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
    common=(--device cuda --steps 20); digits_batch=32; cifar=(--teacher cifar10-sized --batch-size 128); sample=()
    graphs=(--compile --cudagraphs)
fi
TOTAL=${TOTAL:-330}      # all rows together stay under this many seconds; TOTAL=540 gives the compiled rows more room

failed=0
row() {      # row LIMIT NAME ARGS...: one speed.py run of at most LIMIT s, its table in NAME.log, its results in NAME.json
    local limit=$1 name=$2; shift 2
    local left=$((TOTAL - (SECONDS - start) - 5))
    (( left < limit )) && limit=$left
    (( limit < 30 )) && { echo "!! $name skipped: ${left}s left of TOTAL=${TOTAL}s"; failed=1; return; }
    echo "== $name (at most ${limit}s): speed.py ${common[*]} $*"
    timeout "$limit" python3 benchmarks/speed.py "${common[@]}" "$@" --json "$OUT/speed-gpu-$name.json" > "$OUT/speed-gpu-$name.log" 2>&1
    local rc=$?
    tail -n 24 "$OUT/speed-gpu-$name.log"
    [ $rc = 0 ] || { echo "!! $name failed (exit $rc; 124 = past ${limit}s), log: $OUT/speed-gpu-$name.log"; failed=1; }
}
start=$SECONDS
row 120 digits-fp32 --teacher digits --batch-size $digits_batch --mixed-precision no "${sample[@]}" --profile 5
row 120 digits-bf16 --teacher digits --batch-size $digits_batch --mixed-precision bf16 "${sample[@]}" --profile 5
row 120 cifar10-bf16 "${cifar[@]}" --mixed-precision bf16 "${sample[@]}" --profile 5
row 150 digits-bf16-cudagraphs --teacher digits --batch-size $digits_batch --mixed-precision bf16 "${graphs[@]}" --sample-batch 0
row 240 cifar10-bf16-compile "${cifar[@]}" --mixed-precision bf16 --compile --sample-batch 0
row 120 cifar10-fp32 "${cifar[@]}" --mixed-precision no "${sample[@]}"
echo "== all rows in $((SECONDS - start)) s"
tables=(); for r in digits-fp32 digits-bf16 digits-bf16-cudagraphs cifar10-fp32 cifar10-bf16 cifar10-bf16-compile; do
    [ -f "$OUT/speed-gpu-$r.json" ] && tables+=("$OUT/speed-gpu-$r.json"); done
[ ${#tables[@]} -gt 0 ] && python3 benchmarks/speed.py --markdown "${tables[@]}"
exit $failed
