"""``render``: the board as ``README.md`` and a static site, the same bytes for the same submissions.

One table per benchmark (env id + population): a row per solver configuration and k, pooling
the verified seeds of every submission with the same solver, commit, configuration, timesteps
and protocol. Plots (matplotlib SVG with fixed hash salt and no dates): welfare vs k with 95%
CI bands, and each user's parameter coloured by the policy it picks (a histogram of targets
for one-dimensional populations such as the speed tasks, the grid for ResourceGathering).
"""

from __future__ import annotations

import html
import io
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from leaderboard.protocol import PROTOCOL
from leaderboard.references import REFERENCE_FILE, ensure_references
from leaderboard.stats import CONFIDENCE, mean_ci, normalized
from leaderboard.storage import atomic_write_text, load_submissions

SITE_DIR = "site"
README_FILE = "README.md"
MPL_RC = {"svg.hashsalt": "rmdp-leaderboard", "svg.fonttype": "none", "font.size": 9,
          "axes.spines.top": False, "axes.spines.right": False}
SVG_METADATA = {"Date": None, "Creator": None}
UNSERVED = (0.85, 0.85, 0.85, 1.0)


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
    """``benchmark key -> {"benchmark": ..., "rows": [...]}``, rows pooled and sorted."""
    boards: dict[str, dict[str, Any]] = {}
    pooled: dict[str, dict[tuple, dict[str, Any]]] = defaultdict(dict)
    for sub in submissions:
        b = sub["benchmark"]
        boards.setdefault(b["key"], {"benchmark": b, "protocol": sub["protocol"]["version"]})
        s = sub["solver"]
        for run in sub["runs"]:
            key = (s["name"], sub["k"], s["commit"] or "", s["config"], run["total_timesteps"], sub["protocol"]["version"])
            row = pooled[b["key"]].setdefault(key, {
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
            row["best"] = mean_ci([r["best_welfare"] for r in row["runs"]])
            row["own"] = mean_ci([r["welfare"] for r in row["runs"]])
            row["egal"] = mean_ci([r["egalitarian_welfare"] for r in row["runs"]])
            row["wall"] = float(np.mean([r["wall_time_s"] for r in row["runs"]]))
            out.append(row)
        per_k: dict[tuple, int] = defaultdict(int)
        for row in out:
            per_k[(row["solver"], row["k"])] += 1
        ambiguous = {solver for (solver, _), count in per_k.items() if count > 1}
        varying = {solver: {field for field in ("commit", "config", "timesteps", "protocol")
                            if len({r[field] or "" for r in out if r["solver"] == solver}) > 1}
                   for solver in ambiguous}
        for row in out:  # a solver's rows share a label (one line in the plot) unless some k has several
            row["label"] = _label(row, varying.get(row["solver"], set()))
        out.sort(key=lambda r: (r["k"], -r["best"][0], r["label"], r["commit"] or "", r["config"], r["timesteps"]))
        boards[bkey]["rows"] = out
    return dict(sorted(boards.items(), key=lambda kv: (kv[1]["benchmark"]["env_id"], kv[0])))


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


def _pm(mci: tuple[float, float | None], digits: int) -> str:
    mean, half = mci
    return f"{mean:.{digits}f}" if half is None else f"{mean:.{digits}f} ± {half:.{digits}f}"


HEADER = ["Solver", "k", f"Welfare (mean ± {CONFIDENCE:.0%} CI)", "Worst-off user", "Normalized",
          "Own assignment", "Seeds", "Timesteps", "Commit", "Config"]


def table_rows(board: dict[str, Any], ref: dict[str, Any]) -> list[list[str]]:
    d = _digits(ref)
    out = []
    for row in board["rows"]:
        norm = normalized(row["best"][0], ref["random"]["welfare"], ref["upper"]["welfare"])
        out.append([row["label"], str(row["k"]), _pm(row["best"], d), _pm(row["egal"], d), _fmt(norm, 3),
                    _pm(row["own"], d), f"{len(row['seeds'])} ({', '.join(map(str, row['seeds']))})",
                    f"{row['timesteps']:,}", _short_commit(row["commit"], 10), row["config"]])
    return out


def reference_line(ref: dict[str, Any]) -> str:
    d = _digits(ref)
    r, u = ref["random"], ref["upper"]
    return (f"W_random = {_fmt(r['welfare'], d)} (uniform random policy, {r['episodes']} episodes from seed {r['seed']}); "
            f"W_upper = {_fmt(u['welfare'], d)} ({u['source']}); normalized = (W - W_random) / (W_upper - W_random)")


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
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    series: dict[str, list[dict]] = defaultdict(list)
    for row in board["rows"]:
        series[row["label"]].append(row)
    colors = _colors(max(len(series), 1))
    top = -np.inf  # highest CI edge: a far-off W_upper line would flatten every curve
    for color, label in zip(colors, sorted(series)):
        rows = sorted(series[label], key=lambda r: r["k"])
        ks = np.array([r["k"] for r in rows])
        mean = np.array([r["best"][0] for r in rows])
        half = np.array([r["best"][1] or 0.0 for r in rows])
        ax.plot(ks, mean, marker="o", color=color, label=label)
        ax.fill_between(ks, mean - half, mean + half, color=color, alpha=0.2, linewidth=0)
        if len(ks) == 1:  # a band needs two budgets; one budget gets an error bar
            ax.errorbar(ks, mean, yerr=half, color=color, capsize=4, linewidth=1)
        top = max(top, float(np.max(mean + half)))
    upper = ref["upper"]["welfare"]
    if upper is not None and upper <= 2 * max(top, ref["random"]["welfare"]):
        ax.axhline(upper, color="black", linestyle="--", linewidth=1, label="W_upper")
    elif upper is not None:  # say where it is instead of drawing it
        ax.text(0.99, 0.98, f"W_upper = {upper:g} (above the plot)", transform=ax.transAxes,
                ha="right", va="top", fontsize=7)
    ax.axhline(ref["random"]["welfare"], color="grey", linestyle=":", linewidth=1, label="W_random (uniform)")
    ks_all = sorted({r["k"] for r in board["rows"]})
    ax.set_xticks(ks_all)
    ax.set_xlabel("k (number of policies)")
    ax.set_ylabel("welfare (best response)")
    ax.set_title(board["benchmark"]["env_id"].split("/", 1)[1] + f" (n = {board['benchmark']['n']})")
    ax.legend(fontsize=7, frameon=False, loc="best")
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
                             squeeze=False, sharex=not grid, sharey=False)
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
            choice = utility.argmax(axis=0)
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
    fig.suptitle(f"{b['env_id'].split('/', 1)[1]}: {what}, coloured by the policy each user picks "
                 "(grey: no policy gives it any reward)", fontsize=9)
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


def _intro_md() -> list[str]:
    p = PROTOCOL
    return [
        "# rmdp leaderboard",
        "",
        "Personalized RL with a budget of k policies: who serves a population of n users best? Every row is "
        "re-checkable: each run's saved policies are stored under `submissions/` and were re-evaluated by "
        "`python -m leaderboard submit` before they were accepted.",
        "",
        f"**Evaluation protocol {p.version}:** greedy actions of the saved policies, {p.episodes} episodes per policy, "
        f"episode e from reset seed {p.seed} + e (`rmdp_envs.evaluate`). **Welfare** is the mean over users of the "
        "utility of the policy each user picks (best response); **worst-off user** is the minimum of those utilities "
        "(egalitarian welfare); **own assignment** is the welfare under the solver's own assignment. Mean and "
        f"{CONFIDENCE:.0%} t-interval over training seeds. **Normalized** = (W - W_random) / (W_upper - W_random) with "
        f"the reference points given under each table and in [`{REFERENCE_FILE}`]({REFERENCE_FILE}). A claimed welfare "
        f"must match the re-evaluation within {p.tolerance.describe()} ({p.chaotic_tolerance.describe()} on tasks with chaotic dynamics: MuJoCo).",
        "",
        "Submit: `python -m leaderboard submit RUN_DIR...` · render: `python -m leaderboard render` · "
        "open `leaderboard/site/index.html` for the plots.",
        "",
    ]


def render(board: Path) -> list[Path]:
    """Write ``README.md``, ``site/index.html`` and ``site/*.svg`` of ``board``; returns the paths."""
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    submissions = load_submissions(board)
    boards = collect(submissions)
    refs = ensure_references(board, [b["benchmark"] for b in boards.values()])["benchmarks"] if boards else {}
    site = board / SITE_DIR
    md = _intro_md()
    body: list[str] = []
    figures: dict[str, str] = {}
    p = PROTOCOL
    with matplotlib.rc_context(MPL_RC):
        for bkey, bd in boards.items():
            b = bd["benchmark"]
            ref = refs.get(f"{bkey}/{bd['protocol']}") or refs[f"{bkey}/{PROTOCOL.version}"]
            slug = _slug(b)
            rows = table_rows(bd, ref)
            md += [f"## {_title(b)}", "", f"env_kwargs: `{_compact(b['env_kwargs'])}`", "",
                   "| " + " | ".join(HEADER) + " |", "|" + "|".join(["---"] + ["---:"] * (len(HEADER) - 1)) + "|"]
            md += ["| " + " | ".join(r) + " |" for r in rows]
            md += ["", f"Reference points: {reference_line(ref)}.", ""]
            plots = [(f"{slug}-welfare.svg", welfare_plot(bd, ref), "welfare vs k")]
            assign = assignment_plot(bd)
            if assign is not None:
                plots.append((f"{slug}-assignment.svg", assign, "assignment"))
            body += [f'<section class="benchmark" id="{slug}">', f"<h2>{html.escape(_title(b))}</h2>",
                     f"<p>env_kwargs: <code>{html.escape(_compact(b['env_kwargs']))}</code></p>",
                     f'<table class="leaderboard" data-benchmark="{bkey}"><thead><tr>'
                     + "".join(f"<th>{html.escape(h)}</th>" for h in HEADER) + "</tr></thead><tbody>"]
            body += ["<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows]
            body += ["</tbody></table>", f'<p class="ref">Reference points: {html.escape(reference_line(ref))}.</p>']
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
            f"<p>Evaluation protocol {p.version}: {p.episodes} greedy episodes per policy from reset seed {p.seed}; "
            f"welfare = mean over users of their best policy's utility; worst-off user = egalitarian welfare; "
            f"mean ± {CONFIDENCE:.0%} t-interval over seeds; normalized = (W - W_random) / (W_upper - W_random). "
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
