"""How fast EM could run on two cores if its update overlapped the rollouts perfectly: a bound, not a build.

Issue 11 lists "learning overlapped with stepping only if PPO stays on-policy" among the ways to 60% of the raw
stepping rate. PPO stays on-policy if the k policies are dealt into groups that take turns: one group's update
runs while the other group's copies step under their current policies. This script bounds what that could give
from two whole runs already measured the same hour (``benchmarks/cores_scaling.sh``), before anyone builds it:

* the update's work at one thread: the learning phase of the run pinned to one core (the same PPO arithmetic,
  run by the one thread a pipeline could spare it);
* the workers' work on two cores: each worker's busy time in the two-core run (its rollout loop less the time it
  waited at the per-step barrier, which a pipeline could fill), and the main process's own rollout work;
* start-up and the final evaluation, which nothing overlaps.

A perfect pipeline packs all of this work onto the two cores with no idle time and no slowdown from sharing
them, so its wall time is the work divided by two plus what cannot overlap. Anything built would be slower.

    python benchmarks/pipeline_bound.py      # reads and writes benchmarks/results/velocity_batch/
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import tyro

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from rmdp_envs.files import atomic_write_json  # noqa: E402
from rmdp_envs.results import provenance  # noqa: E402


@dataclass
class Args:
    folder: Path = Path("benchmarks/results/velocity_batch")
    """where the alternated runs of ``benchmarks/cores_scaling.sh`` are (``cores_{1,2}_scaling_r*.json``)"""
    out: str = "pipeline_bound.json"
    """file written in ``folder``"""


def solver_row(path: Path) -> tuple[dict, float]:
    """The EM run of a ``benchmarks/cores.py`` result file, and the raw stepping rate of the same call."""
    row = json.loads(path.read_text())["rows"][0]
    return row["solver"], float(row["raw"])


def bound(one_core: dict, two_cores: dict, raw_two_cores: float, cores: int = 2) -> dict:
    """The wall time and rate of a perfect pipeline, built from one run on one core and one run on two."""
    rollout = two_cores["rollout_seconds"]
    workers_busy = sum(w["loop"] - w["barrier"] for w in rollout["workers"])
    main_rollout_work = rollout["main_before"] + rollout["main_after"]
    update_one_thread = one_core["phase_seconds"]["learning"]
    serial = two_cores["start_up_s"] + two_cores["phase_seconds"]["evaluation"]
    wall = (workers_busy + main_rollout_work + update_one_thread) / cores + serial
    rate = two_cores["transitions"] / wall
    return {"workers_busy_s": round(workers_busy, 2), "main_rollout_work_s": round(main_rollout_work, 2),
            "update_one_thread_s": round(update_one_thread, 2), "start_up_and_evaluation_s": round(serial, 2),
            "measured_wall_s": two_cores["wall_s"], "measured_to_raw": round(two_cores["transitions_per_s"] / raw_two_cores, 3),
            "perfect_pipeline_wall_s": round(wall, 1), "perfect_pipeline_transitions_per_s": round(rate),
            "raw": raw_two_cores, "perfect_pipeline_to_raw": round(rate / raw_two_cores, 3)}


def main(args: Args) -> None:
    pairs = []
    for two_path in sorted(args.folder.glob("cores_2_scaling_r*.json")):
        one_path = two_path.with_name(two_path.name.replace("cores_2_", "cores_1_"))
        if not one_path.exists():
            raise SystemExit(f"error: {one_path} is missing: cores_scaling.sh writes the one-core run beside each two-core run")
        one, _ = solver_row(one_path)
        two, raw = solver_row(two_path)
        pairs.append({"one_core": one_path.name, "two_cores": two_path.name, **bound(one, two, raw)})
    if not pairs:
        raise SystemExit(f"error: no cores_2_scaling_r*.json in {args.folder}: run benchmarks/cores_scaling.sh first")
    out = args.folder / args.out
    atomic_write_json(out, {"what": __doc__.split("\n\n")[0], "provenance": provenance(Path(__file__).parent), "pairs": pairs})
    for p in pairs:
        print(f"{p['two_cores']}: measured {p['measured_wall_s']} s ({p['measured_to_raw']} of raw), perfect pipeline "
              f"{p['perfect_pipeline_wall_s']} s, {p['perfect_pipeline_transitions_per_s']:,}/s, "
              f"{p['perfect_pipeline_to_raw']} of raw")
    print(f"wrote {out}")


if __name__ == "__main__":
    main(tyro.cli(Args))
