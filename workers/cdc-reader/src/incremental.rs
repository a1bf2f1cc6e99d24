//! Incremental snapshots: existing rows of a table copied while the stream goes on, in
//! primary-key chunks, without a stale row ever overtaking a newer change (the watermark
//! algorithm of DBLog, as Debezium's incremental snapshots use it).
//!
//! For each chunk, on a connection of its own: a low watermark is written to the WAL (a
//! transactional logical message), the chunk is read (`pk > last key ORDER BY pk LIMIT n`),
//! and a high watermark is written. The streaming session sees both marks in commit order.
//! Every streamed change of the table between them names a key whose row the chunk may hold
//! in an older state; those rows are dropped from the chunk (the stream carries the newer
//! state), and the rest are published as `op = r` at the high watermark, inside its
//! transaction, so the slot is confirmed past it only once the broker has them.
//!
//! Requests are rows of `cdc_signals` (`cdc-reader snapshot <table>…` inserts them; the reader
//! sees the insert in its stream). A request's progress (last key, rows sent) is written back
//! once the broker acknowledged the chunk and the slot position past it is confirmed, so a
//! restarted reader resumes from there, repeating at most the chunks in flight (delivery is at
//! least once, like everything else). A table that appears in `CDC_TABLES` on an existing slot
//! gets a request automatically (`cdc_captured_tables` remembers what each slot captured).

use std::collections::{HashSet, VecDeque};
use std::time::{Duration, Instant};

use sqlx::{Connection, PgPool};

use crate::config::TableName;
use crate::error::Error;
use crate::topics::Routes;

/// Schema and name of the signal table (its inserts reach the reader through the stream).
pub const SIGNAL_TABLE: (&str, &str) = ("public", "cdc_signals");
/// Prefix of the watermark messages.
pub const WATERMARK_PREFIX: &str = "cdc-reader.watermark";
/// How often a long incremental snapshot logs its progress.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// A pending request.
#[derive(Debug, Clone)]
struct Request {
    id: i64,
    table: TableName,
    /// Position of the route in [`Routes`]; `None` when the table is not captured.
    route: Option<usize>,
    last_key: Option<String>,
    rows_sent: i64,
}

/// A chunk being read.
#[derive(Debug)]
struct Chunk {
    id: String,
    route: usize,
    /// The reading task, until its outcome is taken.
    task: Option<ChunkTask>,
    /// The rows read, once the task finished.
    rows: Option<Vec<(Option<String>, String)>>,
    /// Keys of the table changed in the stream since the low watermark (`None` before it).
    window: Option<HashSet<Vec<u8>>>,
    /// The table was truncated since the low watermark: the chunk is void.
    truncated: bool,
}

/// `id, table_name, last_key, rows_sent` of a `cdc_signals` row.
type RequestRow = (i64, String, Option<String>, i64);

/// A released row's key as the stream publishes it: `(route, key, row)` → key bytes.
pub type KeyOf<'a> = dyn Fn(usize, &str, &str) -> Option<Vec<u8>> + Sync + 'a;

type ChunkTask = tokio::task::JoinHandle<Result<Vec<(Option<String>, String)>, Error>>;

/// Progress to record once the position past its chunk is confirmed.
#[derive(Debug)]
struct Progress {
    id: i64,
    last_key: Option<String>,
    rows_sent: i64,
    finished: bool,
    error: Option<String>,
    /// End of the high watermark's transaction (set at its commit).
    end: Option<u64>,
}

/// What a high watermark releases: rows to publish as `op = r`.
#[derive(Debug)]
pub struct Released {
    /// Route of the table.
    pub route: usize,
    /// `(key as published, row JSON text)`, in key order.
    pub rows: Vec<(Vec<u8>, String)>,
}

/// A watermark message of this reader.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Mark {
    slot: String,
    chunk: String,
    mark: String,
}

/// The incremental snapshots of one streaming session.
#[derive(Debug)]
pub struct Incremental {
    pool: PgPool,
    slot: String,
    chunk_rows: i64,
    queue: VecDeque<Request>,
    chunk: Option<Chunk>,
    progress: VecDeque<Progress>,
    /// A signal was inserted: read the pending requests again.
    reload: bool,
    /// Unique per session: marks of an earlier session (replayed WAL) are not ours.
    nonce: String,
    chunks: u64,
    failures: u32,
    retry_at: Option<Instant>,
    last_report: Instant,
    /// The signal table exists (otherwise incremental snapshots are off).
    enabled: bool,
}

impl Incremental {
    /// Loads the slot's pending requests.
    pub async fn load(
        pool: PgPool,
        slot: &str,
        chunk_rows: u32,
        routes: &Routes,
    ) -> Result<Self, Error> {
        let mut this = Self {
            pool,
            slot: slot.to_owned(),
            chunk_rows: i64::from(chunk_rows.max(1)),
            queue: VecDeque::new(),
            chunk: None,
            progress: VecDeque::new(),
            reload: false,
            nonce: format!("{:016x}", rand_nonce()),
            chunks: 0,
            failures: 0,
            retry_at: None,
            last_report: Instant::now(),
            enabled: true,
        };
        this.reload_requests(routes).await?;
        Ok(this)
    }

    /// Whether a table is the signal table.
    pub fn is_signal(schema: &str, table: &str) -> bool {
        (schema, table) == SIGNAL_TABLE
    }

    /// A row of the signal table changed: look for new requests.
    pub fn signalled(&mut self) {
        self.reload = true;
    }

    /// Requests waiting or under way.
    pub fn pending(&self) -> usize {
        self.queue.len()
    }

    async fn reload_requests(&mut self, routes: &Routes) -> Result<(), Error> {
        self.reload = false;
        if !self.enabled {
            return Ok(());
        }
        let rows: Result<Vec<RequestRow>, sqlx::Error> = sqlx::query_as(
            "SELECT id, table_name, last_key::text, rows_sent FROM cdc_signals \
             WHERE slot = $1 AND finished_at IS NULL AND type = 'execute-snapshot' ORDER BY id",
        )
        .bind(&self.slot)
        .fetch_all(&self.pool)
        .await;
        let rows = match rows {
            Ok(rows) => rows,
            Err(e) if is_undefined_table(&e) => {
                tracing::info!(
                    "no cdc_signals table (migrations not applied): incremental snapshots are off"
                );
                self.enabled = false;
                return Ok(());
            }
            Err(e) => return Err(Error::db("reading the snapshot requests")(e)),
        };
        for (id, table_name, last_key, rows_sent) in rows {
            if self.queue.iter().any(|r| r.id == id) {
                continue;
            }
            let table: Option<TableName> = table_name.parse().ok();
            let route = table.as_ref().and_then(|t| {
                routes
                    .iter()
                    .position(|r| r.table.schema == t.schema && r.table.table == t.table)
            });
            tracing::info!(request = id, table = %table_name, resume_after = last_key.as_deref().unwrap_or("-"), "incremental snapshot requested");
            self.queue.push_back(Request {
                id,
                table: table.unwrap_or_else(|| TableName {
                    schema: String::new(),
                    table: table_name,
                }),
                route,
                last_key,
                rows_sent,
            });
        }
        Ok(())
    }

    /// Between stream messages: read new requests, write confirmed progress, start the next
    /// chunk, notice a chunk whose reading failed.
    pub async fn drive(&mut self, routes: &Routes, confirmed: u64) -> Result<(), Error> {
        if self.reload {
            self.reload_requests(routes).await?;
        }
        while self
            .progress
            .front()
            .is_some_and(|p| p.end.is_some_and(|end| end <= confirmed))
        {
            let p = self.progress.pop_front().expect("checked");
            self.record(&p).await?;
        }
        let finished = self
            .chunk
            .as_ref()
            .and_then(|c| c.task.as_ref())
            .is_some_and(tokio::task::JoinHandle::is_finished);
        if finished {
            let chunk = self.chunk.as_mut().expect("checked");
            let task = chunk.task.take().expect("checked");
            match outcome(task).await {
                Ok(rows) => chunk.rows = Some(rows),
                Err(e) => {
                    // Its high watermark, if any, will find no chunk.
                    self.chunk = None;
                    self.chunk_failed(e);
                }
            }
        }
        if self.chunk.is_none()
            && self.retry_at.is_none_or(|at| Instant::now() >= at)
            && !self.queue.is_empty()
        {
            self.start_chunk(routes);
        }
        Ok(())
    }

    fn chunk_failed(&mut self, error: Error) {
        self.failures += 1;
        let wait = Duration::from_secs(1 << self.failures.min(5));
        tracing::warn!(error = %error, retry_in = ?wait, "reading an incremental snapshot chunk failed");
        if let (Error::Config(reason), Some(request)) = (&error, self.queue.front()) {
            // The table cannot be read this way: the request ends with the reason.
            self.progress.push_back(Progress {
                id: request.id,
                last_key: request.last_key.clone(),
                rows_sent: request.rows_sent,
                finished: true,
                error: Some(reason.clone()),
                end: Some(0),
            });
            self.queue.pop_front();
            return;
        }
        self.retry_at = Some(Instant::now() + wait);
    }

    fn start_chunk(&mut self, routes: &Routes) {
        let Some(request) = self.queue.front() else {
            return;
        };
        let Some(route) = request.route else {
            let reason = format!(
                "table {} is not captured by this reader (CDC_TABLES)",
                request.table
            );
            tracing::warn!(request = request.id, %reason, "incremental snapshot refused");
            self.progress.push_back(Progress {
                id: request.id,
                last_key: None,
                rows_sent: 0,
                finished: true,
                error: Some(reason),
                end: Some(0),
            });
            self.queue.pop_front();
            return;
        };
        let table = routes.iter().nth(route).expect("route").table.clone();
        self.chunks += 1;
        let id = format!("{}-{}", self.nonce, self.chunks);
        let task = tokio::spawn(read_chunk(
            self.pool.clone(),
            self.slot.clone(),
            id.clone(),
            table,
            request.last_key.clone(),
            self.chunk_rows,
        ));
        self.chunk = Some(Chunk {
            id,
            route,
            task: Some(task),
            rows: None,
            window: None,
            truncated: false,
        });
    }

    /// A logical message with the watermark prefix: returns the rows a high watermark of the
    /// current chunk releases. `key_of(route, key, row)` is a row's key as the stream publishes
    /// it (what [`Incremental::observe`] saw).
    pub async fn watermark(
        &mut self,
        content: &str,
        key_of: &KeyOf<'_>,
    ) -> Result<Option<Released>, Error> {
        let Ok(mark) = serde_json::from_str::<Mark>(content) else {
            return Ok(None);
        };
        if mark.slot != self.slot || self.chunk.as_ref().is_none_or(|c| c.id != mark.chunk) {
            return Ok(None);
        }
        match mark.mark.as_str() {
            "low" => {
                if let Some(chunk) = self.chunk.as_mut() {
                    chunk.window = Some(HashSet::new());
                }
                Ok(None)
            }
            "high" => {
                let mut chunk = self.chunk.take().expect("checked");
                // The task wrote the high watermark last: it is done or about to be.
                let rows = match (chunk.rows.take(), chunk.task.take()) {
                    (Some(rows), _) => rows,
                    (None, Some(task)) => match outcome(task).await {
                        Ok(rows) => rows,
                        Err(e) => {
                            self.chunk_failed(e);
                            return Ok(None);
                        }
                    },
                    (None, None) => return Ok(None),
                };
                self.failures = 0;
                let request = self.queue.front_mut().expect("a chunk has its request");
                if chunk.truncated {
                    // The table was emptied meanwhile: read this chunk again.
                    return Ok(None);
                }
                let finished = (rows.len() as i64) < self.chunk_rows;
                if let Some((Some(key), _)) = rows.last() {
                    request.last_key = Some(key.clone());
                }
                let window = chunk.window.unwrap_or_default();
                let read = rows.len();
                let route = chunk.route;
                let released: Vec<(Vec<u8>, String)> = rows
                    .into_iter()
                    .filter_map(|(key, row)| Some((key_of(route, key.as_deref()?, &row)?, row)))
                    .filter(|(key, _)| !window.contains(key))
                    .collect();
                request.rows_sent += released.len() as i64;
                tracing::debug!(
                    table = %request.table,
                    read,
                    released = released.len(),
                    changed_meanwhile = read - released.len(),
                    "incremental snapshot chunk"
                );
                self.progress.push_back(Progress {
                    id: request.id,
                    last_key: request.last_key.clone(),
                    rows_sent: request.rows_sent,
                    finished,
                    error: None,
                    end: None,
                });
                if finished {
                    tracing::info!(table = %request.table, rows = request.rows_sent, "incremental snapshot of table read");
                    self.queue.pop_front();
                } else if self.last_report.elapsed() >= PROGRESS_EVERY {
                    self.last_report = Instant::now();
                    tracing::info!(table = %request.table, rows = request.rows_sent, "incremental snapshot progress");
                }
                Ok(Some(Released {
                    route: chunk.route,
                    rows: released,
                }))
            }
            _ => Ok(None),
        }
    }

    /// A streamed change of `route`'s row `key`.
    pub fn observe(&mut self, route: usize, key: &[u8]) {
        if let Some(Chunk {
            route: r,
            window: Some(window),
            ..
        }) = self.chunk.as_mut()
        {
            if *r == route {
                window.insert(key.to_vec());
            }
        }
    }

    /// A streamed truncate of `route`.
    pub fn observe_truncate(&mut self, route: usize) {
        if let Some(chunk) = self.chunk.as_mut() {
            if chunk.route == route && chunk.window.is_some() {
                chunk.truncated = true;
            }
        }
    }

    /// The transaction that held a high watermark committed, ending at `end`.
    pub fn committed(&mut self, end: u64) {
        for p in self.progress.iter_mut().filter(|p| p.end.is_none()) {
            p.end = Some(end);
        }
    }

    async fn record(&self, p: &Progress) -> Result<(), Error> {
        sqlx::query(
            "UPDATE cdc_signals SET last_key = $2::jsonb, rows_sent = $3, error = $4, \
             finished_at = CASE WHEN $5 THEN now() END WHERE id = $1",
        )
        .bind(p.id)
        .bind(&p.last_key)
        .bind(p.rows_sent)
        .bind(&p.error)
        .bind(p.finished)
        .execute(&self.pool)
        .await
        .map_err(Error::db("recording incremental snapshot progress"))?;
        if p.finished {
            tracing::info!(
                request = p.id,
                rows = p.rows_sent,
                error = p.error.as_deref(),
                "incremental snapshot finished"
            );
        }
        Ok(())
    }
}

/// Writes a watermark, reads one chunk, writes the other watermark.
async fn read_chunk(
    pool: PgPool,
    slot: String,
    chunk: String,
    table: TableName,
    last_key: Option<String>,
    limit: i64,
) -> Result<Vec<(Option<String>, String)>, Error> {
    let mut conn = pool
        .acquire()
        .await
        .map_err(Error::db("connecting for an incremental snapshot"))?;
    let query = chunk_query(&mut conn, &table).await?;
    emit(&mut conn, &slot, &chunk, "low").await?;
    let mut tx = conn
        .begin()
        .await
        .map_err(Error::db("reading an incremental snapshot chunk"))?;
    for statement in crate::snapshot::RENDER_SETTINGS {
        sqlx::query(statement)
            .execute(&mut *tx)
            .await
            .map_err(Error::db("reading an incremental snapshot chunk"))?;
    }
    let rows: Vec<(Option<String>, String)> = sqlx::query_as(&query)
        .bind(&last_key)
        .bind(limit)
        .fetch_all(&mut *tx)
        .await
        .map_err(Error::db("reading an incremental snapshot chunk"))?;
    tx.commit()
        .await
        .map_err(Error::db("reading an incremental snapshot chunk"))?;
    emit(&mut conn, &slot, &chunk, "high").await?;
    Ok(rows)
}

async fn emit(
    conn: &mut sqlx::PgConnection,
    slot: &str,
    chunk: &str,
    mark: &str,
) -> Result<(), Error> {
    let content = serde_json::to_string(&Mark {
        slot: slot.to_owned(),
        chunk: chunk.to_owned(),
        mark: mark.to_owned(),
    })
    .unwrap_or_default();
    sqlx::query("SELECT pg_logical_emit_message(true, $1, $2)::text")
        .bind(WATERMARK_PREFIX)
        .bind(content)
        .execute(&mut *conn)
        .await
        .map_err(Error::db("writing a snapshot watermark"))?;
    Ok(())
}

/// `SELECT <key>, <row> FROM table WHERE pk > $1 ORDER BY pk LIMIT $2`, rendering values like
/// wal2json (see [`crate::snapshot`]); `$1` is a key as JSON text (NULL: from the start).
async fn chunk_query(conn: &mut sqlx::PgConnection, table: &TableName) -> Result<String, Error> {
    let pk: Vec<String> = sqlx::query_scalar(
        "SELECT a.attname::text FROM pg_index i \
         CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, n) \
         JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum \
         WHERE i.indrelid = to_regclass($1) AND i.indisprimary ORDER BY k.n",
    )
    .bind(table.quoted())
    .fetch_all(&mut *conn)
    .await
    .map_err(Error::db("reading a table's primary key"))?;
    if pk.is_empty() {
        return Err(Error::Config(format!(
            "table {table} has no primary key: incremental snapshots read in primary-key order"
        )));
    }
    let quote = |c: &str| format!("\"{}\"", c.replace('"', "\"\""));
    let columns = pk.iter().map(|c| quote(c)).collect::<Vec<_>>().join(", ");
    let from_key = pk
        .iter()
        .map(|c| format!("r.{}", quote(c)))
        .collect::<Vec<_>>()
        .join(", ");
    let select = crate::snapshot::row_query(conn, table).await?;
    Ok(format!(
        "{select} WHERE $1::jsonb IS NULL OR ({columns}) > \
         (SELECT {from_key} FROM jsonb_populate_record(NULL::{quoted}, $1::jsonb) AS r) \
         ORDER BY {columns} LIMIT $2",
        quoted = table.quoted()
    ))
}

/// Records which tables the slot captures; on an existing slot, requests an incremental
/// snapshot of each table new to it (when `snapshot_new`). Returns the tables requested.
/// A slot with no record yet (created by this reader now, or by a version before this
/// table existed) records its tables without snapshotting them.
pub async fn register_tables(
    pool: &PgPool,
    slot: &str,
    tables: &[TableName],
    slot_created: bool,
    snapshot_new: bool,
) -> Result<Vec<TableName>, Error> {
    let known: Vec<String> =
        match sqlx::query_scalar("SELECT table_name FROM cdc_captured_tables WHERE slot = $1")
            .bind(slot)
            .fetch_all(pool)
            .await
        {
            Ok(known) => known,
            Err(e) if is_undefined_table(&e) => return Ok(Vec::new()),
            Err(e) => return Err(Error::db("reading the captured tables")(e)),
        };
    let fresh: Vec<&TableName> = tables
        .iter()
        .filter(|t| !known.contains(&t.to_string()))
        .collect();
    if fresh.is_empty() {
        return Ok(Vec::new());
    }
    let snapshot = snapshot_new && !slot_created && !known.is_empty();
    let names: Vec<String> = fresh.iter().map(ToString::to_string).collect();
    let mut tx = pool
        .begin()
        .await
        .map_err(Error::db("recording the captured tables"))?;
    sqlx::query(
        "INSERT INTO cdc_captured_tables (slot, table_name) SELECT $1, unnest($2::text[]) \
         ON CONFLICT DO NOTHING",
    )
    .bind(slot)
    .bind(&names)
    .execute(&mut *tx)
    .await
    .map_err(Error::db("recording the captured tables"))?;
    if snapshot {
        insert_requests(&mut tx, slot, &names).await?;
    }
    tx.commit()
        .await
        .map_err(Error::db("recording the captured tables"))?;
    if snapshot {
        tracing::info!(slot, tables = ?names, "tables new to the slot: incremental snapshots requested");
        Ok(fresh.into_iter().cloned().collect())
    } else {
        Ok(Vec::new())
    }
}

/// Inserts a snapshot request per table (`cdc-reader snapshot`). Returns their ids.
pub async fn request(pool: &PgPool, slot: &str, tables: &[TableName]) -> Result<Vec<i64>, Error> {
    let names: Vec<String> = tables.iter().map(ToString::to_string).collect();
    let mut tx = pool
        .begin()
        .await
        .map_err(Error::db("requesting a snapshot"))?;
    let ids = insert_requests(&mut tx, slot, &names).await?;
    tx.commit()
        .await
        .map_err(Error::db("requesting a snapshot"))?;
    Ok(ids)
}

async fn insert_requests(
    tx: &mut sqlx::PgConnection,
    slot: &str,
    names: &[String],
) -> Result<Vec<i64>, Error> {
    sqlx::query_scalar(
        "INSERT INTO cdc_signals (slot, type, table_name) \
         SELECT $1, 'execute-snapshot', unnest($2::text[]) RETURNING id",
    )
    .bind(slot)
    .bind(names)
    .fetch_all(&mut *tx)
    .await
    .map_err(Error::db("requesting a snapshot"))
}

async fn outcome(task: ChunkTask) -> Result<Vec<(Option<String>, String)>, Error> {
    task.await
        .map_err(|e| Error::Delivery(format!("incremental snapshot chunk: {e}")))?
}

fn is_undefined_table(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .and_then(|d| d.code())
        .is_some_and(|code| code == "42P01")
}

/// A value unlikely to repeat across sessions (time and process).
fn rand_nonce() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    nanos ^ (u64::from(std::process::id()) << 40)
}
