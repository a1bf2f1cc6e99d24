//! The reference tables (`ganji_metadata`, `ganji_interaction`) read from the database at start
//! and checked against the tables compiled into the engine.
//!
//! The database is what users query and join against; the engine must agree with it, or its
//! results would name groups and elements the database does not know. A mismatch stops the
//! worker at start with the differing rows named.

use std::collections::BTreeSet;

use saju::tables::{GANJI, INTERACTION_GROUPS};
use sqlx::PgPool;

/// A mismatch between the database and the engine.
#[derive(Debug, thiserror::Error)]
pub enum ReferenceError {
    /// Reading the tables failed.
    #[error("cannot read the reference tables")]
    Read(#[source] sqlx::Error),
    /// The rows differ.
    #[error("reference table {table} differs from the engine's: only in the database {only_db:?}, only in the engine {only_engine:?}")]
    Differs {
        /// Which table.
        table: &'static str,
        /// Rows the engine lacks.
        only_db: Vec<String>,
        /// Rows the database lacks.
        only_engine: Vec<String>,
    },
}

/// Reads both tables and compares them with the engine's; returns the number of rows checked.
pub async fn verify(pool: &PgPool) -> Result<usize, ReferenceError> {
    let ganji: Vec<(i16, String, String, String, String, String)> = sqlx::query_as(
        "SELECT code, name_ko::text, name_hani::text, type, element::text, yin_yang::text FROM ganji_metadata",
    )
    .fetch_all(pool)
    .await
    .map_err(ReferenceError::Read)?;
    let db: BTreeSet<String> = ganji
        .iter()
        .map(|(code, ko, hani, kind, element, yy)| {
            format!("{code}:{ko}:{hani}:{kind}:{element}:{yy}")
        })
        .collect();
    let engine: BTreeSet<String> = GANJI
        .iter()
        .map(|g| {
            format!(
                "{}:{}:{}:{}:{}:{}",
                g.code,
                g.name_ko,
                g.name_hani,
                g.kind.name_ko(),
                g.element.name_ko(),
                g.yin_yang.name_ko()
            )
        })
        .collect();
    compare("ganji_metadata", &db, &engine)?;

    let members: Vec<(i16, i32)> = sqlx::query_as("SELECT code, group_id FROM ganji_interaction")
        .fetch_all(pool)
        .await
        .map_err(ReferenceError::Read)?;
    let db_members: BTreeSet<String> = members
        .iter()
        .map(|(code, group)| format!("{group}:{code}"))
        .collect();
    let engine_members: BTreeSet<String> = INTERACTION_GROUPS
        .iter()
        .flat_map(|g| {
            g.members
                .iter()
                .map(move |code| format!("{}:{}", g.id, code))
        })
        .collect();
    compare("ganji_interaction", &db_members, &engine_members)?;
    Ok(db.len() + db_members.len())
}

fn compare(
    table: &'static str,
    db: &BTreeSet<String>,
    engine: &BTreeSet<String>,
) -> Result<(), ReferenceError> {
    if db == engine {
        return Ok(());
    }
    Err(ReferenceError::Differs {
        table,
        only_db: db.difference(engine).cloned().collect(),
        only_engine: engine.difference(db).cloned().collect(),
    })
}
