"""What the PPO update's budget buys, in one figure drawn from committed ``update_cost.py`` result folders.

No measurement here: each panel redraws one folder's ``update_cost.json`` (one solver on one task, every setting
run on the same seeds). A point is a setting (epochs x minibatches ...): its median transitions per second over the
whole runs (x) against its mean final best-response welfare over seeds, with the 95% bootstrap interval the folder's
summary holds (y), from zero so that gains read at their size across tasks, on one scale per task so that a
task's solvers read against each other. Up and to the left is a dearer update that
learns more; the MuJoCo family's default is drawn filled, in black, each other setting in one colour across panels.
Each panel's title names its solver and task, its legend each setting's seeds; the figure's title the machines.

    python benchmarks/plot_update_cost.py     # -> benchmarks/results/update_cost_more/update_cost.png
    python benchmarks/plot_update_cost.py --folders benchmarks/results/update_cost_bins --out /tmp/bins.png
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import tyro

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from rmdp_envs.files import writable_place  # noqa: E402
from update_cost import DEFAULT as DEFAULT_SETTING  # noqa: E402
from update_cost import MORE, SOLVER_FOLDERS, SOLVERS, TASK_FOLDERS, read_reports, report_task  # noqa: E402


@dataclass
class Args:
    folders: list[str] = field(default_factory=lambda: SOLVER_FOLDERS + TASK_FOLDERS)
    """folders holding an update_cost.json each, one panel each"""
    out: str = f"{MORE}/update_cost.png"
    """the figure's path"""


def panel(report: dict) -> dict:
    """One folder's points: per setting its median throughput, mean best welfare and interval, and the seeds."""
    points = []
    for setting, summary in report["summary"].items():
        seeds = sorted({r["seed"] for r in report["rows"] if r.get("setting") == setting and "best_welfare" in r})
        points.append({"setting": setting, "transitions_per_s": summary["transitions_per_s_median"],
                       "welfare": summary["best_welfare_mean"], "seeds": seeds})
    return {"solver": SOLVERS[report.get("solver", "em")], "task": report_task(report), "machine": report["machine"],
            "points": points}


def plot(panels: list[dict], path: Path) -> None:
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415
    import matplotlib.ticker  # noqa: PLC0415

    columns = min(4, len(panels))  # four to a row (HalfCheetahSpeed's solvers first)
    rows = -(-len(panels) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3.8 * columns, 3.4 * rows + 0.4), squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    colors = {DEFAULT_SETTING: "black"}  # one colour per setting across the panels
    top: dict[str, float] = {}  # per task, the highest interval end (or mean, where a setting has no interval)
    for data in panels:
        for point in data["points"]:
            high = point["welfare"][2] if point["welfare"][2] is not None else point["welfare"][0]
            top[data["task"]] = max(top.get(data["task"], 0.0), high)
    for ax, data in zip(axes.flat, panels):
        for point in sorted(data["points"], key=lambda p: p["transitions_per_s"]):
            mean, low, high = point["welfare"]
            errors = [[mean - low], [high - mean]] if low is not None else None
            filled = point["setting"] == DEFAULT_SETTING
            color = colors.setdefault(point["setting"], f"C{len(colors) - 1}")
            ax.errorbar(point["transitions_per_s"], mean, yerr=errors, fmt="o", color=color, capsize=3,
                        markerfacecolor=color if filled else "white",
                        label=f"{point['setting']}{' (default)' if filled else ''}, {len(point['seeds'])} seeds")
        ax.legend(fontsize=7, loc="lower left")
        ax.set_title(f"{data['solver']}, {data['task'].removeprefix('rmdp/')}", fontsize=9)
        ax.set_xlabel("transitions/s (median, whole 2-core runs)", fontsize=8)
        ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda x, _: f"{x / 1000:g}k"))
        ax.tick_params(labelsize=7)
        xs = [p["transitions_per_s"] for p in data["points"]]
        ax.set_xlim(0, max(xs) * 1.35)
        # from zero, so that a gain reads at its size beside the other tasks' panels; one scale per task, so that
        # one task's solvers read against each other
        ax.set_ylim(0, top[data["task"]] * 1.15)
    for row in axes:
        row[0].set_ylabel("final best-response welfare\n(mean over seeds, 95% interval)", fontsize=8)
    machines = sorted({data["machine"] for data in panels})
    fig.suptitle("PPO update budget (epochs x minibatches), n = 100, k = 5, 2M transitions per run\n"
                 f"{'; '.join(machines)}", fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(args: Args) -> None:
    out = Path(args.out)
    if (problem := writable_place(out)) is not None:
        sys.exit(f"error: --out {out}: {problem}")
    panels = [panel(report) for report in read_reports([Path(folder) for folder in args.folders])]
    plot(panels, out)
    for data in panels:
        for point in data["points"]:
            mean, low, high = point["welfare"]
            print(f"{data['solver']:>18} {data['task']:<26} {point['setting']:>8}: {point['transitions_per_s']:>8,.0f}/s, "
                  f"welfare {mean:.2f}" + ("" if low is None else f" [{low:.2f}, {high:.2f}]") + f", {len(point['seeds'])} seeds")
    print(f"wrote {out}")


if __name__ == "__main__":
    main(tyro.cli(Args))
