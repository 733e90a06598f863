#!/bin/bash
# Issue 11's whole-host figure, prepared for a lent many-core host (one device call of about 6 minutes):
# benchmarks/cores.py (EM, HalfCheetahSpeed, n = 100, k = 5, whole 2M runs beside the raw HalfCheetah-v5 rate of the
# same processes) with the solver's own defaults (--rollout workers, one worker per usable core, 8 copies per
# policy), then one worker fewer (a core left to the main process and the OS), then half the workers, then 32
# copies per policy. Every row keeps phase_seconds (learning, rollout, evaluation), start_up_s and rollout_seconds
# (each worker's loop, MuJoCo steps and barrier waits; the main process's share) per run.
# The update alone was measured on such a host on 2026-11-27 (benchmarks/results/update_parallel_16.json); rerun it
# with UPDATE=1. BINS=1 adds the defaults with --critic-bins 20 (the cheaper update that ten seeds on two cores
# could not tell apart from the default's welfare, README "Cores"; about 1.5 minutes more). CUDA=1 adds the defaults
# with --cuda (the update on the host's GPU, the policies still in the CPU workers; skipped where torch finds no CUDA).
# SHAPES="default one_fewer half_workers envs32" (the default) picks the CPU runs, e.g. SHAPES="default envs32" to
# leave time for BINS and CUDA in one device call; the shape rollout_stats (not in the default list) runs the defaults
# with --norm-obs-update rollout, no per-step barrier between the workers (README "Cores"), and rollout_stats_cuda
# runs that with the update on the GPU as well: the two levers the 16-core host's phases point at (its update took
# 27.3 s of an 82.9 s run on 8 CPU threads, its rollouts 40.9 s bound by the workers' per-step meetings), together.
#
# A host without rmdp's libraries: carry `bash benchmarks/offline_wheels.sh DIR` and install them first (its header).
#
#   bash benchmarks/cores_host.sh OUT_DIR [TIMESTEPS]
for a in "$@"; do case $a in -h|--help) sed -n '2,/^[^#]/{/^#/s/^# \{0,1\}//p}' "$0"; exit 0;; esac; done  # the header above is the help
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
# a --cuda run where torch finds a CUDA device, else one line saying it was skipped
run_cuda() { if python3 -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then run "$@" --cuda;
             else echo "== $* --cuda skipped: torch finds no CUDA device here"; fi; }
for shape in ${SHAPES:-default one_fewer half_workers envs32}; do
  case $shape in
    default) run --processes "$P" --tag _host_default ;;
    one_fewer) run --processes "$(( P > 1 ? P - 1 : 1 ))" --tag _host_one_fewer ;;
    half_workers) run --processes "$(( P > 1 ? P / 2 : 1 ))" --tag _host_half_workers ;;
    envs32) run --processes "$P" --num-envs 32 --tag _host_envs32 ;;
    rollout_stats) run --processes "$P" --norm-obs-update rollout --tag _host_rollout_stats ;;
    rollout_stats_cuda) run_cuda --processes "$P" --norm-obs-update rollout --tag _host_rollout_stats_cuda ;;
    *) echo "error: unknown shape $shape in SHAPES (default, one_fewer, half_workers, envs32, rollout_stats, rollout_stats_cuda)" >&2; exit 2 ;;
  esac
done
if [ "${BINS:-0}" = 1 ]; then
  run --processes "$P" --critic-bins 20 --tag _host_bins20
fi
if [ "${CUDA:-0}" = 1 ]; then
  run_cuda --processes "$P" --tag _host_cuda
fi
# Last (the runs above are written already if the call's time runs out): where start-up goes on this host, which took
# 10.5-13.2 s of each 2M run on the 16-core host against 2.3-2.5 s here (each piece in a fresh interpreter; then
# the solver's own start_up_s at 1, 4 and P workers for one iteration). On the 2-core machine
# (results/rollout_workers/start_up_pieces_2core.txt): torch 1.4 s, torch._dynamo (which torch.optim's first
# optimizer imports) 0.9 s more, EM's start-up 2.5-2.8 s at 1, 4 and 16 workers alike.
echo "== start-up pieces"
python3 - "$P" <<'PY' 2>&1 | grep -v settotalmass | tee "$out/start_up_pieces.txt"
import glob, json, subprocess, sys, tempfile, time
def seconds(args):
    start = time.perf_counter()
    subprocess.run([sys.executable, *args], check=True, capture_output=True)
    return time.perf_counter() - start
for label, code in [("python alone", "pass"), ("import torch", "import torch"),
                    ("import torch, torch._dynamo", "import torch, torch._dynamo"),
                    ("import torch, gymnasium, mujoco, rmdp_envs", "import torch, gymnasium, mujoco, rmdp_envs"),
                    ("... and make one HalfCheetahSpeed", "import torch, rmdp_envs, gymnasium; gymnasium.make('rmdp/HalfCheetahSpeed-v0')"),
                    ("import torch.utils.tensorboard (imports TensorFlow where installed)", "import torch.utils.tensorboard"),
                    ("everything EM imports (solvers/em_ppo.py --help)", None)]:
    print(f"{seconds(['solvers/em_ppo.py', '--help'] if code is None else ['-c', code]):7.2f} s  {label}", flush=True)
# the imports of EM's start that take longest, by cumulative time (python -X importtime)
lines = subprocess.run([sys.executable, "-X", "importtime", "solvers/em_ppo.py", "--help"], capture_output=True,
                       text=True).stderr.splitlines()
fields = [line.split("|") for line in lines if line.startswith("import time:")]  # self us | cumulative us | module
rows = sorted((int(cumulative), module.rstrip()) for _, cumulative, module in fields if cumulative.strip().isdigit())
print("slowest imports (cumulative us, module):", flush=True)
for micros, module in rows[::-1][:15]:
    print(f"{micros:12d}  {module}", flush=True)
for workers in sorted({1, 4, int(sys.argv[1])}):
    with tempfile.TemporaryDirectory() as out:
        wall = seconds(["solvers/em_ppo.py", "--env-id", "rmdp/HalfCheetahSpeed-v0", "--k", "5", "--total-timesteps",
                        "10240", "--num-workers", str(workers), "--output-dir", out])
        result = json.loads(open(glob.glob(f"{out}/*/result.json")[0]).read())
        print(f"{result['start_up_s']:7.2f} s  start_up_s of EM with {workers} workers (whole one-iteration run {wall:.1f} s)",
              flush=True)
PY
