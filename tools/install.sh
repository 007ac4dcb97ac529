#!/usr/bin/env bash
# Create (or reuse) a virtual environment and install the toolkit into it with its test extras.
# Usage: bash tools/install.sh [VENV_DIR]   (default: .venv in the repository); prints the venv path.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
venv=${1:-$repo/.venv}
if [ ! -f "$venv/.deps-installed" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --upgrade pip >&2
  "$venv/bin/pip" install --quiet -e "$repo[test]" >&2
  touch "$venv/.deps-installed"
fi
# A reused venv may have served another clone: point the editable install at this checkout.
if ! (cd / && "$venv/bin/python" -c "import asr, sys; sys.exit(not asr.__file__.startswith('$repo/'))"); then
  "$venv/bin/pip" install --quiet --no-deps -e "$repo" >&2
fi
echo "$venv"
