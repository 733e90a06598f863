"""Do the board's verdicts between solvers hold at another PPO update budget? The board's comparison, run on
``update_cost.py`` folders of several solvers on one task.

The board's MuJoCo rows are all trained at the family's default update (5 epochs x 4 minibatches), which underfits
(``update_cost_more/``). Whether a re-seed at a dearer update would change what the board says depends on whether
the solvers gain alike. For each update setting that two or more folders ran, this takes the seeds every such folder
ran, and says what ``leaderboard.render.verdicts`` says of a board: the solver with the highest mean best-response
welfare against each other (probability of improvement, exact Mann-Whitney test, Holm-corrected at that setting).
The welfare is each run's final policies in the solver's own final evaluation (what ``update_cost.py`` records), not
the board's held-out protocol, so the sentences compare solvers with each other, not with the board's numbers.

    python benchmarks/update_cost_verdicts.py        # HalfCheetahSpeed, k = 5: EM, end-to-end, clustering, random, family
    python benchmarks/update_cost_verdicts.py --folders A B --out /tmp/verdicts

Reads committed results only (runs nothing); writes ``{out}/verdicts.json`` and ``verdicts.md``.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import tyro

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from cores import POLICIES as K  # noqa: E402  (update_cost.py's budget of policies)
from leaderboard.render import verdicts  # noqa: E402
from leaderboard.stats import interval  # noqa: E402
from rmdp_envs.files import atomic_write_json, atomic_write_text, writable_place  # noqa: E402
from rmdp_envs.results import provenance  # noqa: E402
from update_cost import DEFAULT as DEFAULT_SETTING  # noqa: E402
from update_cost import MORE, SOLVER_FOLDERS, SOLVERS, read_reports, report_task  # noqa: E402


@dataclass
class Args:
    folders: list[str] = field(default_factory=lambda: list(SOLVER_FOLDERS))
    """update_cost.py folders of different solvers on one task, each holding an update_cost.json"""
    out: str = MORE
    """folder for verdicts.json / verdicts.md"""


def runs_by_setting(report: dict) -> dict[str, dict[int, float]]:
    """A folder's final best-response welfare per setting and seed."""
    found: dict[str, dict[int, float]] = {}
    for row in report["rows"]:
        if "best_welfare" in row:
            found.setdefault(row["setting"], {})[row["seed"]] = row["best_welfare"]
    return found


def compare(reports: list[dict]) -> list[dict]:
    """Per setting that two or more solvers ran: their means over the seeds all of them ran, and the board's verdict."""
    welfare = {report.get("solver", "em"): runs_by_setting(report) for report in reports}
    settings = list(dict.fromkeys(s for per_setting in welfare.values() for s in per_setting))
    settings.sort(key=lambda s: s != DEFAULT_SETTING)  # the default first, the rest as the folders ran them
    results = []
    for setting in settings:
        solvers = [solver for solver, per_setting in welfare.items() if setting in per_setting]
        if len(solvers) < 2:
            continue
        seeds = sorted(set.intersection(*(set(welfare[s][setting]) for s in solvers)))
        if not seeds:  # nothing to compare like for like
            results.append({"setting": setting, "seeds": [], "means": {},
                            "verdict": f"{setting}: no seed that {', '.join(solvers)} all ran"})
            continue
        rows = []
        for solver in solvers:
            scores = [welfare[solver][setting][seed] for seed in seeds]
            rows.append({"label": solver, "solver": solver, "k": K, "seeds": seeds, "mean_best": sum(scores) / len(scores),
                         "runs": [{"seed": seed, "best_welfare": w} for seed, w in zip(seeds, scores)]})
        results.append({"setting": setting, "seeds": seeds,
                        "means": {r["solver"]: interval([run["best_welfare"] for run in r["runs"]], low=0.0, high=100.0)
                                  for r in rows},
                        "verdict": verdicts({"rows": rows}, digits=2)[0].replace(f"k = {K}:", f"{setting}:", 1)})
    return results


def markdown(task: str, comparisons: list[dict], record: dict) -> str:
    solvers = list(dict.fromkeys(s for c in comparisons for s in c["means"]))
    lines = [f"# The board's verdicts at each update budget: {task}, n = 100, k = {K}, 2M transitions per run", "",
             f"`{record['command']}` (commit {str(record['commit'])[:10]}; reads committed `update_cost.json` files, "
             "runs nothing). Final policies' best-response welfare in each solver's own final evaluation (not the board's "
             "held-out protocol), mean over the seeds every solver ran at that setting [95% bootstrap interval].", "",
             "| setting | seeds | " + " | ".join(SOLVERS.get(s, s) for s in solvers) + " |",
             "|---|---|" + "---:|" * len(solvers)]
    for c in comparisons:
        cells = []
        for solver in solvers:
            if solver not in c["means"]:
                cells.append("")
                continue
            mean, low, high = c["means"][solver]
            cells.append(f"{mean:.2f}" + ("" if low is None else f" [{low:.2f}, {high:.2f}]"))
        lines.append(f"| {c['setting']} | {', '.join(map(str, c['seeds']))} | " + " | ".join(cells) + " |")
    lines += ["", "What `leaderboard.render.verdicts` says of each setting (the board's rule):", ""]
    lines += [f"- {c['verdict']}" for c in comparisons]
    return "\n".join(lines) + "\n"


def main(args: Args) -> None:
    out = Path(args.out)
    if (problem := writable_place(out / "verdicts.json")) is not None:
        sys.exit(f"error: --out {out}: {problem}")
    folders = [Path(folder) for folder in args.folders]
    reports = read_reports(folders)
    tasks = sorted({report_task(report) for report in reports})
    solvers = [report.get("solver", "em") for report in reports]
    if len(tasks) != 1:
        sys.exit(f"error: --folders hold runs of different tasks ({', '.join(tasks)}); verdicts compare one task's solvers")
    if len(set(solvers)) != len(solvers):
        sys.exit(f"error: --folders name a solver twice ({', '.join(solvers)}); give one folder per solver")
    comparisons = compare(reports)
    if not comparisons:
        sys.exit("error: no update setting was run by two or more of --folders' solvers")
    record = provenance(ROOT)
    atomic_write_json(out / "verdicts.json", {"provenance": record, "task": tasks[0], "k": K,
                                              "folders": [str(f) for f in folders], "comparisons": comparisons})
    atomic_write_text(out / "verdicts.md", markdown(tasks[0], comparisons, record))
    for c in comparisons:
        print(c["verdict"])
    print(f"wrote {out / 'verdicts.json'} and verdicts.md")


if __name__ == "__main__":
    main(tyro.cli(Args, description=__doc__))
