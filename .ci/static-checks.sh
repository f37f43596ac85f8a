#!/usr/bin/env bash
# Static checks: ruff (lint + import order) and mypy, configured in pyproject.toml.
# Both always run, so one CI pass shows every finding; exits non-zero if either reports any.
# Tools: `python3 -m pip install -r requirements-dev.txt`.
set -uo pipefail
cd "$(dirname "$0")/.."

rc=0
printf '==> %s\n' "ruff check agola tests bench"
python3 -m ruff check agola tests bench || rc=1
printf '==> %s\n' "mypy"
python3 -m mypy || rc=1
exit "$rc"
