#!/bin/bash
# --rollout main vs --rollout workers on one host, in one go (benchmarks/cores.py; EM, HalfCheetahSpeed, n = 100,
# k = 5): the whole host (16 processes, 32 copies per policy, 2M transitions) for both modes one after the other,
# then two 2-core slices pinned (taskset) to their own two physical cores, at once (PROFILE=1: also a cProfile of
# the main process of a --rollout workers run on the whole host). Used on the lent 16-core host.
#
#   bash benchmarks/cores_rollout.sh OUT_DIR [TIMESTEPS_PINNED]
for a in "$@"; do case $a in -h|--help) sed -n '2,/^[^#]/{/^#/s/^# \{0,1\}//p}' "$0"; exit 0;; esac; done  # the header above is the help
set -uo pipefail
out=$1; pinned=${2:-1000000}
mkdir -p "$out"
P=$(python3 -c "import os; print(len(os.sched_getaffinity(0)))")
run() { echo "== $*"; python3 benchmarks/cores.py --out "$out" "$@" 2>&1 | grep -v '^{' ; }
run --processes "$P" --num-envs 32 --timesteps 2000000 --rollout workers --tag _workers
run --processes "$P" --num-envs 32 --timesteps 2000000 --rollout main --tag _main
# pairs of physical cores (benchmarks/core_pairs.py)
mapfile -t cpus < <(python3 benchmarks/core_pairs.py)
echo "== pinned pairs ${cpus[*]:0:4}"
taskset -c "${cpus[0]}" python3 benchmarks/cores.py --processes 2 --timesteps "$pinned" --rollout main --tag _pinned_main --out "$out" > "$out/pinned_main.log" 2>&1 &
taskset -c "${cpus[1]}" python3 benchmarks/cores.py --processes 2 --timesteps "$pinned" --rollout workers --tag _pinned_workers --out "$out" > "$out/pinned_workers.log" 2>&1 &
wait
if [[ -n "${PROFILE:-}" ]]; then  # optional: a cProfile of the main process of a --rollout workers run on the whole host
  python3 -m cProfile -o "$out/profile_workers.prof" solvers/em_ppo.py --env-id rmdp/HalfCheetahSpeed-v0 --k 5 \
    --total-timesteps 1000000 --num-envs 32 --num-workers "$P" --rollout workers --output-dir /tmp/rmdp-profile > /dev/null 2>&1
  python3 -c "import pstats, sys; pstats.Stats(sys.argv[1]).sort_stats('tottime').print_stats(30)" "$out/profile_workers.prof" \
    > "$out/profile_workers.txt"
fi
