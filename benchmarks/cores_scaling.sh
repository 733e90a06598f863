#!/bin/bash
# Issue 11's "measured scaling from 1 to 2 cores" on one host the same hour: benchmarks/cores.py (EM on
# HalfCheetahSpeed, n = 100, k = 5, seed 1, whole runs beside the raw HalfCheetah-v5 rate of the same processes),
# alternating one core (taskset to the first usable CPU: one rollout worker, one update thread) and every usable
# core (the solver's defaults), REPEATS times. Run it from a clean clone: each file records the commit. EXTRA adds
# cores.py flags to every run (EXTRA="--norm-obs-update rollout": the statistics frozen per rollout).
#
#   bash benchmarks/cores_scaling.sh OUT_DIR [REPEATS] [TIMESTEPS]
#   -> OUT_DIR/cores_1_scaling_r{i}.json, OUT_DIR/cores_{P}_scaling_r{i}.json
for a in "$@"; do case $a in -h|--help) sed -n '2,/^[^#]/{/^#/s/^# \{0,1\}//p}' "$0"; exit 0;; esac; done  # the header above is the help
set -euo pipefail
out=${1:?usage: bash benchmarks/cores_scaling.sh OUT_DIR [REPEATS] [TIMESTEPS]}; repeats=${2:-2}; T=${3:-2000000}
mkdir -p "$out"
first=$(python3 -c "import os; print(min(os.sched_getaffinity(0)))")
P=$(python3 -c "import os; print(len(os.sched_getaffinity(0)))")
quiet() { grep -v -e '^{' -e 'settotalmass' -e '^$' || true; }
for i in $(seq 1 "$repeats"); do
  echo "== one core (CPU $first), repeat $i"
  taskset -c "$first" python3 benchmarks/cores.py --processes 1 --timesteps "$T" --rollout workers --update-threads 1 \
    --out "$out" --tag "_scaling_r$i" ${EXTRA:-} 2>&1 | quiet
  echo "== $P cores, repeat $i"
  python3 benchmarks/cores.py --processes "$P" --timesteps "$T" --rollout workers --out "$out" --tag "_scaling_r$i" ${EXTRA:-} \
    2>&1 | quiet
done
