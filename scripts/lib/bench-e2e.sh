# shellcheck shell=bash
# scripts/bench e2e: the whole pipeline for profiles, measured against the database's own limit.
#
# 1. Throughput: N profiles (default 100,000) are inserted; rows/s from the first INSERT's
#    commit until every result is visible. In the same run, one SQL UPDATE writes the same
#    results to the same rows (the database's own limit): the ratio of the two is reported.
# 2. Latency: a steady 1,000 rows/s for 60 s (pgbench, 10-row transactions at 100/s); per-row
#    latency from the INSERT's transaction (created_at) to its write-back's (analyzed_at), as
#    the database recorded them (both are the transactions' start times).
#
#    The broker's own produce → consume latency is measured in the same run as a baseline
#    (broker_hop_p99_ms): every row crosses the broker once on its way to the analyzer.
#
# 3. Where the time goes (the cost breakdown in the README): CPU seconds of every process
#    during phase 1 by role (scripts/lib/cpu_by_role.py: the walsender decoding, the
#    analyzer's write-back connections, the reader, the broker, the analyzer, PostgreSQL's
#    background work), the echo (write-backs decoded, published and skipped), and the baseline
#    UPDATE again without the indexes on the analysis (index maintenance).
#
# Last lines: e2e_vs_sql_update_ratio=<x> and e2e_p99_ms=<y>.

bench_e2e() {
    local rows=${E2E_ROWS:-100000} rate_seconds=${E2E_STEADY_SECONDS:-60} without_indexes=${BENCH_WITHOUT_ANALYSIS_INDEXES:-0}
    bench_setup
    # The indexes on the analysis as the migrations made them (the facets GIN, the five score
    # btrees), to drop and build them again by kind for the baselines.
    local facets_def scores_def scores
    facets_def=$(psql -Atq "$DATABASE_URL" -c "SELECT pg_get_indexdef('idx_saju_profiles_analysis_facets'::regclass)")
    IFS='|' read -r scores scores_def < <(psql -Atq "$DATABASE_URL" -c "SELECT string_agg(indexrelid::regclass::text, ', '),
        string_agg(pg_get_indexdef(indexrelid), '; ') FROM pg_index
        WHERE indexrelid::regclass::text LIKE 'idx_saju_profiles_score_%'")
    if [ "$without_indexes" = 1 ]; then
        log "BENCH_WITHOUT_ANALYSIS_INDEXES=1: the pipeline runs without the indexes on the analysis (the documented searches are not index-served in this run); they are built again for the baseline UPDATE"
        psql -q "$DATABASE_URL" -c "DROP INDEX idx_saju_profiles_analysis_facets, $scores"
    fi
    log "starting cdc-reader and analyzer (logs in $STACK_DIR/logs)"
    bench_start_reader
    bench_start_analyzer
    bench_wait_ready 9201 9202

    # Warm-up: one profile through the whole pipeline (group join, slot start).
    psql -q "$DATABASE_URL" -c "INSERT INTO saju_profiles (name, gender, birth_date) VALUES ('warm-up', 'M', now())"
    bench_wait_done "name = 'warm-up'" 1 120

    log "phase 1: inserting $rows profiles"
    local t0 t1 insert_done cpu_roles
    cpu_roles=("cdc-reader=$(cat "$STACK_DIR/workers/cdc-reader.pid")"
        "analyzer=$(cat "$STACK_DIR/workers/analyzer.pid")" "broker=$(cat "$STACK_DIR/tansu.pid")")
    python3 "$REPO_ROOT/scripts/lib/cpu_by_role.py" snapshot "$STACK_DIR/cpu-before.json" "$DATABASE_URL" "${cpu_roles[@]}"
    local events0 finished0
    events0=$(bench_metric 9201 'cdc_events_total')
    finished0=$(bench_analyzer_finished)
    t0=$(date +%s.%N)
    bench_insert_profiles "$rows" 10000
    insert_done=$(date +%s.%N)
    bench_wait_analyzed "name = 'bench'" "$rows" 600 $(( finished0 + rows ))
    t1=$BENCH_DONE_AT
    python3 "$REPO_ROOT/scripts/lib/cpu_by_role.py" snapshot "$STACK_DIR/cpu-after.json" "$DATABASE_URL" "${cpu_roles[@]}"
    log "where the CPU went during phase 1 ($(python3 -c "print(round(2 * ($t1 - $t0), 1))") CPU-seconds on 2 cores):"
    python3 "$REPO_ROOT/scripts/lib/cpu_by_role.py" diff "$STACK_DIR/cpu-before.json" "$STACK_DIR/cpu-after.json" "$rows" >&2
    local events1
    events1=$(bench_metric 9201 'cdc_events_total')
    log "echo: the reader published $(python3 -c "print(round(($events1 - $events0) / $rows, 2))") change events a profile (its insert, and the echo of its write-back unless it is left out: CDC_EXCLUDE_ORIGINS=${CDC_EXCLUDE_ORIGINS:-(unset)}); the analyzer skipped $(bench_metric 9202 'analyzer_skipped_total{reason="unchanged"}') write-backs as unchanged"
    local e2e_rate
    e2e_rate=$(python3 -c "print(round($rows / ($t1 - $t0)))")
    log "pipeline: $rows profiles analyzed in $(python3 -c "print(round($t1 - $t0, 2))") s ($e2e_rate rows/s; inserts took $(python3 -c "print(round($insert_done - $t0, 2))") s)"

    log "broker baseline: one message at a time through the broker alone"
    local hop
    hop=$(cd "$REPO_ROOT" && cargo run --quiet --release --locked -p shared --example broker_latency -- "$KAFKA_BROKERS" 200 2>/dev/null \
        | sed -n 's/^broker_hop_p99_ms=//p')
    log "broker alone: p99 ${hop} ms per produce → consume hop"

    log "phase 2: steady 1,000 rows/s for ${rate_seconds}s"
    local script="$STACK_DIR/steady.sql"
    cat >"$script" <<'SQL'
INSERT INTO saju_profiles (name, gender, birth_date)
SELECT 'steady', CASE WHEN random() < 0.5 THEN 'M' ELSE 'F' END,
       timestamptz '1900-01-02 00:00+09' + random() * interval '200 years'
FROM generate_series(1, 10);
SQL
    # The broker's CPU by 10 s of this phase (the stack's own broker only): Tansu's in-memory
    # engine lists every stored batch of a partition on each fetch, so its cost grows with
    # what the run has stored, and on 2 cores that shows in the latency.
    local broker_cpu="$STACK_DIR/broker-cpu.txt" cpu_sampler="" finished1
    finished1=$(bench_analyzer_finished)
    : >"$broker_cpu"
    if [ "$KAFKA_EXTERNAL" = 0 ] && [ -f "$STACK_DIR/tansu.pid" ]; then
        bench_cpu_every_10s "$(cat "$STACK_DIR/tansu.pid")" >"$broker_cpu" &
        cpu_sampler=$!
    fi
    # What PostgreSQL did meanwhile besides the pipeline's work: autovacuums of the table
    # (counted from its statistics) and checkpoints (from the server's log).
    local steady_t0 steady_t1 vacuums0 vacuums1
    vacuums0=$(bench_table_vacuums)
    steady_t0=$(date +%s.%N)
    "$PG_BINDIR/pgbench" -n -f "$script" -c 2 -j 2 --rate=100 -T "$rate_seconds" -P 10 "$DATABASE_URL" 2>&1 \
        | grep -E "^progress|tps|latency average" >&2 || true
    steady_t1=$(date +%s.%N)
    vacuums1=$(bench_table_vacuums)
    [ -z "$cpu_sampler" ] || kill "$cpu_sampler" 2>/dev/null || true
    local steady
    steady=$(psql -Atq "$DATABASE_URL" -c "SELECT count(*) FROM saju_profiles WHERE name = 'steady'")
    bench_wait_analyzed "name = 'steady'" "$steady" 300 $(( finished1 + steady ))
    local p50 p99 pmax
    read -r p50 p99 pmax < <(psql -Atq -F ' ' "$DATABASE_URL" -c "
        SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 1),
               round(percentile_cont(0.99) WITHIN GROUP (ORDER BY ms)::numeric, 1),
               round(max(ms)::numeric, 1)
        FROM (SELECT extract(epoch FROM analyzed_at - created_at) * 1000 AS ms
              FROM saju_profiles WHERE name = 'steady') l")
    log "steady: $steady rows; latency p50 ${p50} ms, p99 ${p99} ms, max ${pmax} ms"
    # Whether the tail is spread out or comes in bursts (a checkpoint, autovacuum, an index
    # merge): p99 and max of every 10 s of the steady phase.
    log "steady, by 10 s: $(psql -Atq "$DATABASE_URL" -c "
        SELECT string_agg(format('%s s: p99 %s, max %s ms', w * 10, p99, mx), '; ' ORDER BY w)
        FROM (SELECT w, round(percentile_cont(0.99) WITHIN GROUP (ORDER BY ms)::numeric) AS p99,
                     round(max(ms)::numeric) AS mx
              FROM (SELECT floor(extract(epoch FROM created_at - min(created_at) OVER ()) / 10)::int AS w,
                           extract(epoch FROM analyzed_at - created_at) * 1000 AS ms
                    FROM saju_profiles WHERE name = 'steady') l
              GROUP BY w) b")"
    [ ! -s "$broker_cpu" ] || log "steady, broker CPU by 10 s (% of one core): $(paste -sd, "$broker_cpu" | sed 's/,/, /g')"
    log "steady, PostgreSQL meanwhile (s from the phase's start): $(python3 "$REPO_ROOT/scripts/lib/checkpoints_during.py" "$STACK_DIR/postgres.log" "$steady_t0" "$steady_t1"); autovacuums of saju_profiles: at the start ${vacuums0#* } running, $(( ${vacuums1% *} - ${vacuums0% *} )) ended during the phase"

    bench_stop_workers
    log "baseline: one SQL UPDATE writing the same $rows results to the same rows"
    psql -q "$DATABASE_URL" -c "CREATE TABLE bench_results AS
        SELECT id, year_gan, year_ji, month_gan, month_ji, day_gan, day_ji, hour_gan, hour_ji,
               analysis_result, analysis_input FROM saju_profiles WHERE name = 'bench'"
    psql -q "$DATABASE_URL" -c "ANALYZE bench_results" -c "CHECKPOINT"
    if [ "$without_indexes" = 1 ]; then
        log "baseline: building the analysis indexes again (the baseline UPDATE is today's schema)"
        psql -q "$DATABASE_URL" -c "$facets_def" -c "$scores_def" -c "CHECKPOINT"
    fi
    local sql_rate
    sql_rate=$(bench_baseline_update "$rows")
    log "baseline: $sql_rate rows/s"
    log "baseline again without the indexes on analysis_result (facets GIN, the five scores)"
    psql -q "$DATABASE_URL" -c "DROP INDEX idx_saju_profiles_analysis_facets, $scores" \
        -c "VACUUM saju_profiles" -c "CHECKPOINT"
    local bare_rate
    bare_rate=$(bench_baseline_update "$rows")
    log "baseline without the analysis indexes: $bare_rate rows/s (index maintenance: $(python3 -c "print(round(100 * (1 - $sql_rate / $bare_rate)))") % of the UPDATE)"
    local scores_rate="" facets_rate=""
    if [ "${BENCH_INDEX_SPLIT:-0}" = 1 ]; then
        log "baseline with the five score indexes alone"
        psql -q "$DATABASE_URL" -c "$scores_def" -c "VACUUM saju_profiles" -c "CHECKPOINT"
        scores_rate=$(bench_baseline_update "$rows")
        log "baseline with the facets GIN alone"
        psql -q "$DATABASE_URL" -c "DROP INDEX $scores" -c "$facets_def" -c "VACUUM saju_profiles" -c "CHECKPOINT"
        facets_rate=$(bench_baseline_update "$rows")
        log "index maintenance a row, on one core: the five score indexes $(python3 -c "print(round(1e6 / $scores_rate - 1e6 / $bare_rate))") µs ($scores_rate rows/s), the facets GIN $(python3 -c "print(round(1e6 / $facets_rate - 1e6 / $bare_rate))") µs ($facets_rate rows/s), both $(python3 -c "print(round(1e6 / $sql_rate - 1e6 / $bare_rate))") µs"
    fi

    bench_drop_run

    echo "e2e_rows_per_second=$e2e_rate"
    echo "sql_update_rows_per_second=$sql_rate"
    echo "sql_update_without_analysis_indexes_rows_per_second=$bare_rate"
    [ -z "$scores_rate" ] || echo "sql_update_score_indexes_only_rows_per_second=$scores_rate"
    [ -z "$facets_rate" ] || echo "sql_update_facets_index_only_rows_per_second=$facets_rate"
    echo "e2e_p50_ms=$p50"
    echo "broker_hop_p99_ms=$hop"
    [ "$without_indexes" = 0 ] || echo "e2e_vs_sql_update_without_analysis_indexes_ratio=$(python3 -c "print(round($e2e_rate / $bare_rate, 3))")"
    echo "e2e_vs_sql_update_ratio=$(python3 -c "print(round($e2e_rate / $sql_rate, 3))")"
    echo "e2e_p99_ms=$p99"
}

# The stack, release binaries, and a fresh database and topic prefix for this run (so runs do
# not see each other): sets BENCH_BIN, BENCH_RUN_ID, BENCH_DB, BENCH_ADMIN_URL, DATABASE_URL.
bench_setup() {
    STACK_NAME=bench PG_PORT=${BENCH_PG_PORT:-55436} KAFKA_PORT=${BENCH_KAFKA_PORT:-59096}
    bench_stack_up
    # BENCH_KEEP_STACK=1 leaves PostgreSQL and the broker up (the run's database, the topics)
    # after the run, for a post-mortem; scripts/down stops them.
    trap 'bench_stop_workers; [ "${BENCH_KEEP_STACK:-0}" = 1 ] || stack_down' EXIT
    bench_warn_kept_slots

    log "building release binaries"
    (cd "$REPO_ROOT" && cargo build --release --quiet --bins --locked)
    BENCH_BIN="$REPO_ROOT/target/release"

    BENCH_RUN_ID="b$(date +%s)"
    BENCH_ADMIN_URL=$DATABASE_URL
    BENCH_DB="e2e_$BENCH_RUN_ID"
    psql -q "$BENCH_ADMIN_URL" -c "CREATE DATABASE $BENCH_DB" >/dev/null
    DATABASE_URL="${BENCH_ADMIN_URL%/*}/$BENCH_DB"
    export DATABASE_URL KAFKA_BROKERS TOPIC_PREFIX="$BENCH_RUN_ID" LOG_FORMAT=json
    "$BENCH_BIN/analyzer" migrate >/dev/null 2>&1
    "$BENCH_BIN/analyzer" create-topics >/dev/null 2>&1
    mkdir -p "$STACK_DIR/logs" "$STACK_DIR/workers"
}

bench_start_reader() {
    # BENCH_READER_KAFKA_PROPERTIES: librdkafka properties of the reader alone.
    local props=()
    [ -z "${BENCH_READER_KAFKA_PROPERTIES:-}" ] || props=(env "KAFKA_PROPERTIES=$BENCH_READER_KAFKA_PROPERTIES")
    CDC_SLOT="bench_$BENCH_RUN_ID" CDC_STATUS_INTERVAL=1s METRICS_ADDR=127.0.0.1:9201 \
        "${props[@]}" "$BENCH_BIN/cdc-reader" >>"$STACK_DIR/logs/cdc-reader.log" 2>&1 &
    echo $! >"$STACK_DIR/workers/cdc-reader.pid"
}

bench_start_analyzer() {
    # A reader leaving the write-backs' echo out needs an analyzer that marks them.
    local mark=false
    [ -n "${CDC_EXCLUDE_ORIGINS:-}" ] && mark=true
    ANALYZER_MARK_WRITE_BACKS=${ANALYZER_MARK_WRITE_BACKS:-$mark} \
    KAFKA_MAX_POLL_INTERVAL=7s KAFKA_SESSION_TIMEOUT=6s METRICS_ADDR=127.0.0.1:9202 \
        ${BENCH_ANALYZER_WRAPPER:-} "$BENCH_BIN/analyzer" >>"$STACK_DIR/logs/analyzer.log" 2>&1 &
    echo $! >"$STACK_DIR/workers/analyzer.pid"
}

# Slots of earlier runs kept with BENCH_KEEP_STACK=1 pin the WAL of every run after them: on
# this stack's cluster they once held 41 GB and filled the disk mid-run. Says which, and how much.
bench_warn_kept_slots() {
    [ "$PG_EXTERNAL" = 0 ] || return 0
    local kept
    kept=$(psql -Atq "$DATABASE_URL" -c "
        SELECT string_agg(format('%s (%s)', slot_name,
                   pg_size_pretty(pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn))), ', ')
        FROM pg_replication_slots WHERE starts_with(slot_name, 'bench_') AND NOT active") || return 0
    [ -z "$kept" ] || log "warning: slots of earlier kept runs pin WAL: $kept. Drop them (and their e2e_* databases) on this cluster (127.0.0.1:$PG_PORT, user postgres, password in ${STACK_DIR#"$REPO_ROOT"/}/pg-password): SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE starts_with(slot_name, 'bench_') AND NOT active"
}

# Drops the run's slot and database, unless BENCH_KEEP_STACK=1.
bench_drop_run() {
    if [ "${BENCH_KEEP_STACK:-0}" = 1 ]; then
        log "kept: database $BENCH_DB (and its slot bench_$BENCH_RUN_ID, which pins WAL until dropped)"
    else
        # The slot of this run would pin WAL: drop it with the database.
        psql -q "$BENCH_ADMIN_URL" -c "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = 'bench_$BENCH_RUN_ID'" >/dev/null || true
        psql -q "$BENCH_ADMIN_URL" -c "DROP DATABASE $BENCH_DB WITH (FORCE)" >/dev/null || true
    fi
}

# scripts/bench backlog: N profiles (BACKLOG_ROWS, default 1,000,000) inserted and published
# while the analyzer is stopped, then drained by one analyzer: rows/s from its start until
# every result is written, and its peak resident memory (VmHWM).
bench_backlog() {
    local rows=${BACKLOG_ROWS:-1000000}
    bench_setup
    log "starting cdc-reader only (logs in $STACK_DIR/logs)"
    bench_start_reader
    bench_wait_ready 9201
    log "inserting $rows profiles while the analyzer is stopped"
    bench_insert_profiles "$rows" 50000
    log "waiting for the reader to publish them"
    local published=0 started
    started=$(date +%s)
    while [ "$published" -lt "$rows" ]; do
        sleep 1
        published=$(bench_metric 9201 'cdc_events_total')
        log "  published $published / $rows"
        [ $(( $(date +%s) - started )) -lt 900 ] || die "the reader published only $published of $rows events"
    done
    log "starting the analyzer on a backlog of $rows profiles"
    local t0 t1 pid hwm=0 now
    t0=$(date +%s.%N)
    bench_start_analyzer
    pid=$(cat "$STACK_DIR/workers/analyzer.pid")
    # Its peak memory is read while it runs (VmHWM of a process that has exited is gone).
    (
        while kill -0 "$pid" 2>/dev/null; do
            now=$(awk '/^VmHWM:/ { print $2 }' "/proc/$pid/status" 2>/dev/null || true)
            [ -n "$now" ] && echo "$now" >"$STACK_DIR/analyzer-hwm-kb"
            sleep 0.5
        done
    ) &
    local watcher=$!
    bench_wait_analyzed "name = 'bench'" "$rows" 3600 "$rows"
    t1=$BENCH_DONE_AT
    hwm=$(cat "$STACK_DIR/analyzer-hwm-kb" 2>/dev/null || echo 0)
    bench_stop_workers
    wait "$watcher" 2>/dev/null || true
    local rate
    rate=$(python3 -c "print(round($rows / ($t1 - $t0)))")
    log "backlog: $rows profiles drained in $(python3 -c "print(round($t1 - $t0, 1))") s ($rate rows/s), analyzer peak RSS $(( hwm / 1024 )) MiB"
    bench_drop_run
    echo "backlog_rows=$rows"
    echo "backlog_analyzer_peak_rss_bytes=$(( hwm * 1024 ))"
    echo "backlog_rows_per_second=$rate"
}

# Inserts `rows` bench profiles, `chunk` rows a statement, showing progress.
bench_insert_profiles() {
    local rows=$1 chunk=$2 inserted=0 n
    while [ "$inserted" -lt "$rows" ]; do
        n=$(( rows - inserted < chunk ? rows - inserted : chunk ))
        psql -q "$DATABASE_URL" -c "INSERT INTO saju_profiles (name, gender, birth_date)
            SELECT 'bench', CASE WHEN random() < 0.5 THEN 'M' ELSE 'F' END,
                   timestamptz '1900-01-02 00:00+09' + random() * interval '200 years'
            FROM generate_series(1, $n)"
        inserted=$(( inserted + n ))
        log "  inserted $inserted / $rows"
    done
}

# Prints every 10 s the CPU a process used meanwhile, in % of one core, until killed.
bench_cpu_every_10s() {
    local pid=$1 hz before after
    hz=$(getconf CLK_TCK)
    before=$(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null) || return 0
    while sleep 10; do
        after=$(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null) || return 0
        echo $(((after - before) * 100 / (hz * 10)))
        before=$after
    done
}

# Autovacuums of saju_profiles: "<ended so far> <running now>".
bench_table_vacuums() {
    psql -Atq -F ' ' "$DATABASE_URL" -c "SELECT autovacuum_count,
            (SELECT count(*) FROM pg_stat_progress_vacuum WHERE relid = 'saju_profiles'::regclass)
        FROM pg_stat_user_tables WHERE relid = 'saju_profiles'::regclass"
}

# The baseline: one SQL UPDATE writing bench_results to the same rows; prints its rows/s.
bench_baseline_update() {
    local s0 s1
    s0=$(date +%s.%N)
    psql -q "$DATABASE_URL" -c "UPDATE saju_profiles p SET
            year_gan = r.year_gan, year_ji = r.year_ji, month_gan = r.month_gan, month_ji = r.month_ji,
            day_gan = r.day_gan, day_ji = r.day_ji, hour_gan = r.hour_gan, hour_ji = r.hour_ji,
            analysis_result = r.analysis_result, analysis_status = 'done', analysis_error = NULL,
            analysis_version = 2, analysis_input = r.analysis_input, analyzed_at = now()
        FROM bench_results r WHERE p.id = r.id"
    s1=$(date +%s.%N)
    python3 -c "print(round($1 / ($s1 - $s0)))"
}

# The sum of a metric's samples (a name with its labels, e.g. 'x_total{reason="y"}') on a
# worker's /metrics; 0 when absent.
bench_metric() {
    curl -fsS -m 2 "http://127.0.0.1:$1/metrics" 2>/dev/null \
        | awk -v name="$2" 'index($0, name) == 1 { sum += $NF } END { printf "%d\n", sum }'
}

bench_wait_ready() {
    local port
    for port in "$@"; do
        for _ in $(seq 1 150); do
            curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
            sleep 0.2
        done
        curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 || die "worker on :$port not ready; see $STACK_DIR/logs"
    done
}

# Counts the analyzed rows matching `where` every `interval` seconds until there are `expected`,
# logging the count when it changes; dies `timeout` seconds after `started` (epoch seconds).
# Sets BENCH_COUNTS to the number of counts it took.
bench_count_analyzed() {
    local where=$1 expected=$2 timeout=$3 started=$4 interval=$5 done last=-1
    BENCH_COUNTS=0
    while :; do
        done=$(psql -Atq "$DATABASE_URL" -c "SELECT count(*) FROM saju_profiles WHERE $where AND analysis_status <> 'pending'")
        BENCH_COUNTS=$(( BENCH_COUNTS + 1 ))
        [ "$done" -ge "$expected" ] && return 0
        if [ $(( $(date +%s) - started )) -ge "$timeout" ]; then
            die "only $done of $expected rows analyzed after ${timeout}s; see $STACK_DIR/logs"
        fi
        if [ "$done" != "$last" ]; then log "  the table has $done / $expected analyzed"; last=$done; fi
        sleep "$interval"
    done
}

# Waits until `expected` rows matching `where` are analyzed (a short wait: it counts the table
# every 0.1 s).
bench_wait_done() {
    bench_count_analyzed "$1" "$2" "$3" "$(date +%s)" 0.1
}

# What the analyzer has finished: results written plus rows recorded as errors (its counters,
# read from /metrics: cheap whatever the table's size).
bench_analyzer_finished() {
    echo $(( $(bench_metric 9202 'analyzer_analyses_written_total') + $(bench_metric 9202 'analyzer_errors_total') ))
}

# Waits until `expected` rows matching `where` are analyzed, and sets BENCH_DONE_AT (epoch
# seconds) to when they were. Progress is followed on the analyzer's counters until they reach
# `target`; only then does the database confirm it with a count. Polling that count instead
# scans the whole table every time: on a table of a million profiles about a second of a core
# each, taken from the pipeline being measured. A result written twice (redelivery) makes the
# counters run ahead; the count is then polled until it holds, and the time is its.
bench_wait_analyzed() {
    local where=$1 expected=$2 timeout=$3 target=$4 started finished now logged=0
    started=$(date +%s)
    while :; do
        finished=$(bench_analyzer_finished)
        [ "$finished" -ge "$target" ] && break
        now=$(date +%s)
        if [ $(( now - started )) -ge "$timeout" ]; then
            die "the analyzer finished $finished of $target results after ${timeout}s; see $STACK_DIR/logs"
        fi
        if [ $(( now - logged )) -ge 2 ]; then log "  analyzed $(( expected - (target - finished) )) / $expected"; logged=$now; fi
        sleep 0.1
    done
    BENCH_DONE_AT=$(date +%s.%N)
    bench_count_analyzed "$where" "$expected" "$timeout" "$started" 0.5
    [ "$BENCH_COUNTS" = 1 ] || BENCH_DONE_AT=$(date +%s.%N)
}

bench_stop_workers() {
    local w port
    # What the workers counted, kept beside their logs for a failed run's post-mortem.
    for port in 9201 9202; do
        # (Called again at exit, when the workers are gone: keep what was saved.)
        if curl -fsS -m 2 "http://127.0.0.1:$port/metrics" >"$STACK_DIR/logs/metrics-$port.part" 2>/dev/null; then
            mv "$STACK_DIR/logs/metrics-$port.part" "$STACK_DIR/logs/metrics-$port.txt"
        else
            rm -f "$STACK_DIR/logs/metrics-$port.part"
        fi
    done
    for w in analyzer cdc-reader; do
        stop_pidfile "$STACK_DIR/workers/$w.pid" "$w"
    done
}
