#!/bin/bash
# Two commits' EM throughput on this host the same day, alternating (a shared host's speed moves between
# minutes, so a before/after figure must not come from two sessions): each commit is cloned clean and
# `benchmarks/cores.py --rollout workers` (EM, HalfCheetahSpeed, n = 100, k = 5, seed 1, whole runs beside the
# raw HalfCheetah-v5 rate of the same processes) runs from its own clone, BEFORE then AFTER, REPEATS times.
# Each run writes OUT/cores_{C}_{before|after}_r{i}.json (C: the cores the process may use, as cores.py names its
# files, whatever PROCESSES says) with the commit that made it; the solver rows' best
# welfare should agree to the bit where AFTER only changed speed.
#
#   bash benchmarks/cores_ab.sh BEFORE AFTER OUT_DIR [REPEATS] [TIMESTEPS] [PROCESSES]
for a in "$@"; do case $a in -h|--help) sed -n '2,/^[^#]/{/^#/s/^# \{0,1\}//p}' "$0"; exit 0;; esac; done  # the header above is the help
set -euo pipefail
before=${1:?usage: bash benchmarks/cores_ab.sh BEFORE AFTER OUT_DIR [REPEATS] [TIMESTEPS] [PROCESSES]}
after=${2:?usage}; out=$(realpath -m "${3:?usage}"); repeats=${4:-3}; T=${5:-2000000}
P=${6:-$(python3 -c "import os; print(len(os.sched_getaffinity(0)))")}
repo=$(git rev-parse --show-toplevel); python=$(command -v python)
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
mkdir -p "$out"
for side in before after; do
  git clone -q "$repo" "$work/$side" && git -C "$work/$side" checkout -q "${!side}"
done
for i in $(seq 1 "$repeats"); do
  for side in before after; do
    echo "== $side (${!side}) repeat $i"
    (cd "$work/$side" && PYTHONPATH="$work/$side" "$python" benchmarks/cores.py --processes "$P" --timesteps "$T" \
       --rollout workers --out "$out" --tag "_${side}_r$i" 2>&1 | grep -v -e 'settotalmass' -e '^$' | tail -n 3)
  done
done
