#!/usr/bin/env bash
# Known-vulnerability check of the dependencies this install resolved to (pip-audit against PyPI's
# advisory data). The lock is the frozen environment: exactly the versions the tests ran on.
# Fails when a known vulnerability is found; says so plainly when the advisory service cannot be reached
# or cannot audit some packages (then nothing is claimed about them).
set -uo pipefail
cd "$(dirname "$0")/.."
lock="$(mktemp)"
report="$(mktemp)"
trap 'rm -f "$lock" "$report"' EXIT
.venv/bin/python -m pip freeze --exclude-editable --disable-pip-version-check > "$lock"
total=$(grep -c '==' "$lock")
.venv/bin/pip-audit -r "$lock" --no-deps --disable-pip -s pypi --progress-spinner off --desc on > "$report" 2>&1
status=$?
skipped=$(grep -c 'could not be audited' "$report")
grep -v '^WARNING:pip_audit' "$report" | grep -v 'could not be audited' | grep -v '^Name  *Skip Reason' | grep -v '^-\+ -\+$'
echo "pip-audit: ${total} locked packages, $((total - skipped)) audited, ${skipped} could not be audited (advisory data unavailable)"
if grep -Eq '^Name +Version +ID +Fix Versions' "$report"; then
  echo "pip-audit: known vulnerabilities found (see above)" >&2
  exit 1
fi
if [ "$status" -ne 0 ]; then
  echo "pip-audit: could not query the advisory service (exit $status): no claim is made about vulnerabilities"
fi
