#!/bin/bash
# Re-verify the board's MuJoCo rows under the installed MuJoCo, one process per core, and keep every
# run's stored and re-evaluated numbers (issue 11: lifting the MuJoCo pin to 4.0). Made for the lent
# 16-core device, which has torch but not gymnasium/mujoco/pettingzoo/tyro: it installs the wheels
# carried in .whl/ first. Writes $OUT/verify_<robot>.json and .log.
#   OUT=/tmp/v bash benchmarks/verify_mujoco_rows.sh [robot ...]   (default: Hopper Walker2d HalfCheetah)
for a in "$@"; do case $a in -h|--help) sed -n '2,/^[^#]/{/^#/s/^# \{0,1\}//p}' "$0"; exit 0;; esac; done  # the header above is the help
set -u
OUT=${OUT:-benchmarks/results/mujoco4_verify}
mkdir -p "$OUT"
if [ -d .whl ] && ! python3 -c "import gymnasium, mujoco" 2>/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site:$PWD
fi
python3 -c "import mujoco, gymnasium, numpy; print('mujoco', mujoco.__version__, 'gymnasium', gymnasium.__version__, 'numpy', numpy.__version__)"
robots=${*:-Hopper Walker2d HalfCheetah}
for robot in $robots; do
  start=$(date +%s)
  case "$robot" in Ant) env_id=rmdp/AntSpeed-v1 ;; *) env_id="rmdp/${robot}Speed-v0" ;; esac  # Ant: MuJoCo 4's version
  timeout "${VERIFY_TIMEOUT:-600}" python3 -m leaderboard verify --envs "$env_id" --workers "$(nproc)" \
    --report "$OUT/verify_${robot}.json" > "$OUT/verify_${robot}.log" 2>&1
  echo "$robot: rc $? in $(( $(date +%s) - start )) s; $(tail -1 "$OUT/verify_${robot}.log")"
done
