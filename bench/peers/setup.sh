#!/usr/bin/env bash
# The peer benchmark's own virtual environment (torch is never a dependency of hdo or its tests).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
python3 -m venv "$here/.venv"
"$here/.venv/bin/pip" install -q torch numpy
echo "ready: $here/.venv/bin/python $here/hdo_round.py"
