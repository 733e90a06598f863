#!/bin/bash
# Issue 11's whole-host figure, prepared for a lent many-core host (one device call of about 6 minutes):
# benchmarks/cores.py (EM, HalfCheetahSpeed, n = 100, k = 5, whole 2M runs beside the raw HalfCheetah-v5 rate of the
# same processes) with the solver's own defaults (--rollout workers, one worker per usable core, 8 copies per
# policy), then one worker fewer (a core left to the main process and the OS), then half the workers, then 32
# copies per policy. Every row keeps phase_seconds (learning, rollout, evaluation), start_up_s and rollout_seconds
# (each worker's loop, MuJoCo steps and barrier waits; the main process's share) per run.
# The update alone was measured on such a host on 2026-11-27 (benchmarks/results/update_parallel_16.json); rerun it
# with UPDATE=1. BINS=1 adds the defaults with --critic-bins 20 (the cheaper update that ten seeds on two cores
# could not tell apart from the default's welfare, README "Cores"; about 1.5 minutes more).
#
# A host without rmdp's libraries: carry `bash benchmarks/offline_wheels.sh DIR` and install them first (its header).
#
#   bash benchmarks/cores_host.sh OUT_DIR [TIMESTEPS]
set -uo pipefail
out=${1:?usage: bash benchmarks/cores_host.sh OUT_DIR [TIMESTEPS]}; T=${2:-2000000}
mkdir -p "$out"
P=$(python3 -c "import os; print(len(os.sched_getaffinity(0)))")
if [ "${UPDATE:-0}" = 1 ]; then
  echo "== update_parallel"; python3 benchmarks/update_parallel.py --out "$out" --repeats 2 2>&1 | grep -v '^repeat'
fi
# the raw rate steps Gymnasium's own HalfCheetah-v5, whose XML MuJoCo 4 warns about once per process: keep the
# device call's output tail for the results
run() { echo "== $*"; python3 benchmarks/cores.py --out "$out" --timesteps "$T" --rollout workers "$@" 2>&1 |
        grep -v -e '^{' -e 'settotalmass' -e '^$' ; }
run --processes "$P" --tag _host_default
run --processes "$(( P > 1 ? P - 1 : 1 ))" --tag _host_one_fewer
run --processes "$(( P > 1 ? P / 2 : 1 ))" --tag _host_half_workers
run --processes "$P" --num-envs 32 --tag _host_envs32
if [ "${BINS:-0}" = 1 ]; then
  run --processes "$P" --critic-bins 20 --tag _host_bins20
fi
