#!/usr/bin/env bash
# System packages the test suite needs, from Debian's packages: Chromium (browser tests drive it
# through Playwright's executable_path; no browser is ever downloaded), PostgreSQL (a throwaway
# cluster for the database tests) and Java 17 (Spark in local mode). Installs only what is missing,
# and only as root with apt-get; otherwise it says what to install.
set -euo pipefail
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
command -v java >/dev/null 2>&1 || missing+=(openjdk-17-jre-headless)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq "${missing[@]}" >/dev/null
  # the Debian package starts a cluster of its own; the tests start their own throwaway cluster
  command -v pg_ctlcluster >/dev/null 2>&1 && (pg_lsclusters -h 2>/dev/null | awk '{print $1, $2}' | while read -r v c; do pg_ctlcluster "$v" "$c" stop || true; done) || true
else
  echo "note: install ${missing[*]} (Debian packages) to run the browser, PostgreSQL and Spark tests" >&2
fi
