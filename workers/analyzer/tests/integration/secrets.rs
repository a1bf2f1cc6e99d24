//! No secret from the environment in `analyzer --help` or any subcommand's, in the refusal of
//! malformed `KAFKA_PROPERTIES`, in the logs of a start-up failing on `DATABASE_URL`, or in
//! the debug-level logs of a running analyzer.

use shared::testkit::secrets;

const BIN: &str = env!("CARGO_BIN_EXE_analyzer");

#[test]
fn help_hides_secrets() {
    secrets::assert_help_hides_secrets(BIN, &["run", "chart", "migrate", "create-topics"]);
}

#[test]
fn errors_hide_secrets() {
    secrets::assert_property_errors_hide_secrets(BIN, &["run"]);
    secrets::assert_property_errors_hide_secrets(BIN, &["create-topics"]);
    secrets::assert_database_errors_hide_secrets(BIN, &["run"]);
    secrets::assert_database_errors_hide_secrets(BIN, &["migrate"]);
}

/// A running analyzer, logging at debug level, prints neither the database password nor the
/// SASL properties it was given.
#[tokio::test]
async fn a_running_analyzer_logs_no_secret() {
    let env = shared::testkit::TestEnv::get();
    let db = env.database("secrets").await;
    let prefix = shared::testkit::unique_name("t");
    shared::kafka::ensure_topics(&env.kafka(&prefix), &crate::test_topics(&prefix))
        .await
        .unwrap();
    let mut args = crate::analyzer_args(&env, &db.url, &prefix, &shared::testkit::unique_name("g"));
    // The URL comes from DATABASE_URL, with a password in it.
    let at = args.iter().position(|a| a == "--database-url").unwrap();
    args.drain(at..at + 2);
    let addr = format!("127.0.0.1:{}", crate::pipeline::free_port());
    args.extend(["--metrics-addr".to_owned(), addr.clone()]);
    args.insert(0, "run".to_owned());
    let (url, role) = secrets::secret_role(&db.url).await;
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        secrets::assert_service_logs_hide_secrets(BIN, &args, &url, &[], &addr)
    })
    .await
    .unwrap();
    secrets::drop_secret_role(&db.url, &role).await;
    db.drop_database().await;
}
