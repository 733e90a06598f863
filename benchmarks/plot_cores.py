"""Issue 11's core targets in one figure, drawn from the committed result files that README "Cores" quotes.

No measurement here: each bar is read from the files named beside it (medians where a configuration has several
runs), so the figure can only say what those files say. Left: EM's transitions per second over whole 2M runs
(start-up, learning, final evaluation) beside the raw stepping rate of the same cores (Gymnasium's
``HalfCheetah-v5``, one process per core, random actions), with the 25,000/s and 100,000/s targets. Right: the
ratio of the two, with the 60% target.

    python benchmarks/plot_cores.py        # -> benchmarks/results/cores.png and cores_plot.json
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from statistics import median

import tyro

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from rmdp_envs.files import atomic_write_json  # noqa: E402
from rmdp_envs.results import provenance  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
TWO_CORE_TARGET, SIXTEEN_CORE_TARGET, RATIO_TARGET = 25_000, 100_000, 0.60


@dataclass
class Args:
    out: str = "benchmarks/results"
    """folder for cores.png and cores_plot.json"""


def _load(relative: str) -> dict:
    path = RESULTS / relative
    if not path.is_file():
        sys.exit(f"error: {path} is missing: this figure only redraws committed result files")
    return json.loads(path.read_text())


def from_cores_files(*relatives: str) -> tuple[float, float]:
    """(EM transitions/s, raw steps/s): medians over ``benchmarks/cores.py`` files (one solver run each)."""
    rows = [_load(relative)["rows"][0] for relative in relatives]
    return median(r["solver"]["transitions_per_s"] for r in rows), median(r["raw"] for r in rows)


def from_update_cost(relative: str, setting: str, raw_relative: str) -> tuple[float, float]:
    """(median EM transitions/s of ``setting``'s runs in an ``update_cost.py`` file, the raw median of a raw file)."""
    rows = [r for r in _load(relative)["rows"] if r.get("setting") == setting and "transitions_per_s" in r]
    raw = _load(raw_relative)["summary"]
    return median(r["transitions_per_s"] for r in rows), float(next(iter(raw.values()))["raw_median"])


def from_concurrent_runs(relative: str, setting: str) -> tuple[float, float]:
    """(summed EM transitions/s of concurrent runs, the raw rate measured with them): ``concurrent_runs.py --raw``."""
    entry = _load(relative)["settings"][setting]
    return float(entry["transitions_per_s"]), float(entry["raw"])


def configurations() -> list[dict]:
    """Every bar: its host group, label, the two rates and the files they come from."""
    one = [f"velocity_batch/cores_1_scaling_r{r}.json" for r in (1, 2)]
    two = [f"velocity_batch/cores_2_scaling_r{r}.json" for r in (1, 2)]
    pinned = "sweep_cores/concurrent_runs_cheetah2_2M_pinned.json"
    per_core = "OMP_NUM_THREADS=1, one worker, run i pinned to core i (a run per core, as the one-core runs of cores_scaling.sh)"
    stats = ("norm_obs_update/update_cost.json", "5x4r", "norm_obs_update/cores_2_raw.json")
    host = [("defaults (16 workers, 8 copies per policy)", "rollout_workers/cores_16_host_default.json"),
            ("32 copies per policy", "rollout_workers/cores_16_host_envs32.json"),
            ("32 copies, 16 update threads", "rollout_workers/cores_16_host_envs32_threads.json")]
    bars = [("2-core machine", "1 core, one run (pinned)", from_cores_files(*one), one),
            ("2-core machine", "2 cores, one run (defaults)", from_cores_files(*two), two),
            ("2-core machine", "2 cores, one run, statistics per rollout (opt-in)", from_update_cost(*stats), list(stats[::2])),
            ("2-core machine", "2 cores, a run per core", from_concurrent_runs(pinned, per_core), [pinned])]
    bars += [("lent 16-core host", label, from_cores_files(path), [path]) for label, path in host]
    return [{"host": group, "label": label, "em": round(em), "raw": round(raw), "ratio": round(em / raw, 3),
             "files": files} for group, label, (em, raw), files in bars]


def plot(bars: list[dict], path: Path) -> None:
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415
    import matplotlib.ticker  # noqa: PLC0415

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.2))
    ys = list(range(len(bars)))[::-1]
    colors = ["C0" if bar["host"].startswith("2-core") else "C2" for bar in bars]
    a.barh([y + 0.2 for y in ys], [bar["raw"] for bar in bars], height=0.4, color="lightgrey", label="raw HalfCheetah-v5")
    a.barh([y - 0.2 for y in ys], [bar["em"] for bar in bars], height=0.4, color=colors, label="EM, whole 2M run")
    for y, bar in zip(ys, bars):
        a.annotate(f"{bar['em']:,}", (bar["em"], y - 0.2), fontsize=7, va="center", textcoords="offset points", xytext=(3, 0))
    a.axvline(TWO_CORE_TARGET, ls=":", color="C0", label="25,000/s (2 cores)")
    a.axvline(SIXTEEN_CORE_TARGET, ls="--", color="C2", label="100,000/s (16 cores)")
    a.set(xlabel="transitions (EM) or steps (raw) per second", yticks=ys,
          yticklabels=[f"{bar['label']}\n[{bar['host']}]" for bar in bars])
    a.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda x, _: f"{x / 1000:.0f}k"))
    a.tick_params(axis="y", labelsize=7)
    a.legend(fontsize=7, loc="upper right")
    b.barh(ys, [bar["ratio"] for bar in bars], color=colors)
    for y, bar in zip(ys, bars):
        b.annotate(f"{bar['ratio']:.2f}", (bar["ratio"], y), fontsize=7, va="center", textcoords="offset points", xytext=(3, 0))
    b.axvline(RATIO_TARGET, ls="--", color="grey", label="60% of raw")
    b.set(xlim=(0, 1), xlabel="EM / raw of the same cores", yticks=ys, yticklabels=[])
    b.legend(fontsize=7, loc="upper right")
    fig.suptitle("EM on HalfCheetahSpeed (n = 100, k = 5): issue 11's core targets, from the committed result files "
                 "(cores_plot.json names them)", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(args: Args) -> None:
    bars = configurations()
    out = Path(args.out)
    atomic_write_json(out / "cores_plot.json", {"what": __doc__.split("\n\n")[0], "provenance": provenance(Path(__file__).parent), "bars": bars})
    plot(bars, out / "cores.png")
    for bar in bars:
        print(f"{bar['host']:>18} | {bar['label']:<52} EM {bar['em']:>7,}/s  raw {bar['raw']:>7,}/s  {bar['ratio']:.2f}")
    print(f"wrote {out / 'cores.png'} and {out / 'cores_plot.json'}")


if __name__ == "__main__":
    main(tyro.cli(Args))
