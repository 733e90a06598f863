#!/bin/bash
# The 2-core measurement of benchmarks/cores.py on a bigger host: one cores.py per --main-share, each
# pinned (taskset) to its own two physical cores, all at once. Used on the lent 16-core host, where a
# 2-core slice is measured without a 2-core machine; the files say which CPUs each run had.
#
#   bash benchmarks/cores_pinned.sh OUT_DIR TIMESTEPS SHARE [SHARE ...]
#   -> OUT_DIR/cores_2_pinned_share{SHARE}.json
for a in "$@"; do case $a in -h|--help) sed -n '2,/^[^#]/{/^#/s/^# \{0,1\}//p}' "$0"; exit 0;; esac; done  # the header above is the help
set -euo pipefail
out=${1:?usage: bash benchmarks/cores_pinned.sh OUT_DIR TIMESTEPS SHARE [SHARE ...]}; timesteps=${2:?usage}; shift 2
mkdir -p "$out"
# pairs of physical cores (benchmarks/core_pairs.py)
mapfile -t cpus < <(python3 benchmarks/core_pairs.py)
if (( ${#cpus[@]} < $# )); then echo "error: ${#cpus[@]} pairs of physical cores for $# shares" >&2; exit 2; fi
i=0; pids=()
for share in "$@"; do
  taskset -c "${cpus[$i]}" python3 benchmarks/cores.py --processes 2 --timesteps "$timesteps" --main-share "$share" \
    --tag "_pinned_share$share" --out "$out" > "$out/pinned_share$share.log" 2>&1 &
  pids+=($!); i=$((i + 1))
done
# optional: a cProfile of the main process of one EM run on a spare pair (PROFILE_TIMESTEPS=..., PROFILE_SHARE=...)
if [[ -n "${PROFILE_TIMESTEPS:-}" ]] && (( ${#cpus[@]} > $# )); then
  ( taskset -c "${cpus[$i]}" python3 -m cProfile -o "$out/profile_2.prof" solvers/em_ppo.py --env-id rmdp/HalfCheetahSpeed-v0 \
      --k 5 --total-timesteps "$PROFILE_TIMESTEPS" --main-share "${PROFILE_SHARE:-0.25}" --output-dir /tmp/rmdp-profile > /dev/null 2>&1
    python3 -c "import pstats, sys; pstats.Stats(sys.argv[1]).sort_stats('tottime').print_stats(35)" "$out/profile_2.prof" \
      > "$out/profile_2.txt" ) &
  pids+=($!)
fi
for pid in "${pids[@]}"; do wait "$pid"; done
