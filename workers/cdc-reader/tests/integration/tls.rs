//! The replication connection over TLS, with libpq's `sslmode` meanings.

use std::time::Duration;

use cdc_reader::connection::{ConnectParams, ReplicationConnection};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, SanType};
use shared::testkit::unique_name;

use crate::support::*;

/// A certificate authority and, signed by it, a server certificate for `localhost` and
/// 127.0.0.1. Returns (CA PEM, server certificate PEM, server key PEM).
fn certificates() -> (String, String, String) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "pipeline test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let server_key = KeyPair::generate().unwrap();
    let mut server_params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    server_params
        .subject_alt_names
        .push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
    let server = server_params.signed_by(&server_key, &ca, &ca_key).unwrap();
    (ca.pem(), server.pem(), server_key.serialize_pem())
}

async fn replication_connect(url: &str) -> Result<ReplicationConnection, String> {
    let params = ConnectParams::from_url(url, "tls-test").map_err(|e| e.to_string())?;
    ReplicationConnection::connect(&params, Duration::from_secs(10))
        .await
        .map_err(|e| {
            assert!(
                !e.is_retryable(),
                "a TLS refusal is not worth retrying: {e}"
            );
            e.to_string()
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replication_over_tls_checks_the_server() {
    let env = TestEnv::get();
    let cluster = PrivateCluster::start();
    let (ca, cert, key) = certificates();
    cluster.enable_tls(&cert, &key);
    let ca_file = cluster.dir.join("ca.pem");
    std::fs::write(&ca_file, &ca).unwrap();
    let (other_ca, _, _) = certificates();
    let other_ca_file = cluster.dir.join("other-ca.pem");
    std::fs::write(&other_ca_file, &other_ca).unwrap();
    let pool = cluster.database("cdc").await;
    let base = cluster.url("cdc");
    let ca_path = ca_file.to_string_lossy();

    // verify-full against the right root, by address and by name.
    let full = format!("{base}?sslmode=verify-full&sslrootcert={ca_path}");
    replication_connect(&full).await.expect("verify-full");
    let by_name = full.replace("127.0.0.1", "localhost");
    replication_connect(&by_name)
        .await
        .expect("verify-full by name");
    // An untrusted certificate is refused.
    let wrong = format!(
        "{base}?sslmode=verify-full&sslrootcert={}",
        other_ca_file.to_string_lossy()
    );
    let error = replication_connect(&wrong)
        .await
        .expect_err("untrusted CA refused");
    assert!(
        error.contains("certificate") || error.contains("Certificate"),
        "{error}"
    );
    let error = replication_connect(&format!(
        "{base}?sslmode=verify-ca&sslrootcert={}",
        other_ca_file.to_string_lossy()
    ))
    .await
    .expect_err("verify-ca with an untrusted CA refused");
    assert!(error.contains("TLS"), "{error}");
    // require: encrypted without checking; a server without TLS is refused.
    replication_connect(&format!("{base}?sslmode=require"))
        .await
        .expect("require");
    let plain_server = format!("{}?sslmode=require", env.database_url);
    let error = replication_connect(&plain_server)
        .await
        .expect_err("require refused by a server without TLS");
    assert!(error.contains("does not accept TLS"), "{error}");

    // The reader streams over it (its pool too), and the walsender's connection is TLS.
    let slot = unique_name("cdc_slot");
    let prefix = unique_name("cdct");
    let reader = InProcess::start(config(
        &full,
        &env.kafka_brokers,
        &slot,
        &prefix,
        &["--snapshot", "never"],
    ));
    wait_streaming(
        &pool,
        &slot,
        "slot streaming over TLS",
        Duration::from_secs(30),
    )
    .await;
    let ssl: bool = sqlx::query_scalar(
        "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_replication r ON r.pid = s.pid \
         JOIN pg_replication_slots l ON l.active_pid = r.pid WHERE l.slot_name = $1",
    )
    .bind(&slot)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(ssl, "the replication connection is not encrypted");
    insert_profiles(&pool, 10).await;
    let mut read = TopicReader::new(&env.kafka_brokers, &topics(&prefix)[..1]).await;
    read.read_until("10 profiles", Duration::from_secs(60), |r| r.len() >= 10)
        .await;
    reader.stop().await;
    drop_slot(&pool, &slot).await;
}
