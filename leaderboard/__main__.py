"""``python -m leaderboard {submit,render,verify,reproduce,unseen,sweep}``; ``--help`` on each for its flags.

The board lives in ``leaderboard/`` unless ``--board-dir`` (or ``$RMDP_BOARD_DIR``) names another folder.
"""

from __future__ import annotations

import argparse
import importlib
import shlex
import sys
from pathlib import Path

from leaderboard.storage import BoardError, board_dir, board_flag


def _board_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--board-dir", default=None,
                   help="board folder holding submissions/, reference_points.json, README.md, site/ "
                        "(default: $RMDP_BOARD_DIR, else the leaderboard/ folder of this checkout)")
    p.add_argument("--import-module", action="append", default=[], metavar="MODULE",
                   help="import this module first (repeatable): one that registers r-MDPs of your own, named "
                        "'MODULE:rmdp/Name-vN' on the board; the board imports no module a submitted file names")


def _error(message: str) -> int:
    """Bad input: one ``error:`` line on stderr and exit status 2, as the solvers do; nothing has been written."""
    print(f"error: {message}", file=sys.stderr)
    return 2


def _read_board(board: Path, check_schema: bool) -> tuple[list[dict], str | None]:
    """Every stored submission of ``board`` read once, and (``check_schema``) the first that is not readable JSON or
    breaks the schema, said in one line: the board's commands read every submission, and one of them (a hand edit, a
    truncated file) gave a traceback. ``verify`` reports such files among its problems instead."""
    from leaderboard.storage import BoardError, read_submission, submission_folders  # noqa: PLC0415
    from leaderboard.submit import schema_errors  # noqa: PLC0415

    subs: list[dict] = []
    problems: list[str] = []
    for folder in submission_folders(board):
        try:
            sub = read_submission(folder)
        except BoardError as e:
            problems.append(str(e))
            continue
        subs.append(sub)
        errors = schema_errors(sub) if check_schema else []
        if errors:
            problems.append(f"{folder.name}: schema violation " + "; ".join(errors))
    if not check_schema or not problems:
        return subs, None
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return subs, (f"the board at {board} holds a malformed submission: {problems[0]}{more}; "
                  f"`python -m leaderboard verify{board_flag(board)}` lists every problem")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m leaderboard", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("submit", help="verify solver run folders and add them to the board")
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run folders holding result.json and saved policies")
    _board_arg(p)

    p = sub.add_parser("render", help="write README.md and site/index.html from the submissions")
    _board_arg(p)

    p = sub.add_parser("verify", help="re-evaluate every stored submission from its copied policies")
    _board_arg(p)
    p.add_argument("--envs", nargs="+", help="only these env ids (default: every benchmark on the board)")
    p.add_argument("--no-evaluate", action="store_true",
                   help="check schema and policy hashes only; skip re-evaluating the policies")
    p.add_argument("--workers", type=int, default=1,
                   help="re-evaluate this many runs at once, one process and one thread each (default 1)")
    p.add_argument("--report", metavar="JSON",
                   help="also write every run's stored and re-evaluated numbers to this file "
                        "(e.g. to record how far a MuJoCo upgrade moves the board)")

    p = sub.add_parser("reproduce", help="retrain a stored run from its recorded configuration and compare the welfare")
    p.add_argument("submission_dir", metavar="SUBMISSION_DIR", help="a folder submissions/<id>/ holding submission.json")
    p.add_argument("--seed", type=int, default=None, help="which run of the submission (default: its lowest seed)")
    p.add_argument("--at-head", action="store_true",
                   help="retrain with the current code instead of the code of the commit the run records "
                        "(does a code change since then alter this row's numbers?)")
    _board_arg(p)

    p = sub.add_parser("unseen", help="score stored protocol-v2 runs for users never seen in training (a fresh population "
                                      "draw) where that column is still missing, then re-render")
    p.add_argument("--envs", nargs="+", help="only these env ids (default: every benchmark on the board)")
    _board_arg(p)

    p = sub.add_parser("sweep", help="run a grid of solver runs and submit the results")
    p.add_argument("--envs", nargs="+", required=True, help="env ids, e.g. rmdp/ResourceGathering-v0")
    p.add_argument("--solvers", nargs="+", required=True, help="solver file names in solvers/, e.g. em_ppo e2e_ppo")
    p.add_argument("--k", nargs="+", type=int, required=True, help="budgets of policies")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="training seeds (default: 0 1 2)")
    p.add_argument("--total-timesteps", type=int, required=True, help="transitions per run")
    p.add_argument("--backend", choices=["local", "ray"], default="local",
                   help="local: a pool of solver processes on this machine; ray: tasks on a Ray cluster")
    p.add_argument("--address", default=None, help="Ray cluster address (default: start a local cluster)")
    p.add_argument("--workers", type=int, default=None, help="concurrent runs (default: the CPU count)")
    p.add_argument("--runs-dir", default="runs/sweep", help="where run folders go (default runs/sweep)")
    p.add_argument("--solvers-dir", default=None, help="folder of solver scripts (default solvers/)")
    p.add_argument("--n-agents", type=int, default=None, help="passed to the solvers")
    p.add_argument("--population", default=None, help="population sampler, passed to the solvers")
    p.add_argument("--population-seed", type=int, default=None, help="passed to the solvers")
    p.add_argument("--solver-args", default="", help="more solver flags, one quoted string")
    p.add_argument("--timeout", type=float, default=None,
                   help="seconds before a run counts as failed (default: no limit)")
    p.add_argument("--no-submit", action="store_true", help="only run; do not submit")
    p.add_argument("--dry-run", action="store_true",
                   help="check the grid and say what would run (finished, to resume, to start), its first command and "
                        "the core-hours the board's own runs of those envs suggest; run and write nothing")
    p.add_argument("--no-render", action="store_true", help="do not re-render the board after submitting")
    _board_arg(p)

    args, unknown = parser.parse_known_args(argv)
    if unknown:  # said by the subcommand's parser, so its usage (not the top level's) comes with it
        sub.choices[args.command].error(f"unrecognized arguments: {' '.join(unknown)}")
    for module in args.import_module:
        try:
            importlib.import_module(module)
        except Exception as e:  # noqa: BLE001 (any failure of the user's module, said in one line)
            return _error(f"--import-module {module}: {type(e).__name__}: {e}")
    try:
        board = board_dir(args.board_dir)
    except BoardError as e:
        return _error(str(e))
    if args.command in ("render", "verify", "unseen") and not (board / "submissions").is_dir():
        return _error(f"no board at {board}: it has no submissions/ folder (`python -m leaderboard submit RUN_DIR "
                      "--board-dir ...` starts one)")
    stored, malformed = _read_board(board, check_schema=args.command != "verify")
    if malformed:  # said at once (verify reports them among the rest)
        return _error(malformed)
    if args.command in ("render", "verify", "unseen"):  # the board's envs (--envs': those) makeable here, said at once
        from rmdp_envs.registration import registered_id  # noqa: PLC0415
        # verify's malformed submission (no benchmark or env id) is left to its schema check
        benchmarks = [sub.get("benchmark") for sub in stored]
        on_board = {b.get("env_id") for b in benchmarks if isinstance(b, dict) and isinstance(b.get("env_id"), str)}
        for env_id in sorted(e for e in on_board if not getattr(args, "envs", None) or e in args.envs):
            try:
                registered_id(env_id, import_module=False)
            except ValueError as e:
                return _error(f"the board at {board} holds runs of {env_id!r}, which this process cannot make: {e}")
    if args.command in ("verify", "unseen") and args.envs:
        missing = sorted(set(args.envs) - on_board)
        if missing:
            return _error(f"--envs {' '.join(missing)}: no submissions on the board at {board} "
                          f"(its benchmarks: {', '.join(sorted(on_board)) or 'none'})")

    if args.command == "submit":
        from leaderboard.submit import SubmissionError, submit  # noqa: PLC0415
        try:
            written = submit(args.run_dirs, board)
        except SubmissionError as e:
            print(f"rejected: {e}", file=sys.stderr)
            print("nothing was written", file=sys.stderr)
            return 1
        print(f"{len(written)} submission(s) written under {board / 'submissions'}; run "
              f"`python -m leaderboard render{board_flag(board)}`")
        return 0

    if args.command == "render":
        from leaderboard.render import render  # noqa: PLC0415
        paths = render(board)
        print(f"wrote {paths[0]} and {paths[1]} (+{len(paths) - 2} plot(s)); open file://{paths[1]}")
        return 0

    if args.command == "verify":
        from leaderboard.verify import verify_board  # noqa: PLC0415
        if args.workers < 1:
            return _error(f"--workers must be at least 1, got {args.workers}")
        if args.report:  # checked now, not after the (long) re-evaluation
            from rmdp_envs.files import writable_place  # noqa: PLC0415
            why = writable_place(args.report)
            if why:
                return _error(f"--report {args.report}: cannot write it ({why})")
        report = [] if args.report else None
        problems = verify_board(board, evaluate=not args.no_evaluate, envs=args.envs, workers=args.workers,
                                report=report)
        if args.report:
            from rmdp_envs.files import atomic_write_json  # noqa: PLC0415
            from rmdp_envs.results import hardware, library_versions  # noqa: PLC0415
            atomic_write_json(args.report, {"machine": hardware(), "versions": library_versions(), "problems": problems, "runs": report})
        for line in problems:
            print(line, file=sys.stderr)
        print("board verified" if not problems else f"{len(problems)} problem(s)")
        return 1 if problems else 0

    if args.command == "unseen":
        from leaderboard.render import render  # noqa: PLC0415
        from leaderboard.unseen import add_unseen  # noqa: PLC0415

        scored = add_unseen(board, args.envs)
        print(f"{scored} run(s) scored for unseen users" + ("" if scored else "; the board is unchanged, not re-rendered"))
        if scored:
            render(board)
        return 0

    if args.command == "reproduce":
        from leaderboard.reproduce import reproduce  # noqa: PLC0415
        folder = Path(args.submission_dir)
        if not folder.exists() and (board / "submissions" / folder.name).is_dir():  # a bare id: the board's
            folder = board / "submissions" / folder.name
        if not (folder / "submission.json").is_file():
            return _error(f"{args.submission_dir}: no submission.json there (nor under {board / 'submissions'})")
        try:
            ok = reproduce(folder, args.seed, at_head=args.at_head)
        except (OSError, ValueError, RuntimeError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        print("reproduced" if ok else "does NOT reproduce within the protocol's tolerance")
        return 0 if ok else 1

    from leaderboard.sweep import SweepError, sweep  # noqa: PLC0415
    try:
        extra = shlex.split(args.solver_args)
    except ValueError as e:
        return _error(f"--solver-args {args.solver_args!r}: {e} (one string of solver flags, quoted as in a shell)")
    for flag, value in (("--n-agents", args.n_agents), ("--population", args.population),
                        ("--population-seed", args.population_seed)):
        if value is not None:
            extra += [flag, str(value)]
    try:
        outcomes = sweep(args.envs, args.solvers, args.k, args.seeds, args.total_timesteps, Path(args.runs_dir), board,
                         backend=args.backend, address=args.address, workers=args.workers,
                         solvers_dir=Path(args.solvers_dir) if args.solvers_dir else None, extra_args=extra,
                         timeout=args.timeout, do_submit=not args.no_submit, dry_run=args.dry_run)
    except SweepError as e:
        return _error(str(e))
    except KeyboardInterrupt:  # the sweep said what stopped and how to continue
        return 130
    if not args.no_submit and not args.no_render and not args.dry_run:
        from leaderboard.render import render  # noqa: PLC0415
        paths = render(board)
        print(f"rendered {paths[0]}; open file://{paths[1]}")
    bad = [o for o in outcomes if o.status == "failed" or "rejected" in o.extra]
    return 1 if bad else 0


#: Modules of the leaderboard extra (and the train extra it includes) that the commands import when they run.
EXTRA_MODULES = {"jsonschema", "matplotlib", "scipy", "torch", "tyro", "safetensors", "sklearn", "tqdm", "tensorboard",
                 "PIL", "threadpoolctl"}


def run() -> int:
    """:func:`main`, with a missing extra said in one line (an install of the environments alone has none of them)."""
    try:
        return main()
    except ModuleNotFoundError as e:
        if (e.name or "").split(".")[0] not in EXTRA_MODULES:
            raise
        return _error(f"python -m leaderboard needs rmdp's leaderboard extra ({e}): pip install torch first, then "
                      "pip install -e '.[leaderboard]' in a checkout of rmdp")


if __name__ == "__main__":
    sys.exit(run())
