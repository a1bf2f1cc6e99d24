//! Checks that a worker binary never prints a secret it was given through the environment:
//! not in `--help` (of the binary and of every subcommand), not in a refusal of a malformed
//! `KAFKA_PROPERTIES`, not in the log lines of a start-up that fails on the database URL.
//!
//! The checks need no services: each run either renders help or ends on its own within
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
            for (flag, var) in [
                ("--database-url", "DATABASE_URL"),
                ("--kafka-property", "KAFKA_PROPERTIES"),
            ] {
                let listed = text.lines().any(|line| line.trim_start().starts_with(flag));
                assert!(
                    !listed || text.contains(&format!("[env: {var}]")),
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
