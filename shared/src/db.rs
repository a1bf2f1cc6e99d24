//! The PostgreSQL pool and the schema migrations embedded in every worker binary.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

use crate::config::PostgresArgs;
use crate::redact::redact_url;

/// The migrations under the repository's `migrations/`, compiled in. Applying them takes an
/// advisory lock, so several processes may run it at once; each file runs once.
pub static MIGRATOR: Migrator = sqlx::migrate!("../migrations");

/// Errors reaching or preparing the database.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The URL does not parse (the URL itself is not repeated: it may hold a password).
    #[error("DATABASE_URL is not a valid PostgreSQL URL: {0}")]
    BadUrl(#[source] sqlx::Error),
    /// The server could not be reached or refused the login.
    #[error("cannot connect to PostgreSQL at {target}")]
    Connect {
        /// Host, port and database, no credentials.
        target: String,
        #[source]
        source: sqlx::Error,
    },
    /// A migration failed.
    #[error("applying migrations failed")]
    Migrate(#[source] sqlx::migrate::MigrateError),
}

/// Opens a pool and checks one connection, so a bad URL or an unreachable server is reported
/// at start-up with the target (never the password) in the message.
pub async fn connect(args: &PostgresArgs, application_name: &str) -> Result<PgPool, DbError> {
    open(args, application_name, false).await
}

/// Prefix of the replication origins workers mark their write-back sessions with (migration
/// 14): a reader started with `--exclude-origins` and this prefix does not capture them.
pub const WRITEBACK_ORIGIN_PREFIX: &str = "pipeline_writeback_";

/// Help of every worker's `--mark-write-backs` (each has its own environment variable).
pub const MARK_WRITE_BACKS_HELP: &str = "Mark this worker's database sessions with a write-back \
replication origin (`pipeline_writeback_*`), so that a reader run with `--exclude-origins \
pipeline_writeback_` never captures the results' echo. Only on a direct connection to \
PostgreSQL: behind a transaction-pooling proxy (PgBouncer, RDS Proxy) the mark stays on a server \
session the application's statements share, and they would be left out too. Needs a superuser \
role; each origin used keeps one of the server's origin states (`max_replication_slots`, \
PostgreSQL 18: `max_active_replication_origins`) for good.";

/// [`connect`] for a worker whose writes are all write-backs. With `mark` (its
/// `--mark-write-backs`), each new connection marks itself with a free write-back replication
/// origin ([`WRITEBACK_ORIGIN_PREFIX`]), so that a reader excluding those origins never decodes
/// nor publishes the echo of a result. A connection that finds none free (or lacks the
/// privilege) works unmarked: its write-backs are captured like any change, which costs time
/// and nothing else. Never marked behind a transaction-pooling proxy: the mark belongs to the
/// server session.
pub async fn connect_writer(
    args: &PostgresArgs,
    application_name: &str,
    mark: bool,
) -> Result<PgPool, DbError> {
    open(args, application_name, mark).await
}

async fn open(args: &PostgresArgs, application_name: &str, mark: bool) -> Result<PgPool, DbError> {
    let options: PgConnectOptions = args.database_url.parse().map_err(DbError::BadUrl)?;
    let options = options.application_name(application_name);
    let mut pool = PgPoolOptions::new()
        .max_connections(args.max_connections)
        .acquire_timeout(args.connect_timeout);
    if mark {
        // Whether any connection got marked: only a role that may use replication origins
        // can, and only then is the origin's timestamp set before each use.
        let marking = Arc::new(AtomicBool::new(false));
        let on_connect = Arc::clone(&marking);
        pool = pool
            .after_connect(move |conn, _| {
                let marking = Arc::clone(&on_connect);
                Box::pin(async move {
                    if mark_writeback_origin(conn).await? {
                        marking.store(true, Ordering::Relaxed);
                        stamp_writeback_origin(conn).await?;
                    }
                    Ok(())
                })
            })
            .before_acquire(move |conn, _| {
                let marked = marking.load(Ordering::Relaxed);
                Box::pin(async move {
                    if marked {
                        stamp_writeback_origin(conn).await?;
                    }
                    Ok(true)
                })
            });
    }
    pool.connect_with(options)
        .await
        .map_err(|source| DbError::Connect {
            target: redact_url(&args.database_url),
            source,
        })
}

/// Sets the time a marked session's next transaction commits under: its commit record (what
/// logical decoding reports as the commit time) and `pg_xact_commit_timestamp` take the
/// origin's timestamp instead of the commit's own. PostgreSQL expects a replication apply to
/// set it for every transaction; left alone, a session's first commit records 0 (2000-01-01)
/// and every later one the time of the first. Set when the connection is handed out, just
/// before its statement; a connection that got no origin is left as it is.
async fn stamp_writeback_origin(conn: &mut sqlx::PgConnection) -> Result<(), sqlx::Error> {
    sqlx::query(
        "SELECT pg_replication_origin_xact_setup('0/0', clock_timestamp()) \
         WHERE pg_replication_origin_session_is_setup()",
    )
    .execute(conn)
    .await
    .map(drop)
}

/// Marks the session with a free write-back origin (true when it did); never fails the
/// connection.
async fn mark_writeback_origin(conn: &mut sqlx::PgConnection) -> Result<bool, sqlx::Error> {
    static UNMARKED_REPORTED: AtomicBool = AtomicBool::new(false);
    let marked: Result<Option<String>, sqlx::Error> =
        sqlx::query_scalar("SELECT pipeline_writeback_origin_setup()")
            .fetch_one(&mut *conn)
            .await;
    let why = match marked {
        Ok(Some(origin)) => {
            tracing::debug!(%origin, "connection marked with a write-back replication origin");
            return Ok(true);
        }
        Ok(None) => {
            let origins: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_replication_origin WHERE starts_with(roname, $1)",
            )
            .bind(WRITEBACK_ORIGIN_PREFIX)
            .fetch_one(&mut *conn)
            .await?;
            if origins == 0 {
                "no write-back replication origin exists (the migrations create them when run by \
                 a superuser)"
                    .to_owned()
            } else {
                format!(
                    "all {origins} write-back replication origins are in use, or the server has \
                     no origin state left for them (max_replication_slots; PostgreSQL 18: \
                     max_active_replication_origins)"
                )
            }
        }
        Err(sqlx::Error::Database(e)) => e.message().to_owned(),
        // The connection itself failed: the pool reports that.
        Err(e) => return Err(e),
    };
    if !UNMARKED_REPORTED.swap(true, Ordering::Relaxed) {
        tracing::warn!(
            reason = %why,
            "a database connection is not marked with a write-back replication origin: a reader \
             run with --exclude-origins still captures its write-backs (reported once)"
        );
    }
    Ok(false)
}

/// Applies every pending migration; a no-op when the schema is current.
pub async fn migrate(pool: &PgPool) -> Result<(), DbError> {
    MIGRATOR.run(pool).await.map_err(DbError::Migrate)
}

/// What a worker's batched write-back did to one row.
///
/// Write-backs lock their rows with `FOR UPDATE SKIP LOCKED` and never wait for a row another
/// transaction holds: they cannot take part in a deadlock, and an application's statement waits
/// at most for one batch. Each write-back statement reports one state per requested row, as
/// text in a `state` column; [`RowState::parse`] reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RowState {
    /// Written by this statement.
    Written,
    /// Already holds exactly this result (a replay): nothing written, the result stands.
    Current,
    /// The row has moved on (newer inputs, another file): this result does not apply.
    Stale,
    /// The row no longer exists.
    Missing,
    /// Another transaction holds the row: try again shortly.
    Locked,
}

/// Times a write that found no row is tried again before the row is taken as deleted.
///
/// A change event can arrive before its transaction is visible to other sessions: PostgreSQL
/// writes the commit record, which logical decoding reads, before the committing backend
/// leaves the list of running transactions, and on a busy machine the whole trip through the
/// reader and the broker fits in between (five inserts of one transaction were once found
/// "missing" that way and never analyzed). With the deferral backoff (20 ms doubling to 1 s)
/// eight tries cover about 3 s; a row that is really gone costs its event that long.
pub const MISSING_ROW_RECHECKS: u32 = 8;

/// The wait before each try again of a row held or not found (the consumer runtime's default
/// deferral backoff, and [`read_row`]'s).
pub const RECHECK_BACKOFF: crate::backoff::Backoff = crate::backoff::Backoff {
    initial: std::time::Duration::from_millis(20),
    max: std::time::Duration::from_secs(1),
};

/// Reads one row with `read` (a query for it by key, returning it as JSON), for a change whose
/// event the broker refused as too large. A failed read is retried with the default backoff,
/// logged with `what`; a row not found is read again up to [`MISSING_ROW_RECHECKS`] times,
/// [`RECHECK_BACKOFF`] apart, before it counts as deleted (`None`): the change's dead letter can
/// arrive before the transaction that wrote the row is visible.
pub async fn read_row<F, Fut>(what: &str, mut read: F) -> Option<serde_json::Value>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<serde_json::Value>, sqlx::Error>>,
{
    let mut attempt = 0;
    let mut rechecks = 0;
    loop {
        match read().await {
            Ok(None) if rechecks < MISSING_ROW_RECHECKS => {
                rechecks += 1;
                tokio::time::sleep(RECHECK_BACKOFF.delay(rechecks)).await;
            }
            Ok(row) => return row,
            Err(e) => {
                attempt += 1;
                tracing::warn!(error = %e, attempt, "reading {what} failed; retrying");
                tokio::time::sleep(crate::backoff::Backoff::default().delay(attempt)).await;
            }
        }
    }
}

/// Whether `error` may pass by itself, so the same statement is worth sending again: the
/// connection or the pool failed, the server is shutting down, restarting or recovering from a
/// crash, it ran out of a resource (disk, memory, connections), or the transaction lost a
/// serialization or deadlock race. A statement the server rejects for what it says (syntax,
/// types, constraints, permissions) fails the same way every time and is not transient.
pub fn is_transient(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(e) => e.code().is_some_and(|code| transient_sqlstate(&code)),
        _ => false,
    }
}

/// SQLSTATEs of [`is_transient`]: class 08 (connection exception), 40001 and 40P01
/// (serialization failure, deadlock), class 53 (insufficient resources: disk full, out of
/// memory, too many connections), 57P01–57P03 (administrator or crash shutdown, cannot connect
/// now) and class 58 (system error, an I/O error on the server).
fn transient_sqlstate(code: &str) -> bool {
    code.starts_with("08")
        || code.starts_with("53")
        || code.starts_with("58")
        || matches!(code, "40001" | "40P01" | "57P01" | "57P02" | "57P03")
}

/// Runs `operation` until it succeeds, trying it again after a transient failure
/// ([`is_transient`], logged with `what`, with the default backoff: 100 ms doubling to 5 s)
/// for up to `give_up_after` of failures in a row. Any other error, or the last transient one
/// once that time has passed, is returned. Only for operations that are safe to repeat: a
/// statement whose connection broke may have committed.
pub async fn retry_transient<T, F, Fut>(
    what: &str,
    give_up_after: std::time::Duration,
    mut operation: F,
) -> Result<T, sqlx::Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, sqlx::Error>>,
{
    let mut first_failure: Option<tokio::time::Instant> = None;
    let mut attempt = 0;
    loop {
        match operation().await {
            Ok(value) => return Ok(value),
            Err(e)
                if is_transient(&e)
                    && first_failure
                        .get_or_insert_with(tokio::time::Instant::now)
                        .elapsed()
                        < give_up_after =>
            {
                attempt += 1;
                let delay = crate::backoff::Backoff::default().delay(attempt);
                tracing::warn!(error = %e, attempt, retry_in = ?delay, "{what} failed; retrying");
                tokio::time::sleep(delay).await;
            }
            Err(e) => return Err(e),
        }
    }
}

impl RowState {
    /// Whether an entry whose write found its row in this state is tried again shortly
    /// (`deferrals`: how often it was already): rows held by another transaction always, rows
    /// not found up to [`MISSING_ROW_RECHECKS`] times.
    pub fn retry(self, deferrals: u32) -> bool {
        match self {
            RowState::Locked => true,
            RowState::Missing => deferrals < MISSING_ROW_RECHECKS,
            RowState::Written | RowState::Current | RowState::Stale => false,
        }
    }

    /// Reads the statement's `state` text.
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "written" => RowState::Written,
            "current" => RowState::Current,
            "stale" => RowState::Stale,
            "missing" => RowState::Missing,
            "locked" => RowState::Locked,
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_shutdown_and_resource_errors_are_transient_statement_errors_are_not() {
        for code in [
            "08006", "08003", "57P01", "57P02", "57P03", "53100", "53200", "53300", "58030",
            "40001", "40P01",
        ] {
            assert!(transient_sqlstate(code), "{code}");
        }
        for code in ["42601", "23505", "42501", "22007", "XX000", "57014"] {
            assert!(!transient_sqlstate(code), "{code}");
        }
        assert!(is_transient(&sqlx::Error::PoolTimedOut));
        assert!(is_transient(&sqlx::Error::Io(std::io::Error::from(
            std::io::ErrorKind::ConnectionReset
        ))));
        assert!(!is_transient(&sqlx::Error::RowNotFound));
        assert!(!is_transient(&sqlx::Error::PoolClosed));
    }

    #[tokio::test(start_paused = true)]
    async fn transient_failures_are_retried_until_the_operation_succeeds_or_time_runs_out() {
        let mut calls = 0;
        let value = retry_transient(
            "a test statement",
            std::time::Duration::from_secs(60),
            || {
                calls += 1;
                let failing = calls < 4;
                async move {
                    if failing {
                        Err(sqlx::Error::PoolTimedOut)
                    } else {
                        Ok(calls)
                    }
                }
            },
        )
        .await
        .unwrap();
        assert_eq!(value, 4);

        // A permanent error is returned at once.
        let mut calls = 0;
        let e = retry_transient(
            "a test statement",
            std::time::Duration::from_secs(60),
            || {
                calls += 1;
                async { Err::<(), _>(sqlx::Error::RowNotFound) }
            },
        )
        .await
        .unwrap_err();
        assert!(matches!(e, sqlx::Error::RowNotFound));
        assert_eq!(calls, 1);

        // A transient one for longer than the limit is returned once the limit has passed.
        let started = tokio::time::Instant::now();
        let e = retry_transient(
            "a test statement",
            std::time::Duration::from_secs(30),
            || async { Err::<(), _>(sqlx::Error::PoolTimedOut) },
        )
        .await
        .unwrap_err();
        assert!(matches!(e, sqlx::Error::PoolTimedOut));
        let waited = started.elapsed();
        assert!(
            waited >= std::time::Duration::from_secs(30)
                && waited < std::time::Duration::from_secs(40),
            "{waited:?}"
        );
    }

    #[test]
    fn locked_rows_are_always_retried_missing_ones_a_bounded_number_of_times() {
        assert!(RowState::Locked.retry(1_000));
        assert!(RowState::Missing.retry(0));
        assert!(RowState::Missing.retry(MISSING_ROW_RECHECKS - 1));
        assert!(!RowState::Missing.retry(MISSING_ROW_RECHECKS));
        for settled in [RowState::Written, RowState::Current, RowState::Stale] {
            assert!(!settled.retry(0), "{settled:?}");
        }
    }
}
