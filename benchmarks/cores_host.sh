#!/bin/bash
# Issue 11's whole-host figure, prepared for a lent many-core host (one device call of a few minutes):
# benchmarks/cores.py (EM, HalfCheetahSpeed, n = 100, k = 5, whole 2M runs beside the raw HalfCheetah-v5 rate of the
# same processes) with the solver's own defaults (--rollout workers, one worker per usable core, 8 copies per
# policy), then 32 copies per policy (the earlier 16-core rows), then 32 copies with an update thread per core,
# then the defaults with half the workers (8 copies per policy leave 2-3 copies per worker on 16 cores).
# Every file keeps phase_seconds (learning, rollout, evaluation) per run. First (about a minute), the update alone:
# joint at 1, 2, 4, ... threads against the k policies dealt to 2, 3, 5 processes (benchmarks/update_parallel.py).
#
#   bash benchmarks/cores_host.sh OUT_DIR [TIMESTEPS]
set -uo pipefail
out=${1:?usage: bash benchmarks/cores_host.sh OUT_DIR [TIMESTEPS]}; T=${2:-2000000}
mkdir -p "$out"
P=$(python3 -c "import os; print(len(os.sched_getaffinity(0)))")
echo "== update_parallel"; python3 benchmarks/update_parallel.py --out "$out" --repeats 2 2>&1 | grep -v '^repeat'
# the raw rate steps Gymnasium's own HalfCheetah-v5, whose XML MuJoCo 4 warns about once per process: keep the
# device call's output tail for the results
run() { echo "== $*"; python3 benchmarks/cores.py --out "$out" --timesteps "$T" --rollout workers "$@" 2>&1 |
        grep -v -e '^{' -e 'settotalmass' -e '^$' ; }
run --processes "$P" --tag _host_default
run --processes "$P" --num-envs 32 --tag _host_envs32
run --processes "$P" --num-envs 32 --update-threads "$P" --tag _host_envs32_threads
run --processes "$(( P > 1 ? P / 2 : 1 ))" --tag _host_half_workers
