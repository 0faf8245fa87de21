#!/usr/bin/env bash
# deps.sh — make sure the system packages evoucher needs are present.
# Installs what is missing with apt-get when run as root; otherwise prints the exact install
# line and fails. Usage: scripts/deps.sh [--postgres]   (--postgres: also the server binaries)
set -euo pipefail

need_pg=0
[ "${1:-}" = "--postgres" ] && need_pg=1

missing=()
softhsm_module() {
  for m in /usr/lib/softhsm/libsofthsm2.so /usr/lib/*-linux-gnu/softhsm/libsofthsm2.so /usr/local/lib/softhsm/libsofthsm2.so; do
    [ -e "$m" ] && return 0
  done
  return 1
}
{ softhsm_module && command -v softhsm2-util >/dev/null; } || missing+=(softhsm2)
command -v xmlsec1 >/dev/null || missing+=(xmlsec1)
command -v gcc >/dev/null || missing+=(gcc libc6-dev)
if [ "$need_pg" = 1 ] && [ -z "${DATABASE_URL:-}" ]; then
  if ! command -v initdb >/dev/null && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    missing+=(postgresql)
  fi
fi
command -v pg_dump >/dev/null || missing+=(postgresql-client)
command -v curl >/dev/null || missing+=(curl ca-certificates)
# headless browser for the dashboard tests (api/dashboard, driven with chromedp)
command -v chromium >/dev/null || missing+=(chromium)
# a terminal multiplexer to drive evpos's full screen in tests and the demo
command -v tmux >/dev/null || missing+=(tmux)

[ "${#missing[@]}" -eq 0 ] && exit 0

line="apt-get install -y --no-install-recommends ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
  echo "evoucher needs system packages that are missing: ${missing[*]}" >&2
  echo "install them with:  sudo apt-get update && sudo $line" >&2
  exit 1
fi
echo "installing missing system packages: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2
# The postgresql package tries to start a cluster through invoke-rc.d; where no init system
# runs that fails harmlessly, and we start our own private cluster anyway.
apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
