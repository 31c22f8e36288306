#!/usr/bin/env bash
# Throwaway PostgreSQL cluster for tests, on a loopback port, in a temporary folder.
#
#   scripts/pg_test_server.sh start [DIR]   # prints the DATABASE_URL; DIR defaults to a new temp dir
#   scripts/pg_test_server.sh stop DIR      # stops the server and removes DIR
#
# Needs the server binaries (Debian: apt-get install -y postgresql). initdb refuses to run as
# root, so as root the cluster runs as the `postgres` user. PG_BIN overrides the binaries' folder.
set -euo pipefail

find_bin() {
    if [[ -n "${PG_BIN:-}" ]]; then echo "$PG_BIN"; return; fi
    local dir
    for dir in /usr/lib/postgresql/*/bin; do
        [[ -x "$dir/initdb" ]] && latest="$dir"
    done
    if [[ -n "${latest:-}" ]]; then echo "$latest"; return; fi
    if command -v initdb >/dev/null; then dirname "$(command -v initdb)"; return; fi
    echo "pg_test_server: no PostgreSQL server binaries (apt-get install -y postgresql)" >&2
    exit 2
}

as_owner() {
    if [[ "$(id -u)" == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

start() {
    local bin dir port
    bin="$(find_bin)"
    dir="${1:-$(mktemp -d /tmp/pgtest.XXXXXX)}"
    mkdir -p "$dir"
    [[ "$(id -u)" == 0 ]] && chown postgres: "$dir"
    as_owner "$bin/initdb" -D "$dir/data" -U escrow --auth=trust -E UTF8 --locale=C.UTF-8 \
        --no-sync >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; exit 1; }
    port="$(free_port)"
    # Tests want speed, not durability: the cluster is thrown away afterwards.
    as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start -o \
        "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off -c synchronous_commit=off \
         -c full_page_writes=off -c max_connections=100" >/dev/null \
        || { cat "$dir/server.log" >&2; exit 1; }
    as_owner "$bin/createdb" -h 127.0.0.1 -p "$port" -U escrow escrow_test
    echo "postgresql+psycopg://escrow@127.0.0.1:$port/escrow_test" | tee "$dir/url"
}

stop() {
    local bin dir="$1"
    bin="$(find_bin)"
    if [[ -d "$dir/data" ]]; then
        as_owner "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
    fi
    rm -rf "$dir"
}

case "${1:-}" in
    start) start "${2:-}" ;;
    stop) stop "${2:?usage: $0 stop DIR}" ;;
    *) echo "usage: $0 start [DIR] | stop DIR" >&2; exit 2 ;;
esac
