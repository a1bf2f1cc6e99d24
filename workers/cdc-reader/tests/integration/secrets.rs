//! No secret from the environment in `cdc-reader --help` (and `migrate --help`), in the refusal
//! of malformed `KAFKA_PROPERTIES`, in the logs of a start-up failing on `DATABASE_URL`, or in
//! the debug-level logs of a streaming reader.

use shared::testkit::secrets;

const BIN: &str = env!("CARGO_BIN_EXE_cdc-reader");

#[test]
fn help_hides_secrets() {
    secrets::assert_help_hides_secrets(BIN, &["migrate"]);
}

#[test]
fn errors_hide_secrets() {
    secrets::assert_property_errors_hide_secrets(BIN, &[]);
    secrets::assert_database_errors_hide_secrets(BIN, &[]);
    secrets::assert_database_errors_hide_secrets(BIN, &["migrate"]);
}

/// A streaming reader, logging at debug level, prints neither the database password (on its
/// replication connection too) nor the SASL properties it was given.
#[tokio::test]
async fn a_streaming_reader_logs_no_secret() {
    let env = shared::testkit::TestEnv::get();
    let db = env.database("secrets").await;
    let slot = shared::testkit::unique_name("cdc_slot");
    let prefix = shared::testkit::unique_name("cdct");
    let addr = format!("127.0.0.1:{}", shared::testkit::private::free_port());
    let args: Vec<String> = [
        "--kafka-brokers",
        &env.kafka_brokers,
        "--topic-prefix",
        &prefix,
        "--slot",
        &slot,
        "--topic-partitions",
        "3",
        "--metrics-addr",
        &addr,
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    let (url, role) = secrets::secret_role(&db.url).await;
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        secrets::assert_service_logs_hide_secrets(BIN, &args, &url, &[], &addr)
    })
    .await
    .unwrap();
    crate::support::drop_slot(&db.pool, &slot).await;
    secrets::drop_secret_role(&db.url, &role).await;
    db.drop_database().await;
}
