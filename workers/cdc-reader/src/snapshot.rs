//! The initial snapshot: every row that existed before the slot, emitted once as `op=r`.
//!
//! Consistency: the slot is created with an exported snapshot, and the rows are read inside a
//! `REPEATABLE READ` transaction that imports it, so they are exactly the state at the slot's
//! consistent point; the stream then starts right after it. Memory: rows are read through a
//! server-side cursor in chunks, and each row's JSON is rendered by the server the way wal2json
//! renders values (numbers bare with every digit, booleans as `true`/`false`, everything else
//! as a JSON string in the same `DateStyle`/`TimeZone`), so snapshot and streamed events look
//! alike.

use chrono::Utc;
use serde_json::value::RawValue;
use shared::envelope::Op;
use sqlx::{Connection, PgConnection};

use crate::config::TableName;
use crate::delivery::Publisher;
use crate::envelope::{encode_value, SourceInfo};
use crate::error::Error;
use crate::topics::Routes;

/// The settings under which the server renders values as wal2json does (inside a transaction).
pub const RENDER_SETTINGS: [&str; 4] = [
    "SET LOCAL TimeZone = 'UTC'",
    "SET LOCAL DateStyle = 'ISO, YMD'",
    "SET LOCAL IntervalStyle = 'iso_8601'",
    "SET LOCAL extra_float_digits = 3",
];

/// How often a long table copy logs its progress.
const PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Snapshot settings.
#[derive(Debug, Clone, Copy)]
pub struct SnapshotParams {
    /// Rows per FETCH.
    pub chunk_rows: u32,
    /// In-flight cap (same as streaming).
    pub max_in_flight: u64,
    /// The slot's consistent point, stamped as `lsn` and `commit_lsn` of every row.
    pub consistent_point: u64,
    /// Tombstone after each delete (of a reconciliation).
    pub tombstones: bool,
}

/// Copies every captured table as of `snapshot_name` and hands every row to the producer
/// (the caller waits for the acknowledgements). Returns the number of rows.
///
/// Then, when the table's topic already holds records (an earlier snapshot was cut short and
/// is redone, the slot was lost and is replaced, or the slot was dropped by hand), every key
/// the topic holds that has no row at the consistent point gets a delete (and a tombstone),
/// stamped at the consistent point: a row an earlier attempt published and that was deleted
/// before this one never leaves a stale record behind. `topic_keys` reads the topics.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    mut conn: PgConnection,
    snapshot_name: &str,
    routes: &Routes,
    publisher: &Publisher,
    params: SnapshotParams,
    topic_keys: &TopicKeys,
    shutdown: &shared::shutdown::Shutdown,
    debezium: Option<&crate::debezium::Debezium>,
) -> Result<u64, Error> {
    let import = format!(
        "SET TRANSACTION SNAPSHOT '{}'",
        snapshot_name.replace('\'', "''")
    );
    for statement in [
        "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY",
        import.as_str(),
    ]
    .into_iter()
    .chain(RENDER_SETTINGS)
    {
        execute(&mut conn, statement)
            .await
            .map_err(Error::db("importing the slot's snapshot"))?;
    }

    let started = Utc::now();
    let seq = publisher.tracker().begin();
    let mut sent = 0u64;
    let mut total = 0u64;
    let mut value = Vec::with_capacity(1024);
    for route in routes.iter() {
        let query = row_query(&mut conn, &route.table).await?;
        execute(
            &mut conn,
            &format!("DECLARE cdc_snapshot NO SCROLL CURSOR FOR {query}"),
        )
        .await
        .map_err(Error::db("declaring the snapshot cursor"))?;
        let fetch = format!("FETCH FORWARD {} FROM cdc_snapshot", params.chunk_rows);
        let source = SourceInfo {
            lsn: params.consistent_point,
            commit_lsn: params.consistent_point,
            xid: None,
            ts: &started,
            schema: &route.table.schema,
            table: &route.table.table,
            snapshot: true,
        };
        // What the topic held before this snapshot wrote to it (see `reconcile`).
        let held = topic_keys.ranges(route).await?;
        // The planner's estimate, for the progress log (0 for a never-analyzed table).
        let estimate: i64 = sqlx::query_scalar(
            "SELECT GREATEST(reltuples, 0)::int8 FROM pg_class WHERE oid = to_regclass($1)",
        )
        .bind(route.table.quoted())
        .fetch_optional(&mut conn)
        .await
        .map_err(Error::db("estimating a captured table's size"))?
        .unwrap_or(0);
        tracing::info!(table = %route.table, estimated_rows = estimate, "snapshot of table started");
        let table_started = std::time::Instant::now();
        let mut last_report = table_started;
        let mut rows_of_table = 0u64;
        loop {
            if shutdown.is_triggered() {
                return Err(Error::ShuttingDown);
            }
            let rows: Vec<(Option<String>, String)> = sqlx::query_as(&fetch)
                .fetch_all(&mut conn)
                .await
                .map_err(Error::db("fetching snapshot rows"))?;
            if rows.is_empty() {
                break;
            }
            let mut debezium_key = Vec::new();
            for (key, row) in &rows {
                let after: &RawValue = serde_json::from_str(row).map_err(|e| Error::Decode {
                    lsn: shared::envelope::format_lsn(params.consistent_point),
                    reason: format!("snapshot row of {}: {e}", route.table),
                })?;
                let mut key = key.as_deref().map(str::as_bytes);
                match debezium.and_then(|d| Some((d, d.table(route.index)?))) {
                    Some((debezium, table)) => {
                        let origin = crate::debezium::Origin {
                            lsn: params.consistent_point,
                            last_commit: None,
                            xid: None,
                            ts: &started,
                            snapshot: "true",
                        };
                        let has_key = debezium.write_read(
                            &mut value,
                            Some(&mut debezium_key),
                            table,
                            after,
                            &origin,
                        );
                        key = has_key.then_some(&debezium_key[..]);
                    }
                    None => encode_value(
                        &mut value,
                        Op::Read,
                        None::<&RawValue>,
                        Some(after),
                        &source,
                    ),
                }
                publisher.wait_for_room(params.max_in_flight).await?;
                publisher
                    .send(&route.topic, None, key, Some(&value), seq)
                    .await
                    .map_err(crate::delivery::send_failed)?;
                sent += 1;
                route
                    .bytes
                    .inc_by((value.len() + key.map_or(0, <[u8]>::len)) as u64);
            }
            route.events(Op::Read).inc_by(rows.len() as u64);
            rows_of_table += rows.len() as u64;
            // A Kafka transaction per chunk (with a transactional producer): readers of
            // committed messages see the snapshot as it goes.
            while publisher.is_transactional()
                && !publisher
                    .settle_committed(std::time::Duration::from_secs(5))
                    .await?
            {
                if shutdown.is_triggered() {
                    return Err(Error::ShuttingDown);
                }
            }
            if last_report.elapsed() >= PROGRESS_EVERY {
                last_report = std::time::Instant::now();
                let seconds = table_started.elapsed().as_secs_f64().max(0.001);
                tracing::info!(
                    table = %route.table,
                    rows = rows_of_table,
                    estimated_rows = estimate,
                    rows_per_second = (rows_of_table as f64 / seconds).round(),
                    "snapshot progress"
                );
            }
        }
        execute(&mut conn, "CLOSE cdc_snapshot")
            .await
            .map_err(Error::db("closing the snapshot cursor"))?;
        tracing::info!(table = %route.table, rows = rows_of_table, "snapshot of table read");
        total += rows_of_table;
        let deletes = reconcile(
            &mut conn, route, topic_keys, held, publisher, &params, seq, &source, shutdown,
            debezium,
        )
        .await?;
        sent += deletes.sent;
        if deletes.keys > 0 {
            tracing::warn!(table = %route.table, keys = deletes.keys, "keys in the topic without a row at the snapshot: deleted");
        }
    }
    execute(&mut conn, "COMMIT")
        .await
        .map_err(Error::db("ending the snapshot transaction"))?;
    let _ = conn.close().await;
    publisher.tracker().commit(seq, sent, 0);
    Ok(total)
}

/// Reads the keys a table topic holds, from its beginning to the end it had when asked.
#[derive(Debug)]
pub struct TopicKeys {
    config: rdkafka::ClientConfig,
}

impl TopicKeys {
    /// A reader of topics with the reader's Kafka settings (TLS, SASL…).
    pub fn new(kafka: &shared::config::KafkaArgs) -> Self {
        let mut config = rdkafka::ClientConfig::new();
        config
            .set("bootstrap.servers", &kafka.brokers)
            .set("client.id", "cdc-reader-reconcile")
            .set("group.id", "cdc-reader-reconcile")
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "true")
            // Aborted copies too: a key any attempt published may need its delete.
            .set("isolation.level", "read_uncommitted");
        for (key, value) in &kafka.properties {
            config.set(key, value);
        }
        Self { config }
    }

    /// The offsets `[low, high)` each non-empty partition of `route`'s topic holds now.
    async fn ranges(&self, route: &crate::topics::Route) -> Result<Vec<(i32, i64, i64)>, Error> {
        use rdkafka::consumer::{BaseConsumer, Consumer};
        let consumer: BaseConsumer = self
            .config
            .create()
            .map_err(Error::kafka("creating the topic reader"))?;
        let (topic, partitions) = (route.topic.clone(), route.partitions);
        tokio::task::spawn_blocking(move || {
            let mut ranges = Vec::new();
            for partition in 0..partitions {
                let (low, high) = consumer.fetch_watermarks(
                    &topic,
                    partition,
                    std::time::Duration::from_secs(30),
                )?;
                if high > low {
                    ranges.push((partition, low, high));
                }
            }
            Ok(ranges)
        })
        .await
        .map_err(|_| Error::ShuttingDown)?
        .map_err(Error::kafka("reading a topic's offsets"))
    }
}

/// What a reconciliation did.
#[derive(Debug, Default)]
struct Reconciled {
    /// Keys without a row at the consistent point.
    keys: u64,
    /// Messages produced (deletes and tombstones).
    sent: u64,
}

/// Deletes (and tombstones), at the consistent point, the keys `route`'s topic held before the
/// snapshot (`held`: partition, low, high) that have no row in the snapshot, a chunk of keys at
/// a time (memory bounded by the chunk, whatever the topic's size).
#[allow(clippy::too_many_arguments)]
async fn reconcile(
    conn: &mut PgConnection,
    route: &crate::topics::Route,
    topic_keys: &TopicKeys,
    held: Vec<(i32, i64, i64)>,
    publisher: &Publisher,
    params: &SnapshotParams,
    seq: crate::delivery::TxSeq,
    source: &SourceInfo<'_>,
    shutdown: &shared::shutdown::Shutdown,
    debezium: Option<&crate::debezium::Debezium>,
) -> Result<Reconciled, Error> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::Message;

    let mut done = Reconciled::default();
    if held.is_empty() {
        return Ok(done);
    }
    let consumer: BaseConsumer = topic_keys
        .config
        .create()
        .map_err(Error::kafka("creating the topic reader"))?;
    let mut assignment = rdkafka::TopicPartitionList::new();
    let mut ends = std::collections::HashMap::new();
    for (partition, low, high) in held {
        ends.insert(partition, high);
        assignment
            .add_partition_offset(&route.topic, partition, rdkafka::Offset::Offset(low))
            .map_err(Error::kafka("reading a topic"))?;
    }
    consumer
        .assign(&assignment)
        .map_err(Error::kafka("reading a topic"))?;
    let check = missing_keys_query(conn, &route.table).await?;
    let mut batch: std::collections::HashSet<String> = std::collections::HashSet::new();
    // Debezium keys (with `--envelope debezium`) by the plain key object the check reads.
    let mut published: std::collections::HashMap<String, String> = Default::default();
    let mut value = Vec::with_capacity(256);
    while !ends.is_empty() {
        if shutdown.is_triggered() {
            return Err(Error::ShuttingDown);
        }
        let polled = consumer.poll(std::time::Duration::ZERO);
        if polled.is_none() {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        match polled {
            Some(Ok(message)) => {
                let partition = message.partition();
                if let Some(key) = message.key().and_then(|k| std::str::from_utf8(k).ok()) {
                    if key != crate::replication::TRUNCATE_KEY_STR {
                        let plain = if debezium.is_some() {
                            // `{"schema": …, "payload": {…}}` or the payload alone.
                            let parsed: Option<serde_json::Value> = serde_json::from_str(key).ok();
                            let plain = parsed
                                .map(|v| match v.get("payload") {
                                    Some(payload) if v.get("schema").is_some() => payload.clone(),
                                    _ => v,
                                })
                                .map_or_else(|| key.to_owned(), |v| v.to_string());
                            published.insert(plain.clone(), key.to_owned());
                            plain
                        } else {
                            key.to_owned()
                        };
                        batch.insert(plain);
                    }
                }
                if ends
                    .get(&partition)
                    .is_some_and(|end| message.offset() + 1 >= *end)
                {
                    ends.remove(&partition);
                }
            }
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(partition))) => {
                ends.remove(&partition);
            }
            Some(Err(e)) => return Err(Error::kafka("reading a topic")(e)),
            None => {}
        }
        if batch.len() >= params.chunk_rows as usize || (ends.is_empty() && !batch.is_empty()) {
            let keys: Vec<String> = batch.drain().collect();
            let missing: Vec<String> = sqlx::query_scalar(&check)
                .bind(&keys)
                .fetch_all(&mut *conn)
                .await
                .map_err(Error::db("looking up the topic's keys in the snapshot"))?;
            for plain in missing {
                let before: &RawValue =
                    serde_json::from_str(&plain).map_err(|e| Error::Decode {
                        lsn: shared::envelope::format_lsn(params.consistent_point),
                        reason: format!("a key of {}: {e}", route.table),
                    })?;
                match debezium.and_then(|d| Some((d, d.table(route.index)?))) {
                    Some((debezium, table)) => {
                        let object = crate::debezium::object_row(before).unwrap_or_default();
                        let origin = crate::debezium::Origin {
                            lsn: source.lsn,
                            last_commit: None,
                            xid: None,
                            ts: source.ts,
                            snapshot: "true",
                        };
                        debezium.write_value(
                            &mut value,
                            table,
                            Op::Delete,
                            Some(&|_, name: &str| object.get(name).copied()),
                            None,
                            &origin,
                            Utc::now(),
                        );
                    }
                    None => encode_value(
                        &mut value,
                        Op::Delete,
                        Some(before),
                        None::<&RawValue>,
                        source,
                    ),
                }
                let key = published.remove(&plain).unwrap_or(plain);
                publisher.wait_for_room(params.max_in_flight).await?;
                publisher
                    .send(&route.topic, None, Some(key.as_bytes()), Some(&value), seq)
                    .await
                    .map_err(crate::delivery::send_failed)?;
                done.sent += 1;
                if params.tombstones {
                    publisher
                        .send(&route.topic, None, Some(key.as_bytes()), None, seq)
                        .await
                        .map_err(crate::delivery::send_failed)?;
                    done.sent += 1;
                }
                route.events(Op::Delete).inc();
                done.keys += 1;
            }
        }
    }
    Ok(done)
}

/// The keys (key JSON texts, `$1`) that have no row in `table`: each key is read into the
/// table's row type and compared on the key columns (the primary key, or every column).
async fn missing_keys_query(conn: &mut PgConnection, table: &TableName) -> Result<String, Error> {
    let columns: Vec<(String, bool)> = sqlx::query_as(
        "SELECT a.attname::text, COALESCE(a.attnum = ANY(i.indkey::int2[]), false) \
         FROM pg_attribute a \
         LEFT JOIN pg_index i ON i.indrelid = a.attrelid AND i.indisprimary \
         WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped \
         ORDER BY a.attnum",
    )
    .bind(table.quoted())
    .fetch_all(&mut *conn)
    .await
    .map_err(Error::db("reading the columns of a captured table"))?;
    let pk: Vec<&String> = columns.iter().filter(|c| c.1).map(|c| &c.0).collect();
    let (key, compare): (Vec<&String>, &str) = if pk.is_empty() {
        (
            columns.iter().map(|c| &c.0).collect(),
            "IS NOT DISTINCT FROM",
        )
    } else {
        (pk, "=")
    };
    let quote = |c: &str| format!("\"{}\"", c.replace('"', "\"\""));
    let condition = key
        .iter()
        .map(|c| format!("t.{0} {compare} r.{0}", quote(c)))
        .collect::<Vec<_>>()
        .join(" AND ");
    let quoted = table.quoted();
    Ok(format!(
        "SELECT u.k FROM unnest($1::text[]) AS u(k) \
         CROSS JOIN LATERAL jsonb_populate_record(NULL::{quoted}, u.k::jsonb) AS r \
         WHERE NOT EXISTS (SELECT 1 FROM {quoted} AS t WHERE {condition})"
    ))
}

/// `SELECT <key json>, <row json> FROM table` rendering values like wal2json does.
pub async fn row_query(conn: &mut PgConnection, table: &TableName) -> Result<String, Error> {
    let columns: Vec<(String, bool, bool, bool)> = sqlx::query_as(
        "SELECT a.attname::text, \
                a.atttypid IN ('int2'::regtype, 'int4'::regtype, 'int8'::regtype, 'oid'::regtype, \
                               'float4'::regtype, 'float8'::regtype, 'numeric'::regtype), \
                a.atttypid = 'bool'::regtype, \
                COALESCE(a.attnum = ANY(i.indkey::int2[]), false) \
         FROM pg_attribute a \
         LEFT JOIN pg_index i ON i.indrelid = a.attrelid AND i.indisprimary \
         WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped \
         ORDER BY a.attnum",
    )
    .bind(table.quoted())
    .fetch_all(&mut *conn)
    .await
    .map_err(Error::db("reading the columns of a captured table"))?;
    if columns.is_empty() {
        return Err(Error::Config(format!(
            "captured table {table} does not exist"
        )));
    }
    let object = |cols: Vec<&(String, bool, bool, bool)>| -> String {
        let mut parts = Vec::new();
        for (i, (name, numeric, boolean, _)) in cols.iter().enumerate() {
            let key = serde_json::to_string(name).unwrap_or_default();
            let prefix = if i == 0 {
                format!("{{{key}:")
            } else {
                format!(",{key}:")
            };
            let ident = format!("\"{}\"", name.replace('"', "\"\""));
            let value = if *numeric {
                format!("CASE WHEN {ident} IS NULL OR {ident}::text IN ('NaN', 'Infinity', '-Infinity') THEN 'null' ELSE {ident}::text END")
            } else if *boolean {
                format!("CASE WHEN {ident} IS NULL THEN 'null' WHEN {ident} THEN 'true' ELSE 'false' END")
            } else {
                format!("COALESCE(to_json({ident}::text)::text, 'null')")
            };
            parts.push(format!("'{}' || {value}", prefix.replace('\'', "''")));
        }
        if parts.is_empty() {
            return "'{}'".into();
        }
        format!("{} || '}}'", parts.join(" || "))
    };
    // A table without a primary key (captured with REPLICA IDENTITY FULL) is keyed by all
    // its columns, as its streamed changes are.
    let pk: Vec<_> = columns.iter().filter(|c| c.3).collect();
    let key = if pk.is_empty() {
        object(columns.iter().collect())
    } else {
        object(pk)
    };
    let row = object(columns.iter().collect());
    Ok(format!("SELECT {key}, {row} FROM {}", table.quoted()))
}

/// Runs one statement (simple protocol, nothing prepared).
async fn execute(conn: &mut PgConnection, sql: &str) -> Result<(), sqlx::Error> {
    sqlx::Executor::execute(conn, sqlx::raw_sql(sql))
        .await
        .map(|_| ())
}
