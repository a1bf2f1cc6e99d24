//! The administrative subcommands every worker binary offers: `migrate` and `create-topics`.

use clap::{Args, Subcommand};

use crate::config::{KafkaArgs, PostgresArgs};

/// Subcommands shared by all workers (flattened into each binary's own command enum).
#[derive(Subcommand, Debug)]
pub enum AdminCommand {
    /// Apply the database migrations (idempotent) and exit.
    Migrate(MigrateArgs),
    /// Create the pipeline's Kafka topics that do not exist yet and exit.
    CreateTopics(CreateTopicsArgs),
}

/// Arguments of `migrate`.
#[derive(Args, Debug)]
pub struct MigrateArgs {
    #[command(flatten)]
    pub postgres: PostgresArgs,
}

/// Arguments of `create-topics`.
#[derive(Args, Debug)]
pub struct CreateTopicsArgs {
    #[command(flatten)]
    pub kafka: KafkaArgs,
    /// Partitions of each topic: the ceiling on consumer-group parallelism.
    #[arg(long, env = "TOPIC_PARTITIONS", default_value_t = 6)]
    pub partitions: i32,
}

impl AdminCommand {
    /// Runs the subcommand.
    pub async fn run(self, application_name: &str) -> anyhow::Result<()> {
        match self {
            AdminCommand::Migrate(args) => {
                let pool = crate::db::connect(&args.postgres, application_name).await?;
                crate::db::migrate(&pool).await?;
                let applied: i64 =
                    sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE success")
                        .fetch_one(&pool)
                        .await?;
                tracing::info!(applied, "schema is current");
                pool.close().await;
            }
            AdminCommand::CreateTopics(args) => {
                let topics =
                    crate::topics::pipeline_topics(&args.kafka.topic_prefix, args.partitions);
                crate::kafka::ensure_topics(&args.kafka, &topics).await?;
                tracing::info!(count = topics.len(), "topics present");
            }
        }
        Ok(())
    }
}
