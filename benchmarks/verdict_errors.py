"""What the board's statistics are worth at its seed counts: simulated, with the board's own code.

Three questions a reviewer asks of ``leaderboard/README.md`` (its rows have 5 or 10 training seeds):

* **Coverage**: how often does the "95% CI" of a row's mean (``leaderboard.stats.interval``: percentile
  bootstrap) hold the true mean, for 3, 5 and 10 seeds of normal and of skewed (lognormal) scores?
* **False verdicts**: when every solver at a k is equally good, how often does ``leaderboard.render.verdicts``
  call some pair "better" or "worse" (2 and 5 solvers, 5 and 10 seeds)? Beside it, the rule the board used until
  this script was written: a paired bootstrap interval of the probability of improvement that excludes 1/2, no
  correction for the leader being picked by its mean or for its several comparisons.
* **Power**: how often is a solver one standard deviation (of the seeds' spread) above the rest told better than
  every other (``power_one_sd_board``)?

    python benchmarks/verdict_errors.py --repeats 1000  (the committed file; --out elsewhere to compare)

Seeded (numpy's ``default_rng(0)``): the same file on every run. A few minutes on one core.
"""

from __future__ import annotations

import sys
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import tyro

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from leaderboard.render import verdicts  # noqa: E402
from leaderboard.stats import CONFIDENCE, RESAMPLES, _poi, interval, mean  # noqa: E402
from rmdp_envs.files import atomic_write_json  # noqa: E402
from rmdp_envs.results import git_commit, hardware, library_versions, provenance  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Args:
    repeats: int = 400
    """simulated boards (or seeds' samples) per setting"""
    out: str = "benchmarks/results/verdict_errors.json"
    """where the result goes (relative to the repository)"""


def coverage(rng: np.random.Generator, seeds: int, kind: str, repeats: int) -> float:
    """Share of repeats whose interval of the mean holds the true mean."""
    true = 0.0 if kind == "normal" else float(np.exp(0.5))  # the lognormal(0, 1) mean
    held = 0
    for _ in range(repeats):
        x = rng.normal(size=seeds) if kind == "normal" else rng.lognormal(size=seeds)
        _, lo, hi = interval(x, mean)
        held += lo <= true <= hi
    return held / repeats


def _rows(scores: np.ndarray) -> list[dict]:
    return [{"k": 1, "label": f"s{i}", "solver": f"s{i}", "seeds": list(range(scores.shape[1])),
             "runs": [{"seed": s, "best_welfare": float(v)} for s, v in enumerate(row)], "mean_best": float(row.mean())}
            for i, row in enumerate(scores)]


def board_calls(scores: np.ndarray) -> tuple[bool, bool]:
    """``(any pair told apart, the shifted solver 0 told better than every other)`` by the board's verdicts."""
    (line,) = verdicts({"rows": _rows(scores)}, 2)
    parts = line.split("; against ", 1)[1].split("; ")
    apart = any(": better (" in p or ": worse (" in p for p in parts)
    zero_leads = line.startswith("k = 1: s0 has the highest mean")
    return apart, zero_leads and all(": better (" in p for p in parts)


def old_rule_calls(scores: np.ndarray) -> bool:
    """The rule before: leader by mean, paired percentile bootstrap of the probability of improvement, no correction."""
    from scipy.stats import bootstrap  # noqa: PLC0415

    lead = int(np.argmax(scores.mean(axis=1)))
    for other in range(scores.shape[0]):
        if other == lead:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = bootstrap((scores[lead], scores[other]), _poi, paired=True, vectorized=True, n_resamples=RESAMPLES,
                            confidence_level=CONFIDENCE, method="percentile", random_state=0)
        if res.confidence_interval.low > 0.5 or res.confidence_interval.high < 0.5:
            return True
    return False


def main(args: Args) -> None:
    if args.repeats < 10:
        raise SystemExit("error: --repeats must be at least 10")
    rng, start = np.random.default_rng(0), time.perf_counter()
    result = {"args": asdict(args), "commit": git_commit(), "hardware": hardware(), "versions": library_versions(),
              "confidence": CONFIDENCE, "resamples": RESAMPLES, "coverage_of_the_mean_interval": [], "verdicts": []}
    for kind in ("normal", "lognormal"):
        for seeds in (3, 5, 10):
            share = coverage(rng, seeds, kind, args.repeats)
            result["coverage_of_the_mean_interval"].append({"scores": kind, "seeds": seeds, "coverage": share})
            print(f"coverage, {kind}, {seeds} seeds: {share:.3f}", flush=True)
    for solvers in (2, 5):
        for seeds in (5, 10):
            null_board = null_old = told = 0
            for _ in range(args.repeats):
                scores = rng.normal(size=(solvers, seeds))
                null_board += board_calls(scores)[0]
                null_old += old_rule_calls(scores)
                shifted = rng.normal(size=(solvers, seeds))
                shifted[0] += 1.0
                told += board_calls(shifted)[1]
            row = {"solvers": solvers, "seeds": seeds,
                   "false_verdict_rate_board": null_board / args.repeats,
                   "false_verdict_rate_old_rule": null_old / args.repeats,
                   "power_one_sd_board": told / args.repeats}
            result["verdicts"].append(row)
            print(row, flush=True)
    result["seconds"] = round(time.perf_counter() - start, 1)
    atomic_write_json(ROOT / args.out, {**result, "provenance": provenance(ROOT)})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main(tyro.cli(Args, description=__doc__))
