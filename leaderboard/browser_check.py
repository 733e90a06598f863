"""Open the rendered site in headless Chromium: tables and plots present, no console errors.

    python -m leaderboard.browser_check [--site leaderboard/site/index.html] [--demo] [--screenshot out.png]

``--demo`` first builds a throw-away board from fixture runs (no solver needed), renders it and
checks that page too. Uses Playwright's Python driver with the system Chromium
(``--chromium``, default ``/usr/bin/chromium``): nothing is downloaded. Exit code 0 only when every
page passes.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path

from leaderboard.storage import PACKAGE_DIR

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]


def check_page(html_path: Path, chromium: str, screenshot: Path | None = None, require_rows: bool = True) -> list[str]:
    """Problems on the page (empty: it passed)."""
    from playwright.sync_api import sync_playwright  # noqa: PLC0415

    problems: list[str] = []
    html_path = html_path.resolve()
    if not html_path.is_file():
        return [f"{html_path} does not exist (run `python -m leaderboard render`)"]
    expected = int(re.search(r'name="rmdp-benchmarks" content="(\d+)"', html_path.read_text()).group(1))
    with sync_playwright() as pw, tempfile.TemporaryDirectory(prefix="rmdp-chromium-") as profile:
        context = pw.chromium.launch_persistent_context(profile, executable_path=chromium, headless=True,
                                                        args=CHROMIUM_ARGS)
        try:
            page = context.new_page()
            errors: list[str] = []
            page.on("console", lambda m: errors.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
            page.on("requestfailed", lambda r: errors.append(f"request failed: {r.url} ({r.failure})"))
            response = page.goto(html_path.as_uri(), wait_until="load")
            if response is not None and not response.ok:
                problems.append(f"loading {html_path} gave status {response.status}")
            tables = page.locator("table.leaderboard")
            n_tables = tables.count()
            if n_tables != expected:
                problems.append(f"{n_tables} leaderboard tables, the page says {expected} benchmarks")
            if require_rows and expected == 0:
                problems.append("the board has no submissions (no tables to check)")
            for i in range(n_tables):
                rows = tables.nth(i).locator("tbody tr").count()
                if rows < 1:
                    problems.append(f"table {i} has no rows")
            plots = page.locator("figure.plot svg")
            if plots.count() < expected:
                problems.append(f"{plots.count()} plots for {expected} benchmarks")
            for i in range(plots.count()):
                box = plots.nth(i).bounding_box()
                if box is None or box["width"] < 50 or box["height"] < 50:
                    problems.append(f"plot {i} is not visible (bounding box {box})")
            welfare_plots = page.locator('figure.plot[data-plot$="-welfare.svg"]').count()
            if welfare_plots != expected:
                problems.append(f"{welfare_plots} welfare-vs-k plots for {expected} benchmarks")
            if screenshot is not None:
                page.screenshot(path=str(screenshot), full_page=True)
            page.wait_for_timeout(200)
            problems += errors
            print(f"{html_path}: {n_tables} table(s), {plots.count()} plot(s), {len(errors)} console error(s)")
        finally:
            context.close()
    return problems


def demo_board(root: Path) -> Path:
    """A board with fixture submissions on ResourceGathering and a small speed-like task, rendered."""
    from leaderboard.render import render  # noqa: PLC0415
    from leaderboard.submit import submit  # noqa: PLC0415
    from leaderboard.testing import make_fixture_run  # noqa: PLC0415

    board = root / "board"
    for env_id, kwargs in (("rmdp/ResourceGathering-v0", {}), ("rmdp/CartPolePosition-v0", {"n_agents": 20})):
        for i, solver in enumerate(("fixture_a", "fixture_b")):
            for k in (1, 2):
                runs = [make_fixture_run(root / f"{env_id.split('/')[1]}-{solver}-k{k}-s{s}", env_id, k, s, kwargs,
                                         solver=solver, weight_seed=100 * i + 10 * k + s) for s in (0, 1)]
                submit(runs, board, log=lambda _m: None)
    render(board)
    return board / "site" / "index.html"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--site", default=str(PACKAGE_DIR / "site" / "index.html"), help="page to check")
    parser.add_argument("--chromium", default="/usr/bin/chromium", help="Chromium executable")
    parser.add_argument("--demo", action="store_true", help="also build, render and check a fixture board")
    parser.add_argument("--allow-empty", action="store_true", help="pass a board without submissions")
    parser.add_argument("--screenshot", default=None, help="save a full-page screenshot of --site here")
    args = parser.parse_args(argv)
    problems = check_page(Path(args.site), args.chromium, Path(args.screenshot) if args.screenshot else None,
                          require_rows=not args.allow_empty)
    if args.demo:
        with tempfile.TemporaryDirectory(prefix="rmdp-demo-board-") as tmp:
            problems += check_page(demo_board(Path(tmp)), args.chromium)
    for p in problems:
        print(f"FAIL: {p}", file=sys.stderr)
    print("browser check passed" if not problems else f"browser check failed: {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
