//! Checks that a worker binary never prints a secret it was given through the environment:
//! not in `--help` (of the binary and of every subcommand), not in a refusal of a malformed
//! `KAFKA_PROPERTIES`, not in the log lines of a start-up that fails on the database URL, and
//! not in the debug-level logs of a worker running on real services.
//!
//! All but the last need no services: each run either renders help or ends on its own within
//! seconds.

use std::io::Read;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The marker planted in every secret-bearing variable; it must never be printed.
pub const SECRET: &str = "SECRET";

/// The environment variables that may carry a secret, with a fake secret in each: a password
/// in the database URL (twice: user info and query) and a SASL password in the librdkafka
/// properties.
pub fn secret_env() -> Vec<(&'static str, String)> {
    vec![
        (
            "DATABASE_URL",
            format!("postgres://app:{SECRET}pw@127.0.0.1:1/pipeline?password={SECRET}q"),
        ),
        (
            "KAFKA_PROPERTIES",
            format!("sasl.username={SECRET}user,sasl.password={SECRET}pw"),
        ),
    ]
}

/// Runs `binary args` with only `PATH` and `env` set, bounded by `timeout` (killed past it).
pub fn run(binary: &str, args: &[&str], env: &[(&str, String)], timeout: Duration) -> Output {
    let mut child = Command::new(binary)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("LOG_FORMAT", "json")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {binary}: {e}"));
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait().expect("waiting for the child") {
            Some(_) => break,
            None if Instant::now() >= deadline => {
                child.kill().ok();
                panic!("`{binary} {}` still runs after {timeout:?}", args.join(" "));
            }
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    if let Some(mut out) = child.stdout.take() {
        out.read_to_end(&mut stdout).ok();
    }
    if let Some(mut err) = child.stderr.take() {
        err.read_to_end(&mut stderr).ok();
    }
    Output {
        status: child.wait().expect("waiting for the child"),
        stdout,
        stderr,
    }
}

fn printed(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn assert_hidden(what: &str, output: &Output) {
    let text = printed(output);
    assert!(
        !text.contains(SECRET),
        "{what} printed a secret from the environment:\n{text}"
    );
}

/// The subcommands `binary --help` lists (without `help`).
pub fn subcommands(binary: &str) -> Vec<String> {
    let output = run(binary, &["--help"], &[], Duration::from_secs(20));
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.lines()
        .skip_while(|line| !line.starts_with("Commands:"))
        .skip(1)
        .take_while(|line| !line.trim().is_empty())
        .filter(|line| line.starts_with("  ") && !line.starts_with("    "))
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_owned)
        .collect()
}

/// `-h` and `--help` of the binary and of each of its subcommands (which must include
/// `expected`), with every secret-bearing variable set: each succeeds, names the variables it
/// reads and prints none of their values.
pub fn assert_help_hides_secrets(binary: &str, expected: &[&str]) {
    let env = secret_env();
    let found = subcommands(binary);
    for name in expected {
        assert!(
            found.iter().any(|f| f == name),
            "{binary} --help does not list `{name}` (found {found:?})"
        );
    }
    let mut paths: Vec<Vec<&str>> = vec![Vec::new()];
    paths.extend(found.iter().map(|name| vec![name.as_str()]));
    for path in paths {
        for flag in ["-h", "--help"] {
            let mut args = path.clone();
            args.push(flag);
            let what = format!("`{binary} {}`", args.join(" "));
            let output = run(binary, &args, &env, Duration::from_secs(20));
            assert!(output.status.success(), "{what} failed: {output:?}");
            let text = printed(&output);
            assert!(text.contains("Usage:"), "{what} printed no help");
            // clap wraps long help, possibly inside `[env: NAME]`.
            let flowing = text.split_whitespace().collect::<Vec<_>>().join(" ");
            for (flag, var) in [
                ("--database-url", "DATABASE_URL"),
                ("--kafka-property", "KAFKA_PROPERTIES"),
            ] {
                let listed = text.lines().any(|line| line.trim_start().starts_with(flag));
                assert!(
                    !listed || flowing.contains(&format!("[env: {var}]")),
                    "{what} shows {flag} without naming {var} (hide_env_values?):\n{text}"
                );
            }
            assert_hidden(&what, &output);
        }
    }
}

/// `binary args` (a command that reads the Kafka settings) refusing malformed, unknown or
/// invalid `KAFKA_PROPERTIES` items (exit 2, before anything connects) without repeating them.
pub fn assert_property_errors_hide_secrets(binary: &str, args: &[&str]) {
    let what = format!("`{binary} {}`", args.join(" "));
    for properties in [
        // A password with a comma: the env var splits it, the second piece is not key=value.
        format!("sasl.password=PART,{SECRET}"),
        format!("sasl.password=PART,{SECRET}=x"),
        format!("={SECRET}"),
        format!("sasl.pasword={SECRET}"),
        format!("security.protocol={SECRET}"),
        format!("message.max.bytes={SECRET}"),
    ] {
        let mut env = secret_env();
        env.retain(|(k, _)| *k != "KAFKA_PROPERTIES");
        env.push(("KAFKA_PROPERTIES", properties.clone()));
        env.push(("ASSETS_ROOT", std::env::temp_dir().display().to_string()));
        let output = run(binary, args, &env, Duration::from_secs(20));
        assert_eq!(
            output.status.code(),
            Some(2),
            "{what} with KAFKA_PROPERTIES={properties}: {output:?}"
        );
        assert!(
            printed(&output).contains("--kafka-property"),
            "{what} did not say which setting it refused: {output:?}"
        );
        assert_hidden(&format!("{what} refusing KAFKA_PROPERTIES"), &output);
    }
}

/// `binary args` (a command that connects to PostgreSQL) failing on a database URL it cannot
/// use (a bad port) and logging why without the URL's password.
pub fn assert_database_errors_hide_secrets(binary: &str, args: &[&str]) {
    let what = format!("`{binary} {}`", args.join(" "));
    let mut env = secret_env();
    env.retain(|(k, _)| *k != "DATABASE_URL");
    env.push((
        "DATABASE_URL",
        format!("postgres://app:{SECRET}pw@127.0.0.1:notaport/pipeline"),
    ));
    env.push(("ASSETS_ROOT", std::env::temp_dir().display().to_string()));
    env.push(("METRICS_ADDR", "127.0.0.1:0".to_owned()));
    let output = run(binary, args, &env, Duration::from_secs(30));
    assert!(!output.status.success(), "{what} accepted a bad URL");
    assert!(
        !output.stderr.is_empty(),
        "{what} logged nothing about the bad URL"
    );
    assert_hidden(&format!("{what} failing on DATABASE_URL"), &output);
}

/// A login role whose password carries [`SECRET`] (superuser and replication, as the test
/// cluster's own user), and the URL of `database_url`'s database as that role. Drop it with
/// [`drop_secret_role`] once nothing uses it.
pub async fn secret_role(database_url: &str) -> (String, String) {
    use sqlx::Connection;
    let role = super::unique_name("secret_role");
    let password = format!("{SECRET}pw");
    let mut admin = sqlx::PgConnection::connect(database_url)
        .await
        .expect("connect to the test database");
    sqlx::raw_sql(&format!(
        "CREATE ROLE {role} LOGIN SUPERUSER REPLICATION PASSWORD '{password}'"
    ))
    .execute(&mut admin)
    .await
    .expect("create the role");
    admin.close().await.ok();
    let mut url = url::Url::parse(database_url).expect("a database URL");
    url.set_username(&role).expect("a URL with a host");
    url.set_password(Some(&password))
        .expect("a URL with a host");
    (url.to_string(), role)
}

/// Drops a role [`secret_role`] created.
pub async fn drop_secret_role(database_url: &str, role: &str) {
    use sqlx::Connection;
    let mut admin = sqlx::PgConnection::connect(database_url)
        .await
        .expect("connect to the test database");
    let _ = sqlx::raw_sql(&format!("DROP ROLE IF EXISTS {role}"))
        .execute(&mut admin)
        .await;
}

/// `binary args` running as a service on real services, with the secret-bearing variables
/// set to values that work (`DATABASE_URL` = `database_url`, whose password carries the
/// marker: see [`secret_role`]; SASL properties a plaintext broker ignores) and every log at
/// `debug`: once its `/readyz` answers 200 it is stopped with SIGTERM, and nothing it logged
/// may contain them. `metrics_addr` is where the binary serves `/readyz`.
pub fn assert_service_logs_hide_secrets(
    binary: &str,
    args: &[&str],
    database_url: &str,
    env: &[(&str, String)],
    metrics_addr: &str,
) {
    let what = format!("`{binary} {}`", args.join(" "));
    assert!(
        database_url.contains(SECRET),
        "the database URL must carry the marker"
    );
    let mut child = Command::new(binary)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("LOG_FORMAT", "json")
        .env("RUST_LOG", "debug")
        .env("DATABASE_URL", database_url)
        .env(
            "KAFKA_PROPERTIES",
            format!("sasl.username={SECRET}user,sasl.password={SECRET}pw"),
        )
        .envs(env.iter().map(|(k, v)| (k, v)))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {binary}: {e}"));
    // Drained while it runs (a full pipe would block it).
    let mut stderr = child.stderr.take().expect("piped stderr");
    let reader = std::thread::spawn(move || {
        let mut text = Vec::new();
        stderr.read_to_end(&mut text).ok();
        text
    });
    let deadline = Instant::now() + Duration::from_secs(90);
    let ready = loop {
        if readyz_ok(metrics_addr) {
            break true;
        }
        if Instant::now() >= deadline || child.try_wait().ok().flatten().is_some() {
            break false;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let stop = Instant::now() + Duration::from_secs(60);
    while child.try_wait().ok().flatten().is_none() && Instant::now() < stop {
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().ok();
    let status = child.wait().expect("waiting for the child");
    let mut stdout = Vec::new();
    if let Some(mut out) = child.stdout.take() {
        out.read_to_end(&mut stdout).ok();
    }
    let output = Output {
        status,
        stdout,
        stderr: reader.join().unwrap_or_default(),
    };
    assert!(ready, "{what} never became ready: {}", printed(&output));
    assert!(
        output.stderr.len() > 1000,
        "{what} logged almost nothing at debug level: {}",
        printed(&output)
    );
    assert_hidden(&format!("{what} running at debug level"), &output);
}

/// Whether `GET /readyz` on `addr` answers 200.
fn readyz_ok(addr: &str) -> bool {
    use std::io::Write;
    let Ok(mut stream) = std::net::TcpStream::connect(addr) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    if stream
        .write_all(b"GET /readyz HTTP/1.0\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut reply = String::new();
    let _ = stream.read_to_string(&mut reply);
    reply.starts_with("HTTP/1.1 200") || reply.starts_with("HTTP/1.0 200")
}
