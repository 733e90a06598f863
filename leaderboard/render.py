"""``render``: the board as ``README.md`` and a static site, the same bytes for the same submissions.

One table per benchmark (env id + population) and protocol version (rows of different versions
are never pooled; the current protocol's come first, archived v1 rows after): a row per solver
configuration and k, pooling the verified seeds of every submission with the same solver,
commit, configuration and timesteps. Per row: mean and IQM with 95% bootstrap intervals clipped
to [0, W_k] (:mod:`leaderboard.stats`); under each table, verdicts in words (probability of
improvement of the best solver over each other at every k, and whether they can be told apart)
and the k = 1 noise floor. Plots (matplotlib SVG with fixed hash salt and no dates): welfare vs k
(offset markers, line style per budget), each user's parameter coloured by the policy it picks,
and a performance profile across benchmarks.
"""

from __future__ import annotations

import html
import io
import re
import textwrap
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from leaderboard.protocol import PROTOCOL
from leaderboard.references import REFERENCE_FILE, ensure_references, k_bound
from leaderboard.unseen import UNSEEN_POPULATION_SEED
from leaderboard.stats import (CONFIDENCE, holm, improvement_p_value, interval, iqm, mean, normalized,
                               probability_of_improvement)
from leaderboard.storage import PACKAGE_DIR, load_submissions
from rmdp_envs.files import atomic_write_text

SITE_DIR = "site"
README_FILE = "README.md"
MPL_RC = {"svg.hashsalt": "rmdp-leaderboard", "svg.fonttype": "none", "font.size": 9,
          "axes.spines.top": False, "axes.spines.right": False}
SVG_METADATA = {"Date": None, "Creator": None}
UNSERVED = (0.85, 0.85, 0.85, 1.0)
#: Solvers that run the same algorithm at k = 1 (one policy, no assignment to learn); only their
#: random streams differ, so the spread of their k = 1 rows is the noise floor of the board.
SAME_AT_K1 = ("em", "random", "e2e")
LINESTYLES = ("-", "--", ":", "-.")
#: Fewest paired seeds behind a verdict in words.
MIN_VERDICT_SEEDS = 5


# ----------------------------------------------------------------------------- aggregation

def _short_commit(commit: str | None, width: int) -> str:
    """The first ``width`` hex digits, keeping a ``-dirty`` mark (results from uncommitted code)."""
    if not commit:
        return "none"
    return commit[:width] + ("-dirty" if commit.endswith("-dirty") else "")


def _steps(n: int) -> str:
    """1000000 -> "1M", 300000 -> "300k": the scale an RL reader expects in a legend."""
    for size, suffix in ((1_000_000, "M"), (1_000, "k")):
        if n >= size and n % (size // 10) == 0:
            return f"{n / size:g}{suffix}"
    return str(n)


def _label(row: dict[str, Any], varying: set[str]) -> str:
    """The solver's name plus only what tells its rows apart (commit, config, timesteps, protocol)."""
    parts = []
    if "commit" in varying:
        parts.append("@" + _short_commit(row["commit"], 7))
    if "config" in varying:
        parts.append(f"config {row['config']}")
    if "timesteps" in varying:
        parts.append(f"{_steps(row['timesteps'])} steps")
    if "protocol" in varying:
        parts.append(f"protocol {row['protocol']}")
    return row["solver"] + (" (" + ", ".join(parts) + ")" if parts else "")


def collect(submissions: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """``"<benchmark key>/<protocol>" -> {"benchmark", "protocol", "rows": [...]}``, rows pooled and sorted.

    Statistics are filled in by :func:`add_statistics` once the reference points are known.
    """
    boards: dict[str, dict[str, Any]] = {}
    pooled: dict[str, dict[tuple, dict[str, Any]]] = defaultdict(dict)
    for sub in submissions:
        b = sub["benchmark"]
        section = f"{b['key']}/{sub['protocol']['version']}"
        boards.setdefault(section, {"benchmark": b, "protocol": sub["protocol"]["version"]})
        s = sub["solver"]
        for run in sub["runs"]:
            key = (s["name"], sub["k"], s["commit"] or "", s["config"], run["total_timesteps"], sub["protocol"]["version"])
            row = pooled[section].setdefault(key, {
                "solver": s["name"], "k": sub["k"], "commit": s["commit"], "config": s["config"],
                "timesteps": run["total_timesteps"], "protocol": sub["protocol"]["version"], "runs": [], "submissions": set()})
            row["runs"].append(run)
            row["submissions"].add(sub["id"])
    for bkey, rows in pooled.items():
        out = []
        for row in rows.values():
            row["runs"].sort(key=lambda r: r["seed"])
            row["submissions"] = sorted(row["submissions"])
            row["seeds"] = [r["seed"] for r in row["runs"]]
            row["mean_best"] = float(np.mean([r["best_welfare"] for r in row["runs"]]))
            row["wall"] = float(np.mean([r["wall_time_s"] for r in row["runs"]]))
            out.append(row)
        per_k: dict[tuple, int] = defaultdict(int)
        for row in out:
            per_k[(row["solver"], row["k"])] += 1
        ambiguous = {solver for (solver, _), count in per_k.items() if count > 1}
        varying = {solver: {field for field in ("commit", "config", "timesteps")
                            if len({r[field] or "" for r in out if r["solver"] == solver}) > 1}
                   for solver in ambiguous}
        for solver in {r["solver"] for r in out} - ambiguous:  # one line must not join rows of different budgets
            if len({r["timesteps"] for r in out if r["solver"] == solver}) > 1:
                varying[solver] = {"timesteps"}
        for row in out:  # a solver's rows share a label (one line in the plot) unless some k has several
            row["label"] = _label(row, varying.get(row["solver"], set()))
        out.sort(key=lambda r: (r["k"], -r["mean_best"], r["label"], r["commit"] or "", r["config"], r["timesteps"]))
        boards[bkey]["rows"] = out
    current = PROTOCOL.version
    return dict(sorted(boards.items(), key=lambda kv: (kv[1]["protocol"] != current, kv[1]["benchmark"]["env_id"],
                                                       kv[1]["protocol"], kv[0])))


def add_statistics(board: dict[str, Any], ref: dict[str, Any]) -> None:
    """Mean and IQM with bootstrap intervals clipped to ``[0, W_k]`` (rewards are non-negative), normalized scores."""
    for row in board["rows"]:
        high = k_bound(ref, row["k"])
        values = {name: [r[name] for r in row["runs"]] for name in ("best_welfare", "welfare", "egalitarian_welfare")}
        row["best"] = interval(values["best_welfare"], mean, 0.0, high)
        row["best_iqm"] = interval(values["best_welfare"], iqm, 0.0, high)
        row["own"] = interval(values["welfare"], mean, 0.0, high)
        row["egal"] = interval(values["egalitarian_welfare"], mean, 0.0, high)
        row["unseen"] = unseen_cell(row["runs"])
        row["serving"] = [serving_policies(r) for r in row["runs"]]
        row["normalized"] = normalized(row["best"][0], ref["random"]["welfare"], high)
        row["normalized_runs"] = [normalized(v, ref["random"]["welfare"], high) for v in values["best_welfare"]]


def serving_policies(run: dict) -> int:
    """How many of a run's k policies serve someone: the pick of at least one user whose held-out utility under it is
    positive (rewards are non-negative).

    A policy that no user gains from is budget spent for nothing, and welfare alone does not show it: EM keeps
    every policy non-empty, not useful. The picks are the ones the welfare column scores (``deployed_assignment``;
    rows stored without it, from before it was recorded, picked on the scoring episodes: the utility's argmax).
    """
    utility = np.asarray(run["utility"], dtype=np.float64)
    picks = np.asarray(run.get("deployed_assignment") or utility.argmax(axis=0))
    gains = utility[picks, np.arange(picks.size)] > 0
    return int(np.unique(picks[gains]).size)


def serving_cell(counts: list[int]) -> str:
    """Policies serving users over a row's seeds: the count where every seed agrees, else the mean and the range."""
    low, high = min(counts), max(counts)
    return str(low) if low == high else f"{np.mean(counts):.1f} ({low}-{high})"


def unseen_cell(runs: list[dict]):
    """Welfare for the unseen users (:mod:`leaderboard.unseen`): an interval, "n/a" (fixed users) or None (not scored)."""
    if any("unseen_welfare" not in r for r in runs):
        return None
    values = [r["unseen_welfare"] for r in runs]
    if all(v is None for v in values):
        return "n/a"
    return interval([v for v in values if v is not None], mean, 0.0)  # no W_k known for the fresh draw


def verdicts(board: dict[str, Any], digits: int) -> list[str]:
    """Sentences: at each k, the solver with the highest mean against each other, and the k = 1 noise floor.

    Each comparison uses the seeds both rows trained (:data:`MIN_VERDICT_SEEDS` at least) and shows the probability
    of improvement with its interval; whether the two are told apart is the exact Mann-Whitney test of that
    probability being 1/2, Holm-corrected over the comparisons made at that k (an identical pair counts, with p = 1;
    the rule before, a paired interval with no correction, called some pair of five equal solvers different on
    32-42% of boards, this one on 5-8%: ``benchmarks/results/verdict_errors.json``). The direction comes from the
    probability, not from which row leads: a leader by mean whose runs lose most pairs is "worse". Where rows tie for
    the highest mean, the first of them is the one compared, and named.
    """
    lines = []
    by_k: dict[int, list[dict]] = defaultdict(list)
    for row in board["rows"]:
        by_k[row["k"]].append(row)
    for k in sorted(by_k):
        rows = sorted(by_k[k], key=lambda r: -r["mean_best"])
        if len(rows) < 2:
            continue
        best = rows[0]
        tied = [r["label"] for r in rows if r["mean_best"] == best["mean_best"]]
        parts, tests = [], []  # tests: (index into parts, p-value, probability of improvement, stem)
        for other in rows[1:]:
            seeds = sorted(set(best["seeds"]) & set(other["seeds"]))
            if not seeds:  # nothing to compare like for like (a probability over no pairs is NaN)
                parts.append(f"{other['label']}: no shared seeds (seeds {_seed_list(other['seeds'])} against "
                             f"{_seed_list(best['seeds'])})")
                continue
            x = [r["best_welfare"] for r in best["runs"] if r["seed"] in seeds]
            y = [r["best_welfare"] for r in other["runs"] if r["seed"] in seeds]
            poi = probability_of_improvement(x, y)
            ci = "" if poi[1] is None else f" [{poi[1]:.2f}, {poi[2]:.2f}]"
            stem = f"P(improvement) = {poi[0]:.2f}{ci}"
            if len(seeds) < MIN_VERDICT_SEEDS:  # a test over 3 seeds a side cannot reach 5% at all
                parts.append(f"{other['label']}: too few shared seeds to tell (need {MIN_VERDICT_SEEDS}) ({stem}, "
                             f"{len(seeds)} shared seeds)")
            elif x == y:  # a comparison made (Holm counts it), whose p is 1
                tests.append((len(parts), 1.0, 0.5, None))
                parts.append(f"{other['label']}: identical (the same score on every seed) ({stem}, {len(seeds)} shared seeds)")
            else:
                tests.append((len(parts), improvement_p_value(x, y), poi[0], f"{stem}, {{p}}, {len(seeds)} shared seeds"))
                parts.append(other["label"])
        told_apart = holm([p for _, p, _, _ in tests])
        for (i, p, probability, stem), apart in zip(tests, told_apart):
            if stem is None:  # identical: already said
                continue
            verdict = ("better" if probability > 0.5 else "worse") if apart else "not distinguishable"
            shown = f"p = {p:.3f}" if p >= 0.001 else "p < 0.001"
            parts[i] = f"{parts[i]}: {verdict} ({stem.format(p=shown + ' before Holm')})"
        lead = (f"{', '.join(tied[:-1])} and {tied[-1]} tie for the highest mean; {best['label']}" if len(tied) > 1
                else f"{best['label']} has the highest mean;")
        lines.append(f"k = {k}: {lead} against " + "; ".join(parts) + ".")
    same = [r for r in by_k.get(1, []) if r["solver"] in SAME_AT_K1]
    if len(same) >= 2:
        means = [r["mean_best"] for r in same]
        lines.append(f"Noise floor: at k = 1 {', '.join(r['label'] for r in same)} run the same algorithm with different "
                     f"random streams; their means differ by up to {max(means) - min(means):.{digits}f}. Differences "
                     "of that size at other k are noise.")
    return lines


def _seed_list(seeds) -> str:
    return ", ".join(str(seed) for seed in sorted(seeds))


def _title(b: dict[str, Any]) -> str:
    pop = b["population"]
    seed = "" if pop.get("seed") is None else f", seed {pop['seed']}"
    return f"{b['env_id']} — n = {b['n']} users ({pop['kind']}{seed}) — benchmark {b['key']}"


def _slug(b: dict[str, Any]) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", b["env_id"].split("/", 1)[1]).strip("-") + "-" + b["key"]


# ----------------------------------------------------------------------------- formatting

def _fmt(x: float | None, digits: int) -> str:
    return "—" if x is None else f"{x:.{digits}f}"


def _digits(ref: dict[str, Any]) -> int:
    upper = ref["upper"]["welfare"]
    return 4 if upper is None or abs(upper) <= 10 else 2


def _ci(stat: tuple[float, float | None, float | None], digits: int) -> str:
    point, lo, hi = stat
    return f"{point:.{digits}f}" if lo is None else f"{point:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


HEADER = ["Solver", "k", f"Welfare (mean [{CONFIDENCE:.0%} CI])", f"IQM [{CONFIDENCE:.0%} CI]", "Normalized (of W_k)",
          "Policies serving users", "Worst-off user", "Own assignment", "Unseen users", "Seeds", "Timesteps", "Commit",
          "Config"]


def table_rows(board: dict[str, Any], ref: dict[str, Any]) -> list[list[str]]:
    d = _digits(ref)
    out = []
    for row in board["rows"]:
        seeds = row["seeds"]
        seed_text = f"{len(seeds)} ({seeds[0]}-{seeds[-1]})" if seeds == list(range(seeds[0], seeds[-1] + 1)) and len(seeds) > 3 \
            else f"{len(seeds)} ({', '.join(map(str, seeds))})"
        out.append([row["label"], str(row["k"]), _ci(row["best"], d), _ci(row["best_iqm"], d), _fmt(row["normalized"], 3),
                    serving_cell(row["serving"]), _ci(row["egal"], d), _ci(row["own"], d),
                    "—" if row["unseen"] is None else row["unseen"] if isinstance(row["unseen"], str) else _ci(row["unseen"], d),
                    seed_text, f"{row['timesteps']:,}",
                    _short_commit(row["commit"], 10), row["config"]])
    return out


def reference_line(ref: dict[str, Any]) -> str:
    d = _digits(ref)
    r, u = ref["random"], ref["upper"]
    bounds = ref.get("k_bounds", {})
    kinds = sorted({b["kind"] for b in bounds.values()})
    per_k = ", ".join(f"k = {k}: {_fmt(b['welfare'], d)}" for k, b in sorted(bounds.items(), key=lambda kv: int(kv[0])))
    return (f"W_random = {_fmt(r['welfare'], d)} (uniform random policy, {r['episodes']} episodes from seed {r['seed']}); "
            f"W_k ({' / '.join(kinds) or 'none'}) {per_k}; full personalization W_upper = {_fmt(u['welfare'], d)} "
            f"({u['source']}); normalized = (W - W_random) / (W_k - W_random); derivations in {REFERENCE_FILE}")


# ----------------------------------------------------------------------------- plots

def _svg(fig) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata=SVG_METADATA, bbox_inches="tight")
    return buf.getvalue()


def _colors(k: int):
    import matplotlib  # noqa: PLC0415

    cmap = matplotlib.colormaps["tab10" if k <= 10 else "tab20"]
    return [cmap(j % cmap.N) for j in range(k)]


def welfare_plot(board: dict[str, Any], ref: dict[str, Any]) -> str:
    """Welfare vs k: one series per solver row label, markers offset so overlapping series stay visible,
    line style per training budget (not only colour), 95% intervals as bars and faint bands, and the k-policy
    bound W_k."""
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, ax = plt.subplots(figsize=(5.8, 3.6))
    series: dict[str, list[dict]] = defaultdict(list)
    for row in board["rows"]:
        series[row["label"]].append(row)
    labels = sorted(series)
    colors = _colors(max(len(labels), 1))
    budgets = sorted({row["timesteps"] for row in board["rows"]})
    style = {t: LINESTYLES[i % len(LINESTYLES)] for i, t in enumerate(budgets)}
    ks_all = sorted({r["k"] for r in board["rows"]})
    spacing = 0.07 * (max(ks_all) - min(ks_all) if len(ks_all) > 1 else 1.0)
    top = -np.inf
    for i, (color, label) in enumerate(zip(colors, labels)):
        rows = sorted(series[label], key=lambda r: r["k"])
        ks = np.array([r["k"] for r in rows], dtype=float) + (i - (len(labels) - 1) / 2) * spacing / max(len(labels), 1)
        point = np.array([r["best"][0] for r in rows])
        lo = np.array([r["best"][1] if r["best"][1] is not None else r["best"][0] for r in rows])
        hi = np.array([r["best"][2] if r["best"][2] is not None else r["best"][0] for r in rows])
        budget = rows[0]["timesteps"]
        ax.fill_between(ks, lo, hi, color=color, alpha=0.12, linewidth=0)  # the interval as a band (issue 5) ...
        ax.errorbar(ks, point, yerr=[point - lo, hi - point], color=color, marker="o", markersize=4, capsize=3,  # ... and bars
                    linestyle=style[budget], linewidth=1.2, label=label if len(budgets) == 1 else f"{label} ({_steps(budget)})")
        top = max(top, float(np.max(hi)))
    bounds = [(k, k_bound(ref, k)) for k in ks_all if k_bound(ref, k) is not None]
    if bounds:
        ax.plot([k for k, _ in bounds], [v for _, v in bounds], color="black", linestyle="--", linewidth=1,
                marker="_", label="W_k (most k policies can reach)")
    ax.axhline(ref["random"]["welfare"], color="grey", linestyle=":", linewidth=1, label="W_random (uniform)")
    ax.set_xticks(ks_all)
    ax.set_xlabel("k (number of policies)")
    ax.set_ylabel("welfare (users' picks, held out)")
    seeds = sorted({len(r["runs"]) for r in board["rows"] if "runs" in r})
    shown = "" if not seeds else f"{seeds[0]} seeds" if len(seeds) == 1 else f"{seeds[0]}-{seeds[-1]} seeds"
    ax.set_title(board["benchmark"]["env_id"].split("/", 1)[1] + f" (n = {board['benchmark']['n']}, protocol {board['protocol']})"
                 f"\nmean over {shown or 'the seeds'} a point; bars and bands: {CONFIDENCE:.0%} bootstrap interval", fontsize=8)
    ax.legend(fontsize=6.5, frameon=False, loc="best")
    svg = _svg(fig)
    plt.close(fig)
    return svg


def profile_cells(boards: dict[str, dict[str, Any]]) -> tuple[list[tuple[str, str, int]], dict[str, dict], list[str]]:
    """The (env id, benchmark key, k) cells of the current protocol that the profile compares, per line (a row label:
    a solver, or one budget of it) and cell the normalized scores of its runs there, and the lines left out.

    Only cells every compared line ran, so the profile ranks the lines and not the benchmarks each was run on (pooled,
    the family, seen only on MuJoCo with its loose W_k, scored low everywhere). A line that ran fewer than half the
    board's cells is left out and named rather than shrinking everyone's cells to its few.
    """
    scores: dict[str, dict[tuple[str, str, int], list[float]]] = defaultdict(lambda: defaultdict(list))
    for key, bd in boards.items():
        if bd["protocol"] != PROTOCOL.version:
            continue
        for row in bd["rows"]:
            values = [v for v in row["normalized_runs"] if v is not None]
            if values:
                scores[row["label"]][(bd["benchmark"]["env_id"], bd["benchmark"]["key"], row["k"])] += values
    cells = set().union(*(set(mine) for mine in scores.values())) if scores else set()
    kept = {label: mine for label, mine in scores.items() if 2 * len(mine) >= len(cells)}
    shared = sorted(set.intersection(*(set(mine) for mine in kept.values()))) if kept else []
    return shared, kept, sorted(set(scores) - set(kept))


def profile_plot(boards: dict[str, dict[str, Any]]) -> str | None:
    """Performance profile over the cells :func:`profile_cells` picks: for each line, the fraction of runs whose
    normalized score (of W_k) is at least tau, each cell weighted equally (a cell of 10 seeds counts as much as one
    of 5)."""
    import matplotlib.pyplot as plt  # noqa: PLC0415

    shared, scores, left_out = profile_cells(boards)
    if not shared:
        return None
    taus = np.linspace(0.0, 1.0, 101)
    fig, ax = plt.subplots(figsize=(5.0, 3.4))
    for i, (color, label) in enumerate(zip(_colors(len(scores)), sorted(scores))):
        cells = [np.asarray(scores[label][cell]) for cell in shared]
        fraction = [np.mean([(values >= t).mean() for values in cells]) for t in taus]
        runs = sum(values.size for values in cells)
        ax.plot(taus, fraction, color=color, linestyle=LINESTYLES[i % len(LINESTYLES)], label=f"{label} ({runs} runs)")
    ax.set_xlabel("tau (normalized welfare: 0 = random policy, 1 = W_k)")
    ax.set_ylabel("fraction of runs with score >= tau")
    names = sorted({env_id.split("/", 1)[1] for env_id, _, _ in shared})
    out = f"; left out (fewer than half the cells): {', '.join(left_out)}" if left_out else ""
    about = textwrap.fill(f"{', '.join(names)}; each cell weighted equally{out}", 75)
    ax.set_title(f"Performance profile, {len(shared)} cells every line ran (protocol {PROTOCOL.version})\n{about}",
                 fontsize=7)
    ax.legend(fontsize=7, frameon=False)
    svg = _svg(fig)
    plt.close(fig)
    return svg


def _representative(row: dict[str, Any]) -> dict[str, Any]:
    """The seed with the median welfare (the lower one of the middle two)."""
    runs = sorted(row["runs"], key=lambda r: (r["best_welfare"], r["seed"]))
    return runs[(len(runs) - 1) // 2]


def assignment_plot(board: dict[str, Any]) -> str | None:
    """Users' parameters coloured by their best-response policy: one panel per (solver, k)."""
    import matplotlib.pyplot as plt  # noqa: PLC0415

    b = board["benchmark"]
    params = np.asarray(b["population"]["params"], dtype=np.float64)
    grid = b["population"].get("kind") == "cells" and params.shape[1] == 2  # users are cells of a grid
    if params.shape[1] != 1 and not grid:
        return None
    labels = sorted({r["label"] for r in board["rows"]})
    ks = sorted({r["k"] for r in board["rows"]})
    fig, axes = plt.subplots(len(labels), len(ks), figsize=(1.9 * len(ks) + 0.6, 1.6 * len(labels) + 0.5),
                             squeeze=False, sharex=not grid, sharey=False, layout="constrained")
    by_key = {(r["label"], r["k"]): r for r in board["rows"]}
    bins = np.linspace(params.min(), params.max(), 21) if not grid else None
    for a, label in enumerate(labels):
        for c, k in enumerate(ks):
            ax = axes[a, c]
            row = by_key.get((label, k))
            if a == 0:
                ax.set_title(f"k = {k}")
            if c == 0:
                ax.set_ylabel(label, fontsize=8)
            if row is None:  # blank, but keep the axes: the first column carries the row's label
                ax.tick_params(left=False, bottom=False, labelleft=False, labelbottom=False)  # not set_xticks: shared axes
                for spine in ax.spines.values():
                    spine.set_visible(False)
                continue
            run = _representative(row)
            utility = np.asarray(run["utility"])
            choice = np.asarray(run.get("deployed_assignment") or utility.argmax(axis=0))  # v2: the users' picks
            choice[utility.max(axis=0) <= 0] = -1  # no policy serves this user
            colors = _colors(k)
            if grid:
                size = int(params.max()) + 1
                img = np.ones((size, size, 4))
                for (r_, c_), j in zip(params.astype(int), choice):
                    img[r_, c_] = colors[j] if j >= 0 else UNSERVED
                ax.imshow(img, interpolation="nearest")
                ax.set_xticks([])
                ax.set_yticks([])
            else:
                data = [params[choice == j, 0] for j in range(k)] + [params[choice < 0, 0]]
                ax.hist(data, bins=bins, stacked=True, color=colors + [UNSERVED], linewidth=0)
                ax.tick_params(labelsize=7)
            ax.text(0.98, 0.95, f"seed {run['seed']}", transform=ax.transAxes, ha="right", va="top", fontsize=6)
    what = "cell of each user" if grid else "users' targets (population parameter)"
    if not grid:  # a histogram's axes: what the bars count, over what
        fig.supxlabel("target (population parameter)", fontsize=8)
        fig.supylabel("users", fontsize=8)
    title = (f"{b['env_id'].split('/', 1)[1]}: {what}, coloured by the policy each user picks (grey: no policy gives "
             "it any reward); each panel shows the seed of median best-response welfare")
    fig.suptitle(textwrap.fill(title, int(14 * fig.get_figwidth())), fontsize=9)  # ~14 characters an inch at 9 pt
    svg = _svg(fig)
    plt.close(fig)
    return svg


def _inline(svg: str, prefix: str) -> str:
    """An SVG document as an element of the page: no XML prolog, ids made unique per figure."""
    svg = svg[svg.index("<svg"):]
    svg = re.sub(r'id="([^"]+)"', lambda m: f'id="{prefix}-{m.group(1)}"', svg)
    svg = re.sub(r"url\(#([^)]+)\)", lambda m: f"url(#{prefix}-{m.group(1)})", svg)
    svg = re.sub(r'xlink:href="#([^"]+)"', lambda m: f'xlink:href="#{prefix}-{m.group(1)}"', svg)
    return svg


# ----------------------------------------------------------------------------- pages

CSS = """body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:78rem;padding:0 1rem;color:#222}
table{border-collapse:collapse;margin:0.5rem 0 1rem;font-size:0.9rem}th,td{border:1px solid #ccc;padding:0.25rem 0.5rem;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}.ref{font-size:0.85rem;color:#555}
figure{display:inline-block;margin:0.5rem 1rem 0.5rem 0;vertical-align:top}figure svg{max-width:100%;height:auto}
code{background:#f3f3f3;padding:0 0.2rem}"""


def _protocol_text(project: bool = True) -> str:
    """The protocol paragraph; ``project``: the project's own board, whose README can link the repository's result
    files (a board elsewhere names them as text: a relative link would not resolve there)."""
    p = PROTOCOL
    return (f"**Evaluation protocol {p.version}:** greedy actions of the saved policies. Each user picks its policy on "
            f"{p.assignment_episodes} assignment episodes (reset seeds {p.assignment_seed}-{p.assignment_seed + p.assignment_episodes - 1}); "
            f"every number is measured on {p.episodes} held-out episodes (seeds {p.seed}-{p.seed + p.episodes - 1}), so no "
            "policy is chosen on the episodes that score it, and only final policies are scored. **Welfare** is the mean "
            "over users of the utility of the policy each user picked; **policies serving users** is how many of the k "
            "policies at least one user picks and gains from (positive utility; one number where all seeds agree, else "
            "the mean over seeds and the range): a policy no user gains from is budget spent for nothing; **worst-off "
            "user** is the lowest utility of a user's pick "
            "(egalitarian welfare); **own assignment** is the welfare under the solver's own assignment; **unseen users** is "
            f"the welfare of the same policies for a fresh draw of users from the benchmark's distribution (population seed "
            f"{UNSEEN_POPULATION_SEED}, picked and scored as above; n/a where the task fixes its users, — where not yet "
            "scored). Per row: mean and "
            f"interquartile mean (IQM) over training seeds with {CONFIDENCE:.0%} bootstrap intervals (scipy), clipped to "
            "[0, W_k]. **Normalized** = (W - W_random) / (W_k - W_random), where W_k is the most k policies can reach "
            f"(exact or a certified upper bound, per benchmark and k, with its derivation in [`{REFERENCE_FILE}`]({REFERENCE_FILE})). "
            "Under each table, verdicts compare the solver with the highest mean at each k with every other on the seeds "
            "both trained: the probability of improvement (P(X > Y) + P(X = Y)/2 over all pairs of runs) with a "
            "bootstrap interval that resamples each solver's runs on its own, and \"better\" or \"worse\" only where the "
            "exact Mann-Whitney test of that probability being 0.5 rejects at 5% after Holm's correction over that k's "
            "comparisons (p shown before the correction); otherwise \"not distinguishable\". The leader is picked by "
            "its mean before it is tested, so among five equally good solvers some pair is still called different on "
            "5-8% of boards; with 5 seeds a side and four comparisons at a k only runs that do not overlap at all can be "
            "told apart (one swapped pair of 25 can, with fewer comparisons); and a 95% percentile interval over 5 "
            "seeds holds the true mean about 83% of the time "
            f"({VERDICT_ERRORS_LINK if project else VERDICT_ERRORS_TEXT}). A claimed welfare must match the "
            f"re-evaluation within {p.tolerance.describe()} on environments with "
            f"exactly repeatable evaluation and {p.chaotic_tolerance.describe()} on chaotic ones (MuJoCo). Rows of "
            "protocol v1 (users picked and were scored on the same 10 episodes from seed 10000) are archived below the "
            "current ones and never pooled with them.")


VERDICT_ERRORS_LINK = "[`verdict_errors.json`](../benchmarks/results/verdict_errors.json)"
VERDICT_ERRORS_TEXT = "`benchmarks/results/verdict_errors.json` of the rmdp repository"


def _plain(markdown: str) -> str:
    """Markdown's emphasis, code marks and links as plain text (a link keeps its text), for the HTML page."""
    return re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", markdown).replace("**", "").replace("`", "")


def _intro_md(board: Path) -> list[str]:
    # a board elsewhere than the project's names its folder in its commands, without a path (the same bytes anywhere)
    flag = "" if board.resolve() == PACKAGE_DIR else " --board-dir THIS_FOLDER"
    return [
        "# rmdp leaderboard",
        "",
        "Personalized RL with a budget of k policies: who serves a population of n users best? Every row is "
        "re-checkable: each run's saved policies are stored under `submissions/` and were re-evaluated by "
        "`python -m leaderboard submit` before they were accepted; `python -m leaderboard reproduce` retrains one.",
        "",
        _protocol_text(project=board.resolve() == PACKAGE_DIR),
        "",
        f"Submit: `python -m leaderboard submit RUN_DIR...{flag}` · render: `python -m leaderboard render{flag}` · "
        "open `site/index.html` (beside this file) for the plots.",
        "",
    ]


def _reference(refs: dict[str, Any], bd: dict[str, Any]) -> dict[str, Any]:
    """A table's reference points: the current protocol's bounds W_k (what k policies can reach does not depend on the
    episodes that score them), with the random policy's welfare of the table's own protocol where recorded (an archived
    v1 table's runs were scored on v1's episodes, and so was its random policy)."""
    key = bd["benchmark"]["key"]
    ref, own = refs[f"{key}/{PROTOCOL.version}"], refs.get(f"{key}/{bd['protocol']}")
    return ref if own is None or own is ref else {**ref, "random": own["random"]}


def render(board: Path) -> list[Path]:
    """Write ``README.md``, ``site/index.html`` and ``site/*.svg`` of ``board``; returns the paths."""
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    submissions = load_submissions(board)
    boards = collect(submissions)
    ks: dict[str, list[int]] = defaultdict(list)
    for bd in boards.values():
        ks[bd["benchmark"]["key"]] += [row["k"] for row in bd["rows"]]
    benchmarks = list({bd["benchmark"]["key"]: bd["benchmark"] for bd in boards.values()}.values())
    refs = ensure_references(board, benchmarks, ks=ks)["benchmarks"] if boards else {}
    site = board / SITE_DIR
    md = _intro_md(board)
    body: list[str] = []
    figures: dict[str, str] = {}
    with matplotlib.rc_context(MPL_RC):
        for section, bd in boards.items():
            add_statistics(bd, _reference(refs, bd))
        profile = profile_plot(boards)
        if profile is not None:
            figures["profile.svg"] = profile
            md += ["![performance profile](site/profile.svg)", ""]
            body.append(f'<figure class="plot" data-plot="profile.svg">{_inline(profile, "profile")}'
                        "<figcaption>performance profile</figcaption></figure>")
        for section, bd in boards.items():
            b = bd["benchmark"]
            ref = _reference(refs, bd)
            slug = _slug(b) + ("" if bd["protocol"] == PROTOCOL.version else f"-{bd['protocol']}")
            title = _title(b) + f" — protocol {bd['protocol']}" + ("" if bd["protocol"] == PROTOCOL.version else " (archived)")
            rows = table_rows(bd, ref)
            notes = verdicts(bd, _digits(ref))
            md += [f"## {title}", "", f"env_kwargs: `{_compact(b['env_kwargs'])}`", "",
                   "| " + " | ".join(HEADER) + " |", "|" + "|".join(["---"] + ["---:"] * (len(HEADER) - 1)) + "|"]
            md += ["| " + " | ".join(r) + " |" for r in rows]
            md += ["", f"Reference points: {reference_line(ref)}.", ""]
            md += [f"- {line}" for line in notes] + ([""] if notes else [])
            plots = [(f"{slug}-welfare.svg", welfare_plot(bd, ref), "welfare vs k")]
            assign = assignment_plot(bd)
            if assign is not None:
                plots.append((f"{slug}-assignment.svg", assign, "assignment"))
            body += [f'<section class="benchmark" id="{slug}">', f"<h2>{html.escape(title)}</h2>",
                     f"<p>env_kwargs: <code>{html.escape(_compact(b['env_kwargs']))}</code></p>",
                     f'<table class="leaderboard" data-benchmark="{section}"><thead><tr>'
                     + "".join(f"<th>{html.escape(h)}</th>" for h in HEADER) + "</tr></thead><tbody>"]
            body += ["<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows]
            body += ["</tbody></table>", f'<p class="ref">Reference points: {html.escape(reference_line(ref))}.</p>']
            if notes:
                body.append('<ul class="verdicts">' + "".join(f"<li>{html.escape(line)}</li>" for line in notes) + "</ul>")
            for name, svg, alt in plots:
                figures[name] = svg
                md.append(f"![{alt}: {b['env_id']}]({SITE_DIR}/{name})")
                body.append(f'<figure class="plot" data-plot="{html.escape(name)}">'
                            f"{_inline(svg, name.removesuffix('.svg'))}<figcaption>{html.escape(alt)}</figcaption></figure>")
            md.append("")
            body.append("</section>")
    if not boards:
        md += ["No submissions yet.", ""]
        body.append('<p id="empty">No submissions yet.</p>')
    page = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f'<meta name="rmdp-benchmarks" content="{len(boards)}">', '<link rel="icon" href="data:,">',
            "<title>rmdp leaderboard</title>", f"<style>{CSS}</style></head><body>",
            "<h1>rmdp leaderboard</h1>",
            f"<p>{html.escape(_plain(_protocol_text(project=False)))} "
            f'Reference points: <a href="../{REFERENCE_FILE}">{REFERENCE_FILE}</a>.</p>',
            *body, "</body></html>", ""]
    written = []
    site.mkdir(parents=True, exist_ok=True)
    for old in sorted(site.glob("*.svg")):
        if old.name not in figures:
            old.unlink()
    for name in sorted(figures):
        atomic_write_text(site / name, figures[name])
        written.append(site / name)
    atomic_write_text(site / "index.html", "\n".join(page))
    atomic_write_text(board / README_FILE, "\n".join(md).rstrip("\n") + "\n")
    return [board / README_FILE, site / "index.html", *written]


def _compact(data: Any) -> str:
    import json  # noqa: PLC0415

    return json.dumps(data, sort_keys=True, separators=(", ", ": "))
