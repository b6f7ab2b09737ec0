#!/usr/bin/env bash
# Make sure PostgreSQL answers at 127.0.0.1:5432 for the tests.
#
#   scripts/postgres.sh ensure   start the machine's cluster if it is not running,
#                                installing PostgreSQL from Debian if it is missing
set -euo pipefail
say() { echo "postgres.sh: $*" >&2; }

ready() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }

case "${1:-ensure}" in
ensure)
    if command -v pg_isready >/dev/null 2>&1 && ready; then
        exit 0
    fi
    if ! command -v pg_ctlcluster >/dev/null 2>&1; then
        say "PostgreSQL is not installed; installing it from Debian"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq && apt-get install -y -qq postgresql >/dev/null
    fi
    version="$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1)"
    [[ -n "$version" ]] || { say "no PostgreSQL cluster under /etc/postgresql"; exit 1; }
    conf="/etc/postgresql/$version/main"
    # Trust local TCP connections from this machine only, as the tests expect.
    if ! grep -q "^host all all 127.0.0.1/32 trust" "$conf/pg_hba.conf" 2>/dev/null; then
        sed -i '1i host all all 127.0.0.1/32 trust' "$conf/pg_hba.conf" || true
    fi
    say "starting PostgreSQL $version"
    pg_ctlcluster --skip-systemctl-redirect "$version" main start || pg_ctlcluster "$version" main start
    for _ in $(seq 1 30); do
        ready && exit 0
        sleep 1
    done
    say "PostgreSQL did not come up at 127.0.0.1:5432"
    exit 1
    ;;
*)
    say "usage: scripts/postgres.sh ensure"
    exit 2
    ;;
esac
