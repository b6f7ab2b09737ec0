#!/usr/bin/env bash
# A real Tryton 8.2 ERP (PyPI packages only) for shipledger's connector tests.
#
#   scripts/tryton.sh up      venv + seeded template database + running trytond
#   scripts/tryton.sh env     print .cache/tryton/env (shell `export` lines)
#   scripts/tryton.sh status  say what is there; exit 0 only if the server answers
#   scripts/tryton.sh down    stop the trytond this script started (drops nothing)
#   scripts/tryton.sh clone NAME   clone the template as NAME and warm it up
#   scripts/tryton.sh drop NAME    drop a clone (WITH (FORCE))
#
# `up` is idempotent and takes well under a second when everything is in place:
#   1. venv in .cache/tryton/venv, pip-installed from a pinned requirement list;
#      skipped while .cache/tryton/venv.stamp holds the hash of that list.
#   2. template database $TRYTON_TEMPLATE_DB (default shipledger_tryton_tpl) on
#      the PostgreSQL at $TRYTON_PG_URL (default postgresql://postgres@127.0.0.1:5432/):
#      built into "<name>__build" (trytond-admin + scripts/tryton/seed.py), then
#      renamed, so a half-built template is never visible under the real name.
#      Rebuilt only when the stamp (hash of seed.py, the requirements, the module
#      list and the current year) differs. The stamp and the seed's JSON summary
#      (ids, REST key, ...) live in the database's COMMENT, so they can be read
#      from pg_database without ever connecting to the template.
#      The template is marked IS_TEMPLATE: trytond never lists it, so it never
#      opens a connection to it, and CREATE DATABASE ... TEMPLATE never finds it busy.
#   3. trytond on a random free 127.0.0.1 port, in the background (pid in
#      .cache/tryton/trytond.pid, log in .cache/tryton/trytond.log); reused while
#      that pid is alive, answers HTTP and runs with the same venv and config.
#   4. .cache/tryton/env: TRYTON_URL, TRYTON_TEMPLATE_DB, TRYTON_PG_URL,
#      TRYTON_API_KEY, TRYTON_SEED_JSON (plus .cache/tryton/seed.json).
#
# How tests use it (trytond runs WITHOUT -d and serves only clones):
#   CREATE DATABASE "<unique name>" TEMPLATE shipledger_tryton_tpl   (~1 s)
#   one warm-up request, alone, e.g. GET $TRYTON_URL/<name>/rest/model/res.user?s=1
#       (Authorization: Bearer $TRYTON_API_KEY); it loads the clone's module
#       pool, ~1 s; warm-ups of *different* clones may run concurrently
#   then any requests, concurrent ones too, on $TRYTON_URL/<name>/rest/...
#   DROP DATABASE "<name>" WITH (FORCE)
# (`scripts/tryton.sh clone NAME` / `drop NAME` do the same by hand.)
# Why, and the rules that keep it working (all checked against trytond 8.2):
#   * trytond finds a database it has not served yet through a listing of
#     pg_database that it caches for [session] timeout seconds (300 by
#     default): a clone made after that listing answers 404 for 5 minutes.
#     The config below sets the timeout to 0, so every first request to an
#     unknown database lists again. (Sessions use the same timeout; the
#     bearer-key REST API does not use sessions.)
#   * Concurrent FIRST requests to one fresh clone race on loading its pool
#     and some answer 500 (KeyError 'res.user', or "Cannot create a consistent
#     method resolution order"): hence the single warm-up request. This, not
#     the missing -d, is what the "KeyError 'res.user'" of a server started
#     without -d was.
#   * Never reuse a database name within one trytond run: the pool and the
#     in-memory caches are kept per name and outlive DROP DATABASE. Each clone
#     served costs the server about 20 MB that is never given back; run
#     `down` then `up` after a few hundred clones.
#   * The listing connects to [database] default_name and probes every
#     non-template database. default_name is "postgres" so trytond never holds
#     a connection to template1 (which would make other suites' plain
#     CREATE DATABASE fail with "source database is being accessed by other
#     users"), and the template (and the database being built) are marked
#     IS_TEMPLATE so they are never probed: cloning never finds them busy.
set -euo pipefail

say() { echo "scripts/tryton.sh: $*" >&2; }
die() {
    echo "scripts/tryton.sh: ERROR: $*" >&2
    exit 1
}

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="$ROOT/.cache/tryton"
VENV="$CACHE/venv"
PY="$VENV/bin/python"
SEED="$ROOT/scripts/tryton/seed.py"
PG_URL="${TRYTON_PG_URL:-postgresql://postgres@127.0.0.1:5432/}"
TPL="${TRYTON_TEMPLATE_DB:-shipledger_tryton_tpl}"
PIDFILE="$CACHE/trytond.pid"
LOGFILE="$CACHE/trytond.log"
CONF="$CACHE/trytond.conf"
ENVFILE="$CACHE/env"
SEED_JSON="$CACHE/seed.json"

# What the tests need of Tryton. trytond[postgresql] brings psycopg and
# psycopg_pool; sale_payment + account_payment_clearing give real payment
# evidence on sales; the rest are the shipping, costing and measurement bits.
REQUIREMENTS="\
trytond[postgresql]==8.2.*
proteus==8.2.*
trytond-account==8.2.*
trytond-account-invoice==8.2.*
trytond-account-invoice-stock==8.2.*
trytond-account-payment==8.2.*
trytond-account-payment-clearing==8.2.*
trytond-carrier==8.2.*
trytond-product-measurements==8.2.*
trytond-sale==8.2.*
trytond-sale-payment==8.2.*
trytond-sale-shipment-cost==8.2.*
trytond-stock==8.2.*
trytond-stock-package-shipping==8.2.*
trytond-stock-shipment-measurements==8.2.*
"
# Activated in the template (their dependencies come along).
MODULES=(sale sale_payment account_payment_clearing sale_shipment_cost
    account_invoice_stock stock_package_shipping stock_shipment_measurements
    product_measurements carrier)

sha() { sha256sum | cut -c1-16; }

# ---------------------------------------------------------------- 1. venv ---
ensure_venv() {
    command -v python3 >/dev/null 2>&1 ||
        die "python3 is not installed (Tryton 8.2 needs Python >= 3.9; on Debian: apt-get install python3 python3-venv)"
    python3 - <<'EOF' || die "python3 is too old or lacks venv/ensurepip (Debian: apt-get install python3-venv)"
import sys, venv, ensurepip  # noqa
sys.exit(0 if sys.version_info >= (3, 9) else 1)
EOF
    local want
    want="$( (printf '%s' "$REQUIREMENTS"; python3 -VV) | sha)"
    if [[ -x "$PY" && -f "$CACHE/venv.stamp" && "$(cat "$CACHE/venv.stamp")" == "$want" ]]; then
        return 0
    fi
    say "installing Tryton 8.2 into $VENV (pip, from PyPI)"
    stop_server # it runs from the venv about to be replaced
    rm -rf "$VENV" "$CACHE/venv.stamp"
    mkdir -p "$CACHE"
    python3 -m venv "$VENV" || die "python3 -m venv $VENV failed"
    printf '%s' "$REQUIREMENTS" >"$CACHE/requirements.txt"
    if ! "$PY" -m pip install --quiet --disable-pip-version-check \
        -r "$CACHE/requirements.txt" >"$CACHE/pip.log" 2>&1; then
        tail -n 20 "$CACHE/pip.log" >&2
        die "pip install of Tryton 8.2 failed (is PyPI reachable?); full log: $CACHE/pip.log"
    fi
    "$PY" -c 'import trytond, proteus, psycopg, psycopg_pool' ||
        die "the Tryton venv is incomplete after pip install"
    echo "$want" >"$CACHE/venv.stamp"
}

# ------------------------------------------------------------ PostgreSQL ---
# pg SQL [ARG...]: run one statement (autocommit) on the maintenance database
# "postgres" of $TRYTON_PG_URL with psycopg from the venv and print the first
# column of each row. "{}" in SQL takes the next ARG as an identifier, "{lit}"
# as a literal (for utility statements), "%s" as a bound parameter.
pg() {
    "$PY" - "$PG_URL" "$@" <<'EOF'
import re, sys
from urllib.parse import urlsplit, urlunsplit
import psycopg
from psycopg import sql
url, query, *args = sys.argv[1:]
parts = urlsplit(url)
conninfo = urlunsplit(parts._replace(scheme='postgresql', path='/postgres'))
pieces, params, args = [], [], list(args)
for token in re.split(r'(\{\}|\{lit\}|%s)', query):
    if token == '{}':
        pieces.append(sql.Identifier(args.pop(0)))
    elif token == '{lit}':
        pieces.append(sql.Literal(args.pop(0)))
    elif token == '%s':
        pieces.append(sql.Placeholder())
        params.append(args.pop(0))
    else:
        pieces.append(sql.SQL(token))
try:
    with psycopg.connect(conninfo, autocommit=True, connect_timeout=10) as conn:
        cur = conn.execute(sql.Composed(pieces), params or None)
        if cur.description:
            for row in cur:
                print('' if row[0] is None else row[0])
except psycopg.Error as e:
    sys.exit(f'scripts/tryton.sh: ERROR: PostgreSQL at {url}: {e}'.strip())
EOF
}

check_postgres() {
    pg "SELECT 1" >/dev/null 2>&1 && return 0
    if [[ -z "${TRYTON_PG_URL:-}" && -x "$ROOT/scripts/postgres.sh" ]]; then
        say "PostgreSQL does not answer at $PG_URL; trying scripts/postgres.sh ensure"
        "$ROOT/scripts/postgres.sh" ensure || true
    fi
    pg "SELECT 1" >/dev/null ||
        die "cannot reach PostgreSQL at $PG_URL (start it with scripts/postgres.sh ensure, or set TRYTON_PG_URL)"
}

db_exists() { [[ "$(pg "SELECT count(*) FROM pg_database WHERE datname = %s" "$1")" == 1 ]]; }

# The template's COMMENT: {"stamp": ..., "summary": {...seed.py output...}}
template_comment() {
    pg "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s" "$TPL"
}

comment_field() { # comment_field JSON KEY -> value (JSON for objects)
    "$PY" -c '
import json, sys
try:
    data = json.loads(sys.argv[1])
except ValueError:
    sys.exit(0)
value = data.get(sys.argv[2]) if isinstance(data, dict) else None
if value is not None:
    print(value if isinstance(value, str) else json.dumps(value, indent=1))
' "$1" "$2"
}

conf_body() {
    cat <<EOF
[database]
uri = $PG_URL
# List databases from "postgres", never from template1 (see the top).
default_name = postgres
# Keep no idle connection to every clone served (they get dropped).
minconn = 0

[session]
# 0 = never cache the database list, so fresh clones are found at once.
timeout = 0
EOF
}

write_conf() { # write_conf [PORT]
    {
        echo "# Written by scripts/tryton.sh; rewritten on every start."
        conf_body
        printf '\n[web]\nlisten = 127.0.0.1:%s\n' "${1:-0}"
    } >"$CONF"
}

# ------------------------------------------------------------ 2. template ---
template_stamp() {
    {
        cat "$SEED"
        printf '%s' "$REQUIREMENTS"
        echo "${MODULES[*]}"
        date +%Y
    } | sha
}

ensure_template() {
    local stamp comment build
    stamp="$(template_stamp)"
    comment="$(template_comment)"
    if [[ -n "$comment" && "$(comment_field "$comment" stamp)" == "$stamp" ]]; then
        return 0
    fi
    build="${TPL}__build"
    say "building the Tryton template database $TPL (about 2-3 minutes)"
    local started=$SECONDS
    write_conf
    if db_exists "$build"; then
        pg "ALTER DATABASE {} IS_TEMPLATE false" "$build" >/dev/null
        pg "DROP DATABASE {} WITH (FORCE)" "$build" >/dev/null
    fi
    pg "CREATE DATABASE {} TEMPLATE template0 ENCODING 'UTF8'" "$build" >/dev/null
    # Hidden from trytond's database listing (see the top) while it is built.
    pg "ALTER DATABASE {} IS_TEMPLATE true" "$build" >/dev/null
    local passfile="$CACHE/admin.pass"
    echo "admin-$(date +%s%N | sha)" >"$passfile"
    say "  trytond-admin: creating tables and activating ${MODULES[*]}"
    if ! TRYTONPASSFILE="$passfile" "$VENV/bin/trytond-admin" -c "$CONF" -d "$build" \
        -u "${MODULES[@]}" --activate-dependencies --email admin@example.com \
        </dev/null >"$CACHE/build-admin.log" 2>&1; then
        tail -n 30 "$CACHE/build-admin.log" >&2
        die "trytond-admin failed on $build; full log: $CACHE/build-admin.log"
    fi
    rm -f "$passfile"
    say "  seed.py: company, chart, products, stock, sales, REST key ($((SECONDS - started)) s so far)"
    if ! "$PY" "$SEED" "$build" "$CONF" >"$CACHE/build-seed.json" 2>"$CACHE/build-seed.log"; then
        tail -n 30 "$CACHE/build-seed.log" >&2
        die "scripts/tryton/seed.py failed on $build; full log: $CACHE/build-seed.log"
    fi
    local summary
    summary="$(tail -n 1 "$CACHE/build-seed.json")"
    comment="$("$PY" -c '
import json, sys
stamp, summary, name = sys.argv[1:]
summary = json.loads(summary)
summary["database"] = name
print(json.dumps({"stamp": stamp, "summary": summary}))
' "$stamp" "$summary" "$TPL")" ||
        die "seed.py did not end with a JSON summary (see $CACHE/build-seed.json)"
    pg "COMMENT ON DATABASE {} IS {lit}" "$build" "$comment" >/dev/null
    if db_exists "$TPL"; then
        say "  replacing the old $TPL"
        pg "ALTER DATABASE {} IS_TEMPLATE false" "$TPL" >/dev/null
        pg "DROP DATABASE {} WITH (FORCE)" "$TPL" >/dev/null
    fi
    pg "ALTER DATABASE {} RENAME TO {}" "$build" "$TPL" >/dev/null
    say "template $TPL ready ($((SECONDS - started)) s)"
}

# ---------------------------------------------------------------- 3. server ---
server_pid() { # prints the pid if the recorded trytond process is alive
    [[ -f "$PIDFILE" ]] || return 1
    local pid
    pid="$(cat "$PIDFILE")"
    [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null &&
        grep -q trytond "/proc/$pid/cmdline" 2>/dev/null && echo "$pid"
}

answers() { # answers PORT: any HTTP answer from trytond counts
    "$PY" - "$1" <<'EOF'
import sys, urllib.request, urllib.error
try:
    urllib.request.urlopen(f'http://127.0.0.1:{sys.argv[1]}/', timeout=3)
except urllib.error.HTTPError:
    pass
except Exception:
    sys.exit(1)
EOF
}

recorded_port() { sed -n 's/^port=//p' "$CACHE/trytond.run" 2>/dev/null; }
recorded_stamp() { sed -n 's/^stamp=//p' "$CACHE/trytond.run" 2>/dev/null; }
server_stamp() { { cat "$CACHE/venv.stamp"; conf_body; } | sha; }

stop_server() {
    local pid
    pid="$(server_pid)" || {
        rm -f "$PIDFILE" "$CACHE/trytond.run"
        return 0
    }
    say "stopping trytond (pid $pid)"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        say "trytond $pid did not stop on SIGTERM; sending SIGKILL"
        kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$PIDFILE" "$CACHE/trytond.run"
}

ensure_server() {
    local pid port stamp
    stamp="$(server_stamp)"
    if pid="$(server_pid)"; then
        port="$(recorded_port)"
        if [[ -n "$port" && "$(recorded_stamp)" == "$stamp" ]] && answers "$port"; then
            PORT="$port"
            return 0
        fi
        say "trytond $pid is stale or not answering; restarting it"
        stop_server
    fi
    port="$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
    write_conf "$port"
    : >"$LOGFILE"
    # setsid: the server outlives the shell (and the test run) that started
    # it; 9>&-: it must not inherit (and so hold) the lock of `up`.
    setsid "$VENV/bin/trytond" -c "$CONF" -v >>"$LOGFILE" 2>&1 </dev/null 9>&- &
    pid=$!
    echo "$pid" >"$PIDFILE"
    printf 'port=%s\nstamp=%s\n' "$port" "$stamp" >"$CACHE/trytond.run"
    for _ in $(seq 1 150); do
        if ! kill -0 "$pid" 2>/dev/null; then
            tail -n 30 "$LOGFILE" >&2
            rm -f "$PIDFILE" "$CACHE/trytond.run"
            die "trytond exited at start; log: $LOGFILE"
        fi
        if answers "$port"; then
            PORT="$port"
            say "trytond (pid $pid) answers on http://127.0.0.1:$port"
            return 0
        fi
        sleep 0.2
    done
    tail -n 30 "$LOGFILE" >&2
    die "trytond (pid $pid) did not answer on 127.0.0.1:$port within 30 s; log: $LOGFILE"
}

# ------------------------------------------------------------------- 4. env ---
write_env() {
    local comment key
    comment="$(template_comment)"
    comment_field "$comment" summary >"$SEED_JSON"
    key="$("$PY" -c 'import json, sys; print(json.load(open(sys.argv[1]))["rest_key"])' "$SEED_JSON")" ||
        die "no REST key in the template's summary; rebuild with: TRYTON_REBUILD=1 scripts/tryton.sh up"
    {
        echo "# Written by scripts/tryton.sh up; source it."
        printf 'export TRYTON_URL=%q\n' "http://127.0.0.1:$PORT"
        printf 'export TRYTON_TEMPLATE_DB=%q\n' "$TPL"
        printf 'export TRYTON_PG_URL=%q\n' "$PG_URL"
        printf 'export TRYTON_API_KEY=%q\n' "$key"
        printf 'export TRYTON_SEED_JSON=%q\n' "$SEED_JSON"
    } >"$ENVFILE.tmp"
    mv "$ENVFILE.tmp" "$ENVFILE"
}

# ------------------------------------------------------- clones by hand ---
warm_up() { # warm_up DB: the one request that loads the clone's pool
    "$PY" - "$TRYTON_URL" "$1" "$TRYTON_API_KEY" <<'EOF'
import sys, urllib.request, urllib.error
url, db, key = sys.argv[1:]
req = urllib.request.Request(f'{url}/{db}/rest/model/res.user?f=id&s=1',
    headers={'Authorization': f'Bearer {key}'})
try:
    with urllib.request.urlopen(req, timeout=120) as r:
        r.read()
except urllib.error.HTTPError as e:
    sys.exit(f'scripts/tryton.sh: ERROR: warm-up of {db} answered {e.code}')
except OSError as e:
    sys.exit(f'scripts/tryton.sh: ERROR: warm-up of {db} failed: {e}')
EOF
}

load_env() {
    [[ -f "$ENVFILE" ]] || die "no $ENVFILE yet; run scripts/tryton.sh up"
    # shellcheck disable=SC1090
    source "$ENVFILE"
}

# ------------------------------------------------------------------- main ---
cmd="${1:-}"
case "$cmd" in
up)
    mkdir -p "$CACHE"
    exec 9>"$CACHE/.lock"
    flock 9 # one `up` at a time (parallel test binaries may all call it)
    ensure_venv
    check_postgres
    if [[ "${TRYTON_REBUILD:-0}" == 1 ]] && db_exists "$TPL"; then
        say "TRYTON_REBUILD=1: forgetting the template stamp"
        pg "COMMENT ON DATABASE {} IS NULL" "$TPL" >/dev/null
    fi
    ensure_template
    ensure_server
    write_env
    ;;
down)
    mkdir -p "$CACHE"
    exec 9>"$CACHE/.lock"
    flock 9
    stop_server
    rm -f "$ENVFILE"
    ;;
clone)
    name="${2:?usage: scripts/tryton.sh clone NAME}"
    load_env
    [[ "$name" != "$TPL" ]] || die "refusing to clone the template onto itself"
    pg "CREATE DATABASE {} TEMPLATE {}" "$name" "$TPL" >/dev/null
    warm_up "$name"
    echo "$TRYTON_URL/$name/rest/"
    ;;
drop)
    name="${2:?usage: scripts/tryton.sh drop NAME}"
    [[ "$name" != "$TPL" ]] || die "refusing to drop the template (it is rebuilt by up when stale)"
    [[ -x "$PY" ]] || die "no venv yet; run scripts/tryton.sh up"
    pg "DROP DATABASE IF EXISTS {} WITH (FORCE)" "$name" >/dev/null
    ;;
env)
    [[ -f "$ENVFILE" ]] || die "no $ENVFILE yet; run scripts/tryton.sh up"
    cat "$ENVFILE"
    ;;
status)
    ok=0
    if [[ -x "$PY" && -f "$CACHE/venv.stamp" ]]; then
        echo "venv:     $VENV ($("$PY" -c 'import trytond; print("trytond", trytond.__version__)'))"
    else
        echo "venv:     missing"
        ok=1
    fi
    if [[ -x "$PY" ]] && pg "SELECT 1" >/dev/null 2>&1; then
        if comment="$(template_comment)" && [[ -n "$comment" ]]; then
            if [[ "$(comment_field "$comment" stamp)" == "$(template_stamp)" ]]; then
                echo "template: $TPL (current)"
            else
                echo "template: $TPL (stale: up will rebuild it)"
            fi
        else
            echo "template: missing"
            ok=1
        fi
    else
        echo "template: unknown (PostgreSQL at $PG_URL not reachable)"
        ok=1
    fi
    if pid="$(server_pid)" && port="$(recorded_port)" && answers "$port"; then
        echo "trytond:  pid $pid, http://127.0.0.1:$port"
    else
        echo "trytond:  not running"
        ok=1
    fi
    exit "$ok"
    ;;
*)
    echo "usage: scripts/tryton.sh up|down|env|status|clone NAME|drop NAME" >&2
    exit 2
    ;;
esac
