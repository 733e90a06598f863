"""Pairs of physical cores of this host, one line each ("0,1"): the first logical CPU of each core
(hyper-thread siblings left idle), among the CPUs this process may use. For ``taskset -c`` in the
pinned 2-core measurements (``cores_pinned.sh``, ``cores_rollout.sh``)."""

import argparse
import glob
import os


def core_pairs() -> list[str]:
    seen, firsts = set(), []
    paths = glob.glob("/sys/devices/system/cpu/cpu[0-9]*/topology/core_id")
    for path in sorted(paths, key=lambda p: int(p.split("cpu")[2].split("/")[0])):
        cpu = int(path.split("cpu")[2].split("/")[0])
        key = (open(path.replace("core_id", "physical_package_id")).read().strip(), open(path).read().strip())
        if key not in seen and cpu in os.sched_getaffinity(0):
            seen.add(key)
            firsts.append(cpu)
    return [f"{a},{b}" for a, b in zip(firsts[0::2], firsts[1::2])]


if __name__ == "__main__":
    argparse.ArgumentParser(description=__doc__).parse_args()  # --help says what this prints, as every script's does
    print("\n".join(core_pairs()))
