"""Scale: EM on HalfCheetahSpeed (or another task, ``--env-id``) with 10^2 to 10^6 users (throughput, peak memory, welfare).

Each case runs ``solvers/em_ppo.py`` as its own process (one at a time, so cases do not compete
for the cores) and samples the resident memory of its whole process tree (solver and env
workers) every 0.2 s from /proc. Transitions per second are the run's transitions over its
whole wall time, start-up, learning and final evaluation included. Writes
``{out}/scale.json``, ``{out}/scale.md`` and ``{out}/scale.png``.

    python benchmarks/scale.py                     # every case of issue 11 (about 20 minutes on 2 cores)
    python benchmarks/scale.py --cases throughput  # n = 100 vs 100,000 only
    python benchmarks/scale.py --cases grid        # the welfare case at n = 100 with evenly spaced targets
    python benchmarks/scale.py --cases draws       # the welfare case at n = 100, each seed its own draw of users
    python benchmarks/scale.py --cases throughput --env-id rmdp/TabularRandom-v0 --out benchmarks/results/scale_tabular

Targets (issue 11): at k = 10, n = 100,000 runs at >= 50% of the transitions/s of n = 100 within
4 GB; n = 10^6 completes 1M transitions within 12 GB; EM's welfare as a fraction of the k-policy
bound W_k at n = 100,000 is within 10% of that at n = 100 (equal transitions); a request too large
for memory fails at once with one ``error:`` line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tyro

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from rmdp_envs.files import atomic_write_json, atomic_write_text  # noqa: E402
from rmdp_envs.results import git_commit, hardware, library_versions, provenance  # noqa: E402

CHEETAH = "rmdp/HalfCheetahSpeed-v0"
CASES = ("throughput", "million", "welfare", "grid", "draws", "refusal")


@dataclass
class Args:
    cases: list[str] = field(default_factory=lambda: [case for case in CASES if case != "draws"])
    """which cases: throughput (n = 100 vs 100,000), million (n = 10^6), welfare (fraction of W_k), grid (the welfare
    case at n = 100 with evenly spaced targets: a small population without a random draw's clumps), draws (the welfare
    case at n = 100 with population seed = training seed, each run its own random draw of users and its own W_k;
    not in the default), refusal"""
    env_id: str = CHEETAH
    """the task (any rmdp/ id with an ``n_agents`` keyword); the welfare and grid cases' k-policy bound is the speed tasks'"""
    k: int = 10
    """policies"""
    throughput_timesteps: int = 400_000
    """transitions of each throughput run"""
    million_timesteps: int = 1_000_000
    """transitions of the n = 10^6 run"""
    welfare_timesteps: int = 2_000_000
    """transitions of each welfare run (n = 100 and n = 100,000)"""
    seed: int = 0
    """training seed of the throughput, million and refusal runs"""
    welfare_seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    """training seeds of the welfare and grid runs (rows of other seeds already in scale.json are kept)"""
    num_workers: int = 1
    """env worker processes per run (the solver's default on 2 cores)"""
    out: str = "benchmarks/results"
    """folder for scale.json / scale.md / scale.png"""
    render_only: bool = False
    """run nothing: write scale.md and the plots again from the folder's scale.json"""


def tree_rss(pid: int) -> int:
    """Resident bytes of ``pid`` and all its descendants (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry))
            except (OSError, IndexError, ValueError):
                continue
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        todo += children.get(p, [])
        try:
            with open(f"/proc/{p}/status") as f:
                total += next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))
        except (OSError, StopIteration):
            continue
    return total


def run_em(n: int, k: int, timesteps: int, seed: int, num_workers: int, extra: list[str] | None = None,
           env_id: str = CHEETAH) -> dict:
    """One EM run as a subprocess: wall time, peak tree RSS, result.json's welfare (or the error line)."""
    with tempfile.TemporaryDirectory(prefix="rmdp-scale-") as out:
        cmd = [sys.executable, str(ROOT / "solvers" / "em_ppo.py"), "--env-id", env_id, "--k", str(k),
               "--n-agents", str(n), "--total-timesteps", str(timesteps), "--seed", str(seed),
               "--num-workers", str(num_workers), "--rollout", "main",  # as scale.json was measured (README "Scale")
               "--output-dir", out, *(extra or [])]
        start = time.time()
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        peak = [0]

        def sample():
            while proc.poll() is None:
                peak[0] = max(peak[0], tree_rss(proc.pid))
                time.sleep(0.2)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _, err = proc.communicate()
        wall = time.time() - start
        sampler.join()
        row = {"n": n, "k": k, "timesteps": timesteps, "seed": seed, "num_workers": num_workers, "wall_s": round(wall, 2),
               "peak_rss_gb": round(peak[0] / 1e9, 3), "returncode": proc.returncode}
        if proc.returncode != 0:
            row["stderr"] = err.strip().splitlines()[-3:]
            return row
        result = json.loads(next(Path(out).glob("*/result.json")).read_text())
        row.update(transitions=result["transitions"], transitions_per_s=round(result["transitions"] / wall),
                   welfare=result["welfare"], best_welfare=result["best_welfare"])
        return row


def k_bound(n: int, k: int, population: str = "uniform", population_seed: int = 0) -> dict:
    import rmdp_envs  # noqa: PLC0415

    env = rmdp_envs.make(CHEETAH, n_agents=n, population=population, population_seed=population_seed)
    return env.unwrapped.welfare_upper_bound(k)


def with_fraction(row: dict, bound: dict) -> dict:
    """``row`` with W_k and the welfare (best response; and the assignment's) as fractions of it."""
    row.update(w_k=bound["welfare"], w_k_derivation=bound["derivation"])
    if row["returncode"] == 0:
        row.update(fraction=round(row["best_welfare"] / bound["welfare"], 4),
                   fraction_assignment=round(row["welfare"] / bound["welfare"], 4))
    return row


def small_population_case(report: dict, args: "Args", case: str, setup, about: dict, question: str,
                          seed_key: str | None = None) -> dict:
    """A control of the welfare case at n = 100 (``grid``, ``draws``): EM for every ``--welfare-seeds`` seed with the
    flags and W_k that ``setup(seed)`` gives, rows of other seeds already in the report kept, and the n = 100,000
    welfare case's mean fraction against this case's. ``seed_key``: a row key that records the seed again (the draws'
    population seed)."""
    kept = {r["seed"]: r for r in report.get(case, {}).get("rows", []) if r.get("k") == args.k
            and r.get("timesteps") == args.welfare_timesteps}
    for seed in args.welfare_seeds:
        flags, bound = setup(seed)
        kept[seed] = row = with_fraction(run_em(100, args.k, args.welfare_timesteps, seed, args.num_workers, flags), bound)
        if seed_key:
            row[seed_key] = seed
        print(json.dumps(row), flush=True)
    rows = [kept[seed] for seed in sorted(kept)]
    mean = float(np.mean([r["fraction"] for r in rows if "fraction" in r]))
    large = report.get("welfare", {}).get("mean_fraction", {}).get("100000")
    return {"rows": rows, **about, "seeds": sorted(kept), "mean_fraction": round(mean, 4),
            "relative_difference_100k_uniform": None if large is None else round(large / mean - 1, 4),
            "question": question}


def check_args(args: Args) -> None:
    """One ``error:`` line for flags no run could use (each case would otherwise record failed runs)."""
    from rmdp_envs.files import writable_place  # noqa: PLC0415
    from rmdp_envs.registration import registered_id  # noqa: PLC0415

    try:
        registered_id(args.env_id)
    except ValueError as e:
        sys.exit(f"error: --env-id: {e}")
    if not 1 <= args.k <= 100:
        sys.exit(f"error: --k must lie in [1, 100] (the smallest population here has 100 users), got {args.k}")
    for name in ("throughput_timesteps", "million_timesteps", "welfare_timesteps"):
        if getattr(args, name) < 1:
            sys.exit(f"error: --{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    if args.seed < 0 or not args.welfare_seeds or min(args.welfare_seeds) < 0:
        sys.exit(f"error: --seed and --welfare-seeds must be integers >= 0 (at least one welfare seed), got "
                 f"{args.seed} and {args.welfare_seeds}")
    if args.num_workers < 0:
        sys.exit(f"error: --num-workers must be >= 0, got {args.num_workers}")
    why = writable_place(args.out, folder=True)
    if why:
        sys.exit(f"error: --out {args.out}: {why}")


def main(args: Args) -> None:
    unknown = set(args.cases) - set(CASES)
    if unknown:
        sys.exit(f"error: unknown cases {sorted(unknown)}; choose from {CASES}")
    if args.env_id != CHEETAH and {"welfare", "grid"} & set(args.cases):
        sys.exit(f"error: the welfare and grid cases measure against HalfCheetahSpeed's k-policy bound; "
                 f"run {args.env_id} with the throughput, million and refusal cases")
    out = Path(args.out)
    path = out / "scale.json"
    try:
        report = json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, ValueError) as e:
        sys.exit(f"error: {path} is not readable JSON ({e}); move it aside or choose another --out")
    if not isinstance(report, dict):
        sys.exit(f"error: {path} holds a JSON {type(report).__name__}, not scale.py's report; choose another --out")
    if args.render_only:
        if not report:
            sys.exit(f"error: --render-only needs the cases of {path}, which {'is empty' if path.is_file() else 'does not exist'}")
        write_views(report, out)
        return
    check_args(args)  # before any run: a bad flag must not become a row of failed runs in the committed files
    for case in CASES:  # cases kept from an earlier run keep that run's provenance
        if case in report:
            report[case].setdefault("provenance", {key: report.get(key) for key in ("machine", "commit", "versions")})
    provenance = dict(machine=hardware(), commit=git_commit(ROOT), versions=library_versions())
    if report.get("env_id", args.env_id) != args.env_id:
        sys.exit(f"error: {path} holds {report['env_id']}'s cases, not {args.env_id}'s: choose another --out")
    report.update(provenance, env_id=args.env_id)
    if "throughput" in args.cases:
        rows = [run_em(n, args.k, args.throughput_timesteps, args.seed, args.num_workers, env_id=args.env_id)
                for n in (100, 100_000)]
        small, large = rows
        ratio = large["transitions_per_s"] / small["transitions_per_s"] if large["returncode"] == 0 else None
        report["throughput"] = {"rows": rows, "ratio_100k_to_100": ratio and round(ratio, 3),
                                "target": "ratio >= 0.5, peak RSS at n = 100,000 <= 4 GB"}
        print(json.dumps(report["throughput"], indent=1))
    if "million" in args.cases:
        row = run_em(1_000_000, args.k, args.million_timesteps, args.seed, args.num_workers, env_id=args.env_id)
        report["million"] = {"row": row, "target": "completes, peak RSS <= 12 GB"}
        print(json.dumps(report["million"], indent=1))
    if "welfare" in args.cases:
        bounds = {n: k_bound(n, args.k) for n in (100, 100_000)}
        kept = {(r["n"], r["seed"]): r for r in report.get("welfare", {}).get("rows", []) if r.get("k") == args.k
                and r.get("timesteps") == args.welfare_timesteps}
        for seed in args.welfare_seeds:
            for n in (100, 100_000):
                kept[(n, seed)] = row = with_fraction(run_em(n, args.k, args.welfare_timesteps, seed, args.num_workers),
                                                      bounds[n])
                print(json.dumps(row), flush=True)
        rows = [kept[key] for key in sorted(kept)]
        means = {n: float(np.mean([r["fraction"] for r in rows if r["n"] == n and "fraction" in r])) for n in (100, 100_000)}
        seeds = sorted({r["seed"] for r in rows})
        report["welfare"] = {"rows": rows, "seeds": seeds, "mean_fraction": {str(n): round(v, 4) for n, v in means.items()},
                             "relative_difference": round(means[100_000] / means[100] - 1, 4),
                             "target": "mean fraction at n = 100,000 within 10% of the mean fraction at n = 100"}
    if "grid" in args.cases:
        bound = k_bound(100, args.k, "grid")
        report["grid"] = small_population_case(
            report, args, "grid", lambda seed: (["--population", "grid"], bound), {"population": "grid"},
            "is the welfare case's gap the yardstick (a random draw of 100 targets clumps, raising W_k) or the learning? "
            "n = 100 evenly spaced targets, the same runs otherwise")
    if "draws" in args.cases:
        # the welfare case's n = 100 compares against one draw of 100 targets (population seed 0), whose W_k is the lowest
        # of 30 draws (bound_by_population.json): here each seed trains on, and is measured against, a draw of its own
        report["draws"] = small_population_case(
            report, args, "draws",
            lambda seed: (["--population-seed", str(seed)], k_bound(100, args.k, population_seed=seed)),
            {"population": "uniform, population seed = training seed"},
            "does the welfare case's n = 100 row depend on its one draw of users? n = 100, each training seed with its "
            "own draw and that draw's W_k", seed_key="population_seed")
    if "refusal" in args.cases:
        row = run_em(10**9, args.k, 100_000, args.seed, args.num_workers, env_id=args.env_id)
        report["refusal"] = {"row": row, "target": "exits at once with one error: line"}
        print(json.dumps(report["refusal"], indent=1))
    failed = [f"{case}: n = {r['n']}, seed {r.get('seed')}: exit {r['returncode']} {' '.join(r.get('stderr', []))[:200]}"
              for case in args.cases if case != "refusal" and case in report
              for r in (report[case]["rows"] if "rows" in report[case] else [report[case]["row"]])
              if r.get("returncode") != 0 and r.get("seed", args.seed) in {args.seed, *args.welfare_seeds}]
    for case in args.cases:
        report[case]["provenance"] = provenance
    atomic_write_json(path, {**report, "provenance": provenance(ROOT)})
    print(f"wrote {path}")
    write_views(report, out)
    if failed:  # the flags were checked first, so a failure is a finding: recorded, and said by the exit status
        sys.exit("error: runs failed (recorded as such in scale.json):\n  " + "\n  ".join(failed))


def write_views(report: dict, out: Path) -> None:
    """scale.md and the plots (scale.png: throughput and memory; scale_welfare.png: the welfare cases), from the report."""
    atomic_write_text(out / "scale.md", markdown(report))
    plot(report, out / "scale.png")
    plot_welfare(report, out / "scale_welfare.png")
    print(f"wrote {out / 'scale.md'} and the plots of the cases it has ({out / 'scale.png'}, {out / 'scale_welfare.png'})")


def markdown(report: dict) -> str:
    lines = [f"# Scale: EM on {report['env_id']}", "",
             f"Machine: {report['machine']}; commit {str(report['commit'])[:10]} (each case's own in scale.json, "
             "`provenance`). "
             "Transitions/s: whole run (start-up, learning, final evaluation) over wall time; memory: peak resident "
             "set of the solver and its env worker together.", "",
             "| case | n | k | transitions | wall s | transitions/s | peak RSS GB | welfare (best response) | fraction of W_k |",
             "|---|---|---|---|---|---|---|---|---|"]
    for case in ("throughput", "million", "welfare", "grid", "draws", "refusal"):
        if case not in report:
            continue
        rows = report[case]["rows"] if "rows" in report[case] else [report[case]["row"]]
        for r in rows:
            lines.append(f"| {case} | {r['n']:,} | {r['k']} | {r.get('transitions', 0):,} | {r['wall_s']} | "
                         f"{r.get('transitions_per_s', 0):,} | {r['peak_rss_gb']} | {r.get('best_welfare', 0):.2f} | "
                         f"{r.get('fraction', '-')} |" if r["returncode"] == 0 else
                         f"| {case} | {r['n']:,} | {r['k']} | - | {r['wall_s']} | - | {r['peak_rss_gb']} | "
                         f"exit {r['returncode']}: {' '.join(r.get('stderr', []))[:160]} | - |")
    if "throughput" in report:
        lines += ["", f"Throughput ratio n = 100,000 / n = 100: {report['throughput']['ratio_100k_to_100']} (target >= 0.5)."]
    if "welfare" in report:
        w = report["welfare"]
        lines += [f"Welfare as a fraction of W_k (best response, final evaluation), mean over seeds {w['seeds']}: "
                  f"n = 100: {w['mean_fraction']['100']} {_fraction_interval(w['rows'], 100)}, n = 100,000: "
                  f"{w['mean_fraction']['100000']} {_fraction_interval(w['rows'], 100_000)}; relative "
                  f"difference {w['relative_difference']} {_relative_interval(w['rows'], w['rows'], 100)} "
                  "(target within +-0.10)."]
    controls = {"grid": "Grid control (case grid: n = 100 evenly spaced targets",
                "draws": "Draws control (case draws: n = 100, seed s trained on and measured against its own draw of users, "
                         "population seed s"}
    for case, label in controls.items():
        if case in report:
            c = report[case]
            lines += [f"{label}, seeds {c['seeds']}): mean fraction {c['mean_fraction']} {_fraction_interval(c['rows'], 100)}; "
                      f"n = 100,000 uniform against it: relative difference {c['relative_difference_100k_uniform']}"
                      f" {_relative_interval(report.get('welfare', {}).get('rows', []), c['rows'], 100)}."]
    from leaderboard.stats import relative_difference  # noqa: PLC0415

    populations = [(label, report[case]["rows"], n) for case, n, label in
                   (("welfare", 100, "n = 100 uniform (population seed 0)"), ("draws", 100, "n = 100, own draws"),
                    ("grid", 100, "n = 100 evenly spaced"), ("welfare", 100_000, "n = 100,000 uniform"))
                   if case in report]
    if populations:
        large = [r["best_welfare"] for r in report.get("welfare", {}).get("rows", [])
                 if r["n"] == 100_000 and r["returncode"] == 0]
        parts = []
        for label, rows, n in populations:
            values = [r["best_welfare"] for r in rows if r["n"] == n and r["returncode"] == 0]
            part = f"{label} {_welfare_interval(values)}"
            if large and n == 100:
                point, low, high = relative_difference(large, values)
                part += f" (n = 100,000 against it {point:+.1%} [{_signed_percent(low)}, {_signed_percent(high)}])"
            parts.append(part)
        lines += ["Welfare itself (best response, mean over seeds): " + "; ".join(parts) + "."]
    if any(case in report for case in ("welfare", "grid", "draws")):
        fewest = min(len(report[case]["seeds"]) for case in ("welfare", "grid", "draws") if case in report)
        lines += ["Brackets: 95% bootstrap interval of the mean over seeds (`leaderboard.stats.interval`, clipped to [0, 1]"
                  + ("; three seeds give wide ones)" if fewest <= 3 else ")")
                  + "; after a relative difference, its unpaired bootstrap interval (`leaderboard.stats.relative_difference`)."]
    return "\n".join(lines) + "\n"


def _welfare_interval(values: list[float]) -> str:
    """``mean [low, high]`` of best-response welfare over seeds, the interval clipped to welfare's floor of 0."""
    from leaderboard.stats import interval  # noqa: PLC0415

    point, low, high = interval(values, low=0.0)
    return f"{point:.2f} [-]" if low is None else f"{point:.2f} [{low:.2f}, {high:.2f}]"


def _signed_percent(value: float | None) -> str:
    return "-" if value is None else f"{value:+.1%}"


def _fraction_interval(rows: list[dict], n: int) -> str:
    from leaderboard.stats import interval  # noqa: PLC0415

    _, low, high = interval([r["fraction"] for r in rows if r["n"] == n and "fraction" in r], low=0.0, high=1.0)
    return "[-]" if low is None else f"[{low:.4f}, {high:.4f}]"


def _relative_interval(large_rows: list[dict], small_rows: list[dict], small_n: int) -> str:
    """The interval of mean fraction at n = 100,000 over mean fraction of ``small_rows`` at ``small_n``, minus one."""
    from leaderboard.stats import relative_difference  # noqa: PLC0415

    large = [r["fraction"] for r in large_rows if r["n"] == 100_000 and "fraction" in r]
    small = [r["fraction"] for r in small_rows if r["n"] == small_n and "fraction" in r]
    if not large or not small:
        return "[-]"
    _, low, high = relative_difference(large, small)
    return "[-]" if low is None else f"[{low:.4f}, {high:.4f}]"


def plot(report: dict, path: Path) -> None:
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    rows = [r for case in ("throughput", "million") if case in report
            for r in (report[case]["rows"] if "rows" in report[case] else [report[case]["row"]]) if r["returncode"] == 0]
    if not rows:
        return
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.4))
    ns = [r["n"] for r in rows]
    a.plot(ns, [r["transitions_per_s"] for r in rows], "o-")
    for r in rows:
        a.annotate(f"{r['transitions'] / 1e6:.1f}M transitions", (r["n"], r["transitions_per_s"]), fontsize=7,
                   textcoords="offset points", xytext=(-20, -12))
    a.set_ylim(0, 1.15 * max(r["transitions_per_s"] for r in rows))
    a.set(xscale="log", xlabel="users n", ylabel="transitions / s (whole run)", title=f"EM, k = {rows[0]['k']}")
    b.plot(ns, [r["peak_rss_gb"] for r in rows], "s-", color="C1")
    b.axhline(4, ls=":", color="grey")
    b.axhline(12, ls="--", color="grey")
    b.set(xscale="log", xlabel="users n", ylabel="peak resident GB", title="memory (limits 4 / 12 GB dotted / dashed)")
    fig.suptitle(f"{report['env_id']} on {report['machine']}", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def plot_welfare(report: dict, path: Path) -> None:
    """Each seed's final welfare as a fraction of W_k, per population, beside the mean and its interval."""
    from leaderboard.stats import interval  # noqa: PLC0415

    welfare_rows, grid_rows = report.get("welfare", {}).get("rows", []), report.get("grid", {}).get("rows", [])
    draw_rows = report.get("draws", {}).get("rows", [])
    groups = [("uniform, n = 100", [r for r in welfare_rows if r["n"] == 100]), ("grid, n = 100", grid_rows),
              ("a draw per seed,\nn = 100", draw_rows), ("uniform, n = 100,000", [r for r in welfare_rows if r["n"] == 100_000])]
    k = next((r["k"] for r in welfare_rows + grid_rows + draw_rows), None)
    groups = [(label, [r["fraction"] for r in rows if "fraction" in r]) for label, rows in groups]
    groups = [(label, values) for label, values in groups if values]
    if not groups:
        return
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, ax = plt.subplots(figsize=(6.8, 3.4))
    for x, (label, values) in enumerate(groups):
        ax.plot([x] * len(values), values, "o", color=f"C{x}", alpha=0.5)
        mean, low, high = interval(values, low=0.0, high=1.0)
        if low is not None:
            ax.errorbar([x + 0.15], [mean], yerr=[[mean - low], [high - mean]], fmt="D", color="black", capsize=4)
    ax.set_xticks(range(len(groups)), [f"{label}\n{len(values)} seeds" for label, values in groups], fontsize=8)
    ax.set(ylabel="final welfare / W_k (best response)", xlim=(-0.5, len(groups) - 0.5),
           title=f"EM, k = {k}: dots seeds, diamonds mean with 95% interval")
    ax.title.set_fontsize(8)
    fig.suptitle(f"{report['env_id']} on {report['machine']}", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main(tyro.cli(Args))
