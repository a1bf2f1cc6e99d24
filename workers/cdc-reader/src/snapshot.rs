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
}

/// Copies every captured table as of `snapshot_name` and hands every row to the producer
/// (the caller waits for the acknowledgements). Returns the number of rows.
pub async fn run(
    mut conn: PgConnection,
    snapshot_name: &str,
    routes: &Routes,
    publisher: &Publisher,
    params: SnapshotParams,
    shutdown: &shared::shutdown::Shutdown,
) -> Result<u64, Error> {
    let import = format!(
        "SET TRANSACTION SNAPSHOT '{}'",
        snapshot_name.replace('\'', "''")
    );
    for statement in [
        "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY",
        import.as_str(),
        "SET LOCAL TimeZone = 'UTC'",
        "SET LOCAL DateStyle = 'ISO, YMD'",
        "SET LOCAL IntervalStyle = 'iso_8601'",
        "SET LOCAL extra_float_digits = 3",
    ] {
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
            for (key, row) in &rows {
                let after: &RawValue = serde_json::from_str(row).map_err(|e| Error::Decode {
                    lsn: shared::envelope::format_lsn(params.consistent_point),
                    reason: format!("snapshot row of {}: {e}", route.table),
                })?;
                encode_value(
                    &mut value,
                    Op::Read,
                    None::<&RawValue>,
                    Some(after),
                    &source,
                );
                publisher.wait_for_room(params.max_in_flight).await?;
                publisher
                    .send(
                        &route.topic,
                        None,
                        key.as_ref().map(|k| k.as_bytes()),
                        Some(&value),
                        seq,
                    )
                    .await
                    .map_err(|e| Error::Delivery(e.to_string()))?;
                sent += 1;
                route
                    .bytes
                    .inc_by((value.len() + key.as_ref().map_or(0, String::len)) as u64);
            }
            route.events(Op::Read).inc_by(rows.len() as u64);
            rows_of_table += rows.len() as u64;
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
    }
    execute(&mut conn, "COMMIT")
        .await
        .map_err(Error::db("ending the snapshot transaction"))?;
    let _ = conn.close().await;
    publisher.tracker().commit(seq, sent, 0);
    Ok(total)
}

/// `SELECT <key json>, <row json> FROM table` rendering values like wal2json does.
async fn row_query(conn: &mut PgConnection, table: &TableName) -> Result<String, Error> {
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
