"""Submit every finished run of a sweep's run folder (``runs_dir/<env>/<solver>/t<T>/k<k>-s<seed>/``).

``sweep --no-submit`` leaves the runs for later; this submits them per (env, solver), which the
board groups by configuration. Already-stored runs are skipped.

    python scripts/submit_sweep.py RUNS_DIR [--board-dir DIR] [--complete 5]

``--complete N`` submits only the (env, solver) groups with N finished runs, so a sweep still
running can be submitted group by group as each finishes (a board row then holds all its seeds).
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

from leaderboard.storage import board_dir
from leaderboard.submit import submit
from leaderboard.sweep import finished_run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs_dir", help="the sweep's --runs-dir")
    parser.add_argument("--board-dir", default=None)
    parser.add_argument("--complete", type=int, default=None, metavar="N",
                        help="only groups with at least N finished runs (the others wait for a later call)")
    args = parser.parse_args()
    groups: dict[tuple[str, str], list[Path]] = defaultdict(list)
    for task in sorted(Path(args.runs_dir).glob("*/*/t*/k*-s*")):
        run = finished_run(task)
        if run is not None:
            groups[(task.parts[-4], task.parts[-3])].append(run)
    board = board_dir(args.board_dir)
    for (env, solver), runs in sorted(groups.items()):
        if args.complete is not None and len(runs) < args.complete:
            print(f"{env} {solver}: {len(runs)} of {args.complete} runs finished, left for later", flush=True)
            continue
        written = submit(runs, board, skip_duplicates=True, log=lambda *_: None)
        print(f"{env} {solver}: {len(runs)} runs, {len(written)} submission(s) written"
              + ("" if written else " (every run is already on the board)"), flush=True)


if __name__ == "__main__":
    main()
