#!/bin/bash
# Wheels for running the benchmarks on a host without a package index that already has Python, numpy and torch
# (a lent GPU machine, say): rmdp's other runtime libraries at the versions constraints.txt pins (the same
# MuJoCo, Gymnasium and PettingZoo as every result file here), plus their needs such hosts lack, for that host's
# Python. Carry DIR there and install with
#   python3 -m pip install --no-index --no-deps --target /tmp/site DIR/*.whl && export PYTHONPATH=/tmp/site:$PWD
# (a session on 2026-11-27 lost a device start to a missing pettingzoo: rmdp_envs imports it; threadpoolctl, which
# rmdp_train imports since the solvers pin numpy's BLAS to one thread, comes along in case the host lacks it).
#
#   bash benchmarks/offline_wheels.sh DIR [PYTHON_VERSION]      # default 3.12; about 26 MB
for a in "$@"; do case $a in -h|--help) sed -n '2,/^[^#]/{/^#/s/^# \{0,1\}//p}' "$0"; exit 0;; esac; done  # the header above is the help
set -euo pipefail
out=${1:?usage: bash benchmarks/offline_wheels.sh DIR [PYTHON_VERSION]}; py=${2:-3.12}
cd "$(dirname "$0")/.."
# pinned by constraints.txt (they change results) ...
wheels=()
for name in gymnasium mujoco mujoco-core mujoco-studio pettingzoo tyro threadpoolctl; do
  version=$(sed -n "s/^$name==//p" constraints.txt)
  [ -n "$version" ] || { echo "error: constraints.txt pins no $name" >&2; exit 2; }
  wheels+=("$name==$version")
done
# ... and their own needs, at versions known to install beside them (any recent version would do)
wheels+=(farama-notifications==0.0.6 glfw==2.11.0 pyopengl==3.1.10 docstring_parser==0.18.0 typeguard==4.6.1
         typing_extensions==4.16.0)
platforms=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64; do
  platforms+=(--platform "$p")
done
mkdir -p "$out"
python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$py" --implementation cp "${platforms[@]}" \
  -d "$out" "${wheels[@]}"
ls "$out"
du -sh "$out"
