//! Whether the captured tables can be captured: every change event is keyed by its row's
//! primary key (compacted topics refuse null keys, and consumers need one to keep the latest
//! state per row), so a table must have one — or `REPLICA IDENTITY FULL`, and then its events
//! are keyed by all columns. A table that has neither is refused at start-up with the fix,
//! instead of the reader failing on its first change and crash-looping while WAL piles up.

use sqlx::PgPool;

use crate::config::TableName;
use crate::error::Error;

/// How a captured table's events are keyed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Keyed {
    /// By the primary-key columns.
    PrimaryKey,
    /// By every column (no primary key, `REPLICA IDENTITY FULL`): an update is published as
    /// a delete of the old row's key and a create of the new one.
    AllColumns,
}

/// Checks every table in `tables`; an error names each table that cannot be captured, and why.
pub async fn check(pool: &PgPool, tables: &[TableName]) -> Result<Vec<(TableName, Keyed)>, Error> {
    let mut keyed = Vec::with_capacity(tables.len());
    let mut problems = Vec::new();
    for table in tables {
        let row: Option<(String, bool)> = sqlx::query_as(
            "SELECT c.relreplident::text, \
                    EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary) \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')",
        )
        .bind(&table.schema)
        .bind(&table.table)
        .fetch_optional(pool)
        .await
        .map_err(Error::db("reading the captured tables"))?;
        match row {
            None => problems.push(format!("table {table} does not exist")),
            Some((_, true)) => keyed.push((table.clone(), Keyed::PrimaryKey)),
            Some((identity, false)) if identity == "f" => {
                tracing::info!(%table, "no primary key; REPLICA IDENTITY FULL: events are keyed by all columns");
                keyed.push((table.clone(), Keyed::AllColumns));
            }
            Some(_) => problems.push(format!(
                "table {table} has no primary key, so its change events cannot be keyed: add one \
                 (ALTER TABLE {q} ADD PRIMARY KEY (…)), or key them by all columns with \
                 ALTER TABLE {q} REPLICA IDENTITY FULL",
                q = table.quoted()
            )),
        }
    }
    if problems.is_empty() {
        Ok(keyed)
    } else {
        Err(Error::Config(problems.join("; ")))
    }
}
