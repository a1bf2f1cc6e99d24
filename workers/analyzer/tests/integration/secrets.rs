//! No secret from the environment in `analyzer --help` or any subcommand's, in the refusal of
//! malformed `KAFKA_PROPERTIES`, or in the logs of a start-up failing on `DATABASE_URL`.

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
