#!/usr/bin/env bash
# Installs the Debian packages the project needs (PostgreSQL, Chromium, nginx, Redis...) when
# they are missing. Needs root for apt-get; otherwise it says what to install.
set -euo pipefail

need=()
# PostgreSQL server: the database tests run on it as well as on SQLite.
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
# Chromium: the browser tests drive it with Playwright (its own browser download cannot work
# offline, Debian's build does).
command -v chromium >/dev/null 2>&1 || need+=(chromium)
# wrk: bounded load on loopback for the web benchmark.
command -v wrk >/dev/null 2>&1 || need+=(wrk)
# nginx and Redis: the scaled shape (make run-scaled, docs/scaling.md) runs several web
# instances behind nginx, with the rate-limit counters in Redis.
[ -x /usr/sbin/nginx ] || command -v nginx >/dev/null 2>&1 || need+=(nginx)
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)

if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "missing system packages: ${need[*]} (install them with: sudo apt-get install ${need[*]})" >&2
  exit 1
fi
echo "installing system packages: ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
