#!/bin/sh
# bench/vs_torch.sh: ResNet-18 train and inference img/s of trl (bench/resnet.lua, ResNet-18 v2)
# against PyTorch (bench/torch_resnet.py, torchvision resnet18, NCHW and channels_last), 2
# threads each, run alternately ROUNDS times (one step-median per run), then medians and ratios.
# Inference also runs torch-jit (traced, frozen, optimize_for_inference), as trl runs hybridized.
# MODEL=mobilenet_v2 compares mobilenet_v2_1.0 with torchvision's mobilenet_v2 instead.
#   bench/vs_torch.sh [BATCH=32] [ROUNDS=5] [MODE=both|train|infer] [TRL=build/trl]
# REPS (default 3) timed steps per run; PYTHON (default /usr/bin/python3) runs torch.
# OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE are unset for these commands (the OpenBLAS here detects
# the CPU itself); the header says so. Set TRL_BENCH_KEEP_OPENBLAS_ENV=1 to keep them.
# trl runs with OMP_WAIT_POLICY=passive unless the environment sets a policy (bindings/main.c);
# TRL_BENCH_PASSIVE=1 adds a row that sets it explicitly.
set -e
B=${1:-32}
ROUNDS=${2:-5}
MODE=${3:-both}
TRL=${4:-build/trl}
PY=${PYTHON:-/usr/bin/python3}   # Debian's, with torch and torchvision
REPS=${REPS:-3}
cd "$(dirname "$0")/.."
if [ "${TRL_BENCH_KEEP_OPENBLAS_ENV:-0}" != 1 ]; then
  unset OPENBLAS_CORETYPE OPENBLAS_L2_SIZE
  echo "env: OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset for this benchmark"
else
  echo "env: OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-(unset)} OPENBLAS_L2_SIZE=${OPENBLAS_L2_SIZE:-(unset)}"
fi
export TRL_NUM_THREADS=2
echo "model ${MODEL:-resnet18}, batch $B, $ROUNDS rounds, $REPS timed steps per run," \
  "2 threads, $(nproc) cores, OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-(unset)}, load average $(cut -d' ' -f1-3 /proc/loadavg)"
LOG=$(mktemp)
trap 'rm -f "$LOG"' EXIT
r=1
while [ $r -le "$ROUNDS" ]; do
  "$TRL" bench/resnet.lua "$B" "$MODE" "$REPS" | grep '^RESULT' >> "$LOG"
  if [ "${TRL_BENCH_PASSIVE:-0}" = 1 ]; then
    OMP_WAIT_POLICY=passive "$TRL" bench/resnet.lua "$B" "$MODE" "$REPS" | grep '^RESULT' |
      sed 's/RESULT trl/RESULT trl-passive/' >> "$LOG"
  fi
  "$PY" bench/torch_resnet.py "$B" nchw "$REPS" "$MODE" | grep '^RESULT' >> "$LOG"
  "$PY" bench/torch_resnet.py "$B" cl "$REPS" "$MODE" | grep '^RESULT' >> "$LOG"
  if [ "$MODE" != train ]; then
    "$PY" bench/torch_resnet.py "$B" jit "$REPS" infer | grep '^RESULT' >> "$LOG"
  fi
  r=$((r + 1))
done
"$PY" - "$LOG" <<'PY'
import re, statistics, sys
runs = {}
for line in open(sys.argv[1]):
    f = dict(re.findall(r"(\w+)=(\S+)", line))
    name = line.split()[1]
    runs.setdefault(name, []).append(f)
med = {}
print(f"{'who':12s} {'train img/s':>12s} {'infer img/s':>12s} {'peak RSS MB':>12s}   (medians; per-run values)")
for name, rs in runs.items():
    m = {k: statistics.median(float(r[k]) for r in rs) for k in ("train", "infer", "hwm_mb")}
    med[name] = m
    print(f"{name:12s} {m['train']:12.2f} {m['infer']:12.2f} {m['hwm_mb']:12.0f}   "
          f"train {[round(float(r['train']), 1) for r in rs]} infer {[round(float(r['infer']), 1) for r in rs]}")
torches = [n for n in med if n.startswith("torch")]
best = {k: max(med[n][k] for n in torches) for k in ("train", "infer")} if torches else None
for name in [n for n in med if n.startswith("trl")]:
    t = med[name]
    for k in ("train", "infer"):
        if best and best[k] > 0 and t[k] > 0:
            print(f"{name} / best torch {k}: {t[k] / best[k]:.2f}x")
PY
