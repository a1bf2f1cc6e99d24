//! No secret from the environment in `cdc-reader --help` (and `migrate --help`), in the refusal
//! of malformed `KAFKA_PROPERTIES`, or in the logs of a start-up failing on `DATABASE_URL`.

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
