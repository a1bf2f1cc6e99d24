# shellcheck shell=bash
# `scripts/bench incremental`: an incremental snapshot of a large table while streaming goes on.
#
# A table of INCR_BENCH_ROWS rows (default 1,000,000; id, an int, a text, a timestamptz) is
# captured by a running reader (release build, slot created without an initial snapshot) while a
# writer commits small transactions of profiles (INCR_BENCH_WRITE_TPS, default 50 a second, 5 rows
# each); `cdc-reader snapshot public.bench_incr` requests the snapshot. The figure is the rows
# the snapshot published per second, from the request to its completion recorded in cdc_signals
# (after the broker acknowledged the last chunk and the slot was confirmed past it), with the
# reader's peak RSS. The writer's changes keep streaming meanwhile (their count is reported).
# The last line is `incremental_snapshot_rows_per_second=<n>`.
#
# Sourced by scripts/bench after scripts/lib/stack.sh.

bench_incremental() {
    local rows=${INCR_BENCH_ROWS:-1000000} tps=${INCR_BENCH_WRITE_TPS:-50}
    # Ports of its own (scripts/check-durable-broker uses 55439/59099).
    STACK_NAME=bench-incr PG_PORT=${BENCH_INCR_PG_PORT:-55441} KAFKA_PORT=${BENCH_INCR_KAFKA_PORT:-59101}
    bench_stack_up
    INCR_READER_PID="" INCR_WRITER_PID=""
    # `|| true`: under `set -e` a failing kill (nothing left to kill) would end the trap
    # before the stack is stopped.
    trap 'kill ${INCR_WRITER_PID:-} ${INCR_READER_PID:-} 2>/dev/null || true; stack_down' EXIT
    export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$REPO_ROOT/target}"
    log "building the release reader"
    cargo build --quiet --release --locked -p cdc-reader
    local reader="$CARGO_TARGET_DIR/release/cdc-reader" work="$STACK_DIR/bench-incr"
    mkdir -p "$work"
    local admin_url=$DATABASE_URL db_url=${DATABASE_URL%/*}/bench_incr
    psql "$admin_url" -qAtc "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = 'bench_incr'" >/dev/null
    psql "$admin_url" -qAtc "DROP DATABASE IF EXISTS bench_incr WITH (FORCE)" >/dev/null
    psql "$admin_url" -qAtc "CREATE DATABASE bench_incr" >/dev/null
    DATABASE_URL=$db_url "$reader" --log warn migrate
    log "creating a table of $rows rows"
    psql "$db_url" -qAtc "CREATE TABLE bench_incr (id bigint PRIMARY KEY, v int NOT NULL, note text, at timestamptz NOT NULL)"
    local done_rows=0 step=200000
    while [ "$done_rows" -lt "$rows" ]; do
        local chunk=$(( rows - done_rows < step ? rows - done_rows : step ))
        psql "$db_url" -qAtc "INSERT INTO bench_incr SELECT g, g % 1000, 'row number ' || g, timestamptz '2020-01-01 00:00:00+00' + g * interval '1 second' FROM generate_series($done_rows + 1, $done_rows + $chunk) g"
        done_rows=$(( done_rows + chunk ))
        log "  $done_rows / $rows rows"
    done
    psql "$db_url" -qAtc "VACUUM ANALYZE bench_incr" >/dev/null

    log "starting the reader (slot without initial snapshot) and a writer at $tps transactions/s"
    local tables=public.saju_profiles,public.bench_incr
    DATABASE_URL="$db_url" /usr/bin/time -v -o "$work/time.txt" "$reader" --kafka-brokers "$KAFKA_BROKERS" \
        --slot bench_incr --tables "$tables" --snapshot never --status-interval 1s --heartbeat-interval 0 \
        --topic-prefix benchincr --metrics-addr 127.0.0.1:0 --log-format json --log info 2>"$work/reader.log" &
    INCR_READER_PID=$!
    local waited=0
    until [ "$(psql "$db_url" -qAtc "SELECT count(*) FROM pg_stat_replication r JOIN pg_replication_slots s ON s.active_pid = r.pid WHERE s.slot_name = 'bench_incr' AND r.state = 'streaming'")" = 1 ]; do
        sleep 0.5; waited=$(( waited + 1 ))
        [ "$waited" -lt 120 ] || { tail -n 20 "$work/reader.log" >&2; die "the reader did not start streaming"; }
    done
    (
        while :; do
            psql "$db_url" -qAtc "INSERT INTO saju_profiles (name, gender, birth_date) SELECT 'w' || g, 'M', now() FROM generate_series(1, 5) g" >/dev/null 2>&1
            sleep "$(echo "1 / $tps" | bc -l)"
        done
    ) &
    INCR_WRITER_PID=$!
    local before_profiles
    before_profiles=$(psql "$db_url" -qAtc "SELECT count(*) FROM saju_profiles")
    log "requesting the incremental snapshot"
    DATABASE_URL="$db_url" "$reader" --log warn --slot bench_incr --tables "$tables" snapshot public.bench_incr >/dev/null
    local state="" last=""
    while :; do
        state=$(psql "$db_url" -qAtc "SELECT rows_sent, finished_at IS NOT NULL, COALESCE(error, '') FROM cdc_signals WHERE slot = 'bench_incr' ORDER BY id DESC LIMIT 1")
        [ "$state" = "$last" ] || log "  snapshot progress (rows recorded, finished, error): $state"
        last=$state
        case "$state" in *"|t|"*) break ;; esac
        kill -0 "$INCR_READER_PID" 2>/dev/null || { tail -n 20 "$work/reader.log" >&2; die "the reader exited"; }
        sleep 1
    done
    kill "$INCR_WRITER_PID" 2>/dev/null; wait "$INCR_WRITER_PID" 2>/dev/null || true; INCR_WRITER_PID=""
    local sent seconds error streamed
    IFS='|' read -r sent seconds error < <(psql "$db_url" -qAtc "SELECT rows_sent, EXTRACT(EPOCH FROM finished_at - created_at), COALESCE(error, '') FROM cdc_signals WHERE slot = 'bench_incr' ORDER BY id DESC LIMIT 1")
    [ -z "$error" ] || die "the snapshot failed: $error"
    streamed=$(( $(psql "$db_url" -qAtc "SELECT count(*) FROM saju_profiles") - before_profiles ))
    # The reader itself, not /usr/bin/time (which reports its peak RSS when it exits).
    pkill -TERM -P "$INCR_READER_PID"; wait "$INCR_READER_PID" 2>/dev/null || true; INCR_READER_PID=""
    local rss_kb rps
    rss_kb=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$work/time.txt")
    rps=$(echo "$sent / $seconds" | bc -l)
    printf 'incremental snapshot: %d rows in %.1f s = %.0f rows/s, while %d profile rows streamed; reader peak RSS %d MiB (--incremental-chunk-rows %s)\n' \
        "$sent" "$seconds" "$rps" "$streamed" $(( rss_kb / 1024 )) "${CDC_INCREMENTAL_CHUNK_ROWS:-10000}"
    printf 'incremental_snapshot_peak_rss_mib=%d\n' $(( rss_kb / 1024 ))
    printf 'incremental_snapshot_rows_per_second=%.0f\n' "$rps"
}
