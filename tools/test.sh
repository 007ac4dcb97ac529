#!/usr/bin/env bash
# Install the toolkit (if needed) and run the default test suite. Extra arguments go to pytest.
# VENV selects the environment (default: .venv in the repository).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
venv=$(bash "$repo/tools/install.sh" "${VENV:-$repo/.venv}")
cd "$repo"
status=0
"$venv/bin/python" -m pytest -q "$@" || status=$?
if [ "$status" -eq 5 ]; then
  echo "pytest collected no tests" >&2
  exit 1
fi
exit "$status"
