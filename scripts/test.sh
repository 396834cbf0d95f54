#!/usr/bin/env bash
# The README's test command: set up .venv with the test extras and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/system_deps.sh
bash scripts/setup.sh test
.venv/bin/python -m pytest "$@"
bash scripts/audit_deps.sh
