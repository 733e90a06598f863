#!/usr/bin/env bash
# Browser test of the rendered leaderboard, for .ci/run: headless Chromium from the system's package
# manager, driven by Playwright's Python package (its driver only: no browser download).
# Renders the committed board, checks leaderboard/site/index.html, and also checks a throw-away
# board built from fixture runs (so the check means something even before the board is seeded).
# Usage: bash leaderboard/ci_browser_test.sh   (PYTHON defaults to .venv/bin/python)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-.venv/bin/python}"
if ! command -v chromium >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq chromium >/dev/null
fi
"$PYTHON" -c "import playwright" 2>/dev/null || "$PYTHON" -m pip install --quiet "playwright>=1.40"
"$PYTHON" -m leaderboard render
ALLOW_EMPTY=""
if ! ls leaderboard/submissions/*/submission.json >/dev/null 2>&1; then
    ALLOW_EMPTY="--allow-empty"  # nothing submitted yet: the demo board carries the check
fi
"$PYTHON" -m leaderboard.browser_check --chromium "$(command -v chromium)" --demo $ALLOW_EMPTY
