# shellcheck shell=bash
# `scripts/bench cdc`: how fast the CDC reader turns WAL into broker-acknowledged records,
# against how fast pg_recvlogical merely drains the same WAL with the same wal2json options.
#
# Both slots are created before the rows are written, so both read exactly the same WAL:
# CDC_BENCH_ROWS profile-like rows (default 200,000) in transactions of CDC_BENCH_TX_ROWS
# (default 10,000). The reader runs with --stop-at-lsn at the end of that WAL and is timed from
# process start to its exit (everything acknowledged by the broker and confirmed to the slot);
# pg_recvlogical with --endpos at the same LSN, writing to /dev/null. Peak RSS of the reader
# comes from /usr/bin/time. CDC_BENCH_ROUNDS rounds (default 3) are run, each on WAL of its
# own; the figure is the median of the rounds' ratios (one round on this 2-core machine varies by
# ±10 %). The last line is `cdc_vs_pg_recvlogical_ratio=<reader/recvlogical>`.
#
# CDC_BENCH_BIG_TX=1000000 additionally streams one transaction of that many rows and reports
# the reader's peak RSS (bounded memory: the in-flight window, not the transaction size).
#
# Sourced by scripts/bench after scripts/lib/stack.sh.

bench_cdc() {
    local rows=${CDC_BENCH_ROWS:-200000} tx_rows=${CDC_BENCH_TX_ROWS:-10000}
    STACK_NAME=bench-cdc PG_PORT=${BENCH_CDC_PG_PORT:-55438} KAFKA_PORT=${BENCH_CDC_KAFKA_PORT:-59098}
    bench_stack_up
    trap 'stack_down' EXIT
    export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$REPO_ROOT/target}"
    log "building the release reader"
    cargo build --quiet --release --locked -p cdc-reader
    local reader="$CARGO_TARGET_DIR/release/cdc-reader" work="$STACK_DIR/bench-cdc"
    mkdir -p "$work"

    local admin_url=$DATABASE_URL db_url=${DATABASE_URL%/*}/bench_cdc
    psql "$admin_url" -qAtc "DROP DATABASE IF EXISTS bench_cdc WITH (FORCE)" >/dev/null
    # Slots of an earlier run pin WAL and hold the database; drop them first.
    psql "$admin_url" -qAtc "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name LIKE 'bench_cdc_%'" >/dev/null
    psql "$admin_url" -qAtc "CREATE DATABASE bench_cdc" >/dev/null
    DATABASE_URL=$db_url "$reader" --log warn migrate
    local plugin_opts=(-o format-version=2 -o include-xids=1 -o include-timestamp=1 -o include-lsn=1
        -o include-transaction=1 -o include-pk=1 -o include-types=0 -o include-typmod=0
        -o add-tables=public.saju_profiles,public.image_assets,public.cdc_signals)

    run_round() {
        # $1: label, $2: rows, $3: rows per transaction. Sets ROUND_* results.
        local label=$1 n=$2 per=$3 suffix=$RANDOM
        local slot_reader="bench_cdc_reader_$suffix" slot_recv="bench_cdc_recv_$suffix"
        psql "$db_url" -qAtc "SELECT pg_create_logical_replication_slot('$slot_reader', 'wal2json'), pg_create_logical_replication_slot('$slot_recv', 'wal2json')" >/dev/null
        log "$label: inserting $n profile rows ($per per transaction)"
        local done_rows=0
        while [ "$done_rows" -lt "$n" ]; do
            local chunk=$(( n - done_rows < per ? n - done_rows : per ))
            psql "$db_url" -qAtc "INSERT INTO saju_profiles (name, gender, birth_date, is_solar, year_gan, year_ji, month_gan, month_ji, day_gan, day_ji, hour_gan, hour_ji)
                SELECT 'bench profile ' || g, CASE WHEN g % 2 = 0 THEN 'M' ELSE 'F' END,
                       timestamptz '1950-01-01 00:00:00+09' + (g * interval '97 minutes'), g % 7 <> 0,
                       g % 10, 10 + g % 12, (g + 3) % 10, 10 + (g + 5) % 12, (g + 7) % 10, 10 + (g + 1) % 12, (g + 2) % 10, 10 + (g + 9) % 12
                FROM generate_series($done_rows + 1, $done_rows + $chunk) g" >/dev/null
            done_rows=$(( done_rows + chunk ))
        done
        local end_lsn
        end_lsn=$(psql "$db_url" -qAtc "SELECT pg_current_wal_lsn()")
        log "$label: WAL written up to $end_lsn"

        log "$label: cdc-reader from the slot to broker-acknowledged records"
        local t0 t1 status=0
        t0=$(date +%s.%N)
        DATABASE_URL="$db_url" /usr/bin/time -v -o "$work/time-$label.txt" "$reader" --kafka-brokers "$KAFKA_BROKERS" \
            --slot "$slot_reader" --snapshot never --stop-at-lsn "$end_lsn" --heartbeat-interval 0 \
            --topic-prefix "bench$suffix" --metrics-addr 127.0.0.1:0 --log-format json --log warn,cdc_reader::replication=info \
            2>"$work/reader-$label.log" || status=$?
        t1=$(date +%s.%N)
        [ "$status" -eq 0 ] || { tail -n 20 "$work/reader-$label.log" >&2; die "cdc-reader exited with $status"; }
        ROUND_READER_S=$(echo "$t1 - $t0" | bc -l)
        ROUND_RSS_KB=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$work/time-$label.txt")
        ROUND_EVENTS=$(grep -o '"events":[0-9]*' "$work/reader-$label.log" | tail -n 1 | cut -d: -f2)
        [ "${ROUND_EVENTS:-0}" -ge "$n" ] || die "the reader published ${ROUND_EVENTS:-no} events, expected $n"
        ROUND_CONFIRMED=$(psql "$db_url" -qAtc "SELECT confirmed_flush_lsn >= '$end_lsn' FROM pg_replication_slots WHERE slot_name = '$slot_reader'")

        log "$label: pg_recvlogical draining the same WAL"
        t0=$(date +%s.%N)
        "$PG_BINDIR/pg_recvlogical" -d "$db_url" -S "$slot_recv" --start -E "$end_lsn" --no-loop -f /dev/null "${plugin_opts[@]}"
        t1=$(date +%s.%N)
        ROUND_RECV_S=$(echo "$t1 - $t0" | bc -l)
        psql "$db_url" -qAtc "SELECT pg_drop_replication_slot('$slot_reader'), pg_drop_replication_slot('$slot_recv')" >/dev/null
    }

    local rounds=${CDC_BENCH_ROUNDS:-3} round ratios=() peak_kb=0
    for round in $(seq 1 "$rounds"); do
        run_round "main-$round" "$rows" "$tx_rows"
        local reader_rps recv_rps
        reader_rps=$(echo "$rows / $ROUND_READER_S" | bc -l)
        recv_rps=$(echo "$rows / $ROUND_RECV_S" | bc -l)
        ratios+=("$(echo "$reader_rps / $recv_rps" | bc -l)")
        [ "$ROUND_RSS_KB" -le "$peak_kb" ] || peak_kb=$ROUND_RSS_KB
        printf 'round %d/%d: cdc-reader %d rows (%d events acknowledged) in %.2f s = %.0f rows/s (WAL to acknowledged), peak RSS %d MiB, slot confirmed past the end: %s; pg_recvlogical %.2f s = %.0f rows/s; ratio %.2f\n' \
            "$round" "$rounds" "$rows" "$ROUND_EVENTS" "$ROUND_READER_S" "$reader_rps" $(( ROUND_RSS_KB / 1024 )) "$ROUND_CONFIRMED" \
            "$ROUND_RECV_S" "$recv_rps" "${ratios[-1]}"
    done
    local ratio
    ratio=$(printf '%s\n' "${ratios[@]}" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }')
    printf 'cdc-reader peak RSS over the rounds: %d MiB\n' $(( peak_kb / 1024 ))

    if [ -n "${CDC_BENCH_BIG_TX:-}" ]; then
        local main_rss=$peak_kb
        run_round big "$CDC_BENCH_BIG_TX" "$CDC_BENCH_BIG_TX"
        printf 'one transaction of %d rows: cdc-reader %.2f s, peak RSS %d MiB (vs %d MiB above); pg_recvlogical %.2f s\n' \
            "$CDC_BENCH_BIG_TX" "$ROUND_READER_S" $(( ROUND_RSS_KB / 1024 )) $(( main_rss / 1024 )) "$ROUND_RECV_S"
    fi
    printf 'cdc_vs_pg_recvlogical_ratio=%.2f\n' "$ratio"
}
