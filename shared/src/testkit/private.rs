//! Services private to one test, for the tests that stop, restart or freeze them: a
//! PostgreSQL cluster, a Tansu broker (memory or S3 storage) and an S3 server. They are
//! started from the binaries `scripts/test` provisions (`PIPELINE_TEST_PG_BINDIR`,
//! `PIPELINE_TEST_TANSU_BIN`, `PIPELINE_TEST_S3_SERVER`) and stopped when dropped.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command as StdCommand, Stdio};
use std::time::Duration;

use sqlx::{Connection, PgConnection, PgPool};

use super::unique_name;

/// A port free at the time of the call.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// A free port below the kernel's ephemeral range, for a server that restarts on the same
/// port. While a server on an ephemeral port is down, a client reconnecting to it can connect
/// to itself (TCP simultaneous open: its own source port is the destination), which then holds
/// the port, so the server cannot bind it again and the client talks to itself.
pub fn free_server_port() -> u16 {
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let span = low.saturating_sub(20_000).max(1);
    let start = (std::process::id() as u16
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos() as u16))
        % span;
    (0..span)
        .map(|i| 20_000 + (start + i) % span)
        .find(|port| TcpListener::bind(("127.0.0.1", *port)).is_ok())
        .expect("a free port below the ephemeral range")
}

/// Runs a command as the `postgres` OS user when the tests run as root (PostgreSQL refuses
/// to run as root).
fn as_postgres(program: &str, args: &[&str]) -> StdCommand {
    if running_as_root() {
        let mut cmd = StdCommand::new("runuser");
        cmd.args(["-u", "postgres", "--", program]).args(args);
        cmd
    } else {
        let mut cmd = StdCommand::new(program);
        cmd.args(args);
        cmd
    }
}

fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

/// A PostgreSQL cluster private to one test (it restarts it).
#[derive(Debug)]
pub struct PrivateCluster {
    pub dir: PathBuf,
    pub port: u16,
    bindir: String,
}

impl PrivateCluster {
    pub fn start() -> Self {
        let bindir = std::env::var("PIPELINE_TEST_PG_BINDIR")
            .expect("PIPELINE_TEST_PG_BINDIR is not set: run the tests with scripts/test");
        let dir = std::env::temp_dir().join(unique_name("cdc_pg"));
        std::fs::create_dir_all(&dir).expect("cluster dir");
        let _ = StdCommand::new("chown")
            .args(["postgres", &dir.to_string_lossy()])
            .status();
        let data = dir.join("data");
        let port = free_server_port();
        let initdb = format!("{bindir}/initdb");
        let ok = as_postgres(
            &initdb,
            &[
                "-D",
                &data.to_string_lossy(),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
            ],
        )
        .stdout(Stdio::null())
        .status()
        .expect("initdb");
        assert!(ok.success(), "initdb failed");
        let conf = format!(
            "port = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\nwal_level = logical\n\
             max_replication_slots = 10\nmax_wal_senders = 10\nfsync = off\nshared_buffers = 32MB\n",
            dir.to_string_lossy()
        );
        let conf_path = data.join("postgresql.conf");
        let mut existing = std::fs::read_to_string(&conf_path).expect("postgresql.conf");
        existing.push_str(&conf);
        std::fs::write(&conf_path, existing).expect("write postgresql.conf");
        let cluster = Self { dir, port, bindir };
        cluster.pg_ctl(&[
            "start",
            "-w",
            "-l",
            &cluster.dir.join("log").to_string_lossy(),
        ]);
        cluster
    }

    fn pg_ctl(&self, args: &[&str]) {
        let pg_ctl = format!("{}/pg_ctl", self.bindir);
        let data = self.dir.join("data");
        let mut full = vec!["-D", data.to_str().expect("path")];
        full.extend_from_slice(args);
        let ok = as_postgres(&pg_ctl, &full)
            .stdout(Stdio::null())
            .status()
            .expect("pg_ctl");
        assert!(ok.success(), "pg_ctl {args:?} failed");
    }

    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// A migrated database in this cluster.
    pub async fn database(&self, name: &str) -> PgPool {
        let mut admin = PgConnection::connect(&self.url("postgres"))
            .await
            .expect("connect private cluster");
        sqlx::query(&format!("CREATE DATABASE \"{name}\""))
            .execute(&mut admin)
            .await
            .expect("create database");
        let pool = PgPool::connect(&self.url(name)).await.expect("connect");
        crate::db::migrate(&pool).await.expect("migrate");
        pool
    }

    /// Turns TLS on with this certificate chain and key (PEM), then restarts.
    pub fn enable_tls(&self, cert_pem: &str, key_pem: &str) {
        let data = self.dir.join("data");
        let cert = data.join("server.crt");
        let key = data.join("server.key");
        std::fs::write(&cert, cert_pem).expect("write server.crt");
        std::fs::write(&key, key_pem).expect("write server.key");
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600))
                .expect("chmod server.key");
        }
        if running_as_root() {
            for file in [&cert, &key] {
                let ok = StdCommand::new("chown")
                    .args(["postgres", &file.to_string_lossy()])
                    .status()
                    .expect("chown");
                assert!(ok.success());
            }
        }
        let conf_path = data.join("postgresql.conf");
        let mut conf = std::fs::read_to_string(&conf_path).expect("postgresql.conf");
        conf.push_str("ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n");
        std::fs::write(&conf_path, conf).expect("write postgresql.conf");
        self.restart();
    }

    /// Appends settings to `postgresql.conf` and reloads them (for settings a reload applies).
    pub fn configure(&self, settings: &str) {
        let conf_path = self.dir.join("data").join("postgresql.conf");
        let mut conf = std::fs::read_to_string(&conf_path).expect("postgresql.conf");
        conf.push('\n');
        conf.push_str(settings);
        conf.push('\n');
        std::fs::write(&conf_path, conf).expect("write postgresql.conf");
        self.pg_ctl(&["reload"]);
    }

    /// Stops the cluster (fast shutdown: sessions are cut), leaving it down.
    pub fn stop(&self) {
        self.pg_ctl(&["stop", "-m", "fast", "-w"]);
    }

    /// Starts a stopped cluster again.
    pub fn start_again(&self) {
        self.pg_ctl(&["start", "-w", "-l", &self.dir.join("log").to_string_lossy()]);
    }

    pub fn restart(&self) {
        self.pg_ctl(&[
            "restart",
            "-m",
            "fast",
            "-w",
            "-l",
            &self.dir.join("log").to_string_lossy(),
        ]);
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        let pg_ctl = format!("{}/pg_ctl", self.bindir);
        let data = self.dir.join("data");
        let _ = as_postgres(
            &pg_ctl,
            &[
                "-D",
                &data.to_string_lossy(),
                "stop",
                "-m",
                "immediate",
                "-w",
            ],
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// An S3-compatible server private to one test (moto's S3 behind `scripts/lib/s3_server.py`,
/// which applies one request at a time so conditional writes are atomic, as in S3; installed by
/// `scripts/test`), holding a bucket `tansu` so a broker's log outlives the broker's restarts.
#[derive(Debug)]
pub struct PrivateS3 {
    pub port: u16,
    child: Child,
}

impl PrivateS3 {
    pub fn start() -> Self {
        let bin = std::env::var("PIPELINE_TEST_S3_SERVER")
            .expect("PIPELINE_TEST_S3_SERVER is not set: run the tests with scripts/test");
        let port = free_port();
        let child = StdCommand::new(bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn the S3 server");
        let server = Self { port, child };
        // Create the bucket once the server answers (moto accepts unsigned requests).
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) {
                use std::io::{Read, Write};
                let request = format!(
                    "PUT /tansu HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
                if stream.write_all(request.as_bytes()).is_ok() {
                    let mut response = String::new();
                    let _ = stream.read_to_string(&mut response);
                    if response.starts_with("HTTP/1.1 200") || response.starts_with("HTTP/1.0 200")
                    {
                        return server;
                    }
                }
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the S3 server did not come up"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for PrivateS3 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A Tansu broker private to one test (it restarts it). With memory storage a restart empties
/// it; on S3 storage ([`PrivateBroker::start_on_s3`]) its log survives restarts.
#[derive(Debug)]
pub struct PrivateBroker {
    pub port: u16,
    child: Option<Child>,
    storage: String,
    env: Vec<(String, String)>,
    /// The port clients are told to use (a proxy's), when not `port`.
    advertised: Option<u16>,
}

impl PrivateBroker {
    pub fn start() -> Self {
        let mut broker = Self {
            port: free_server_port(),
            child: None,
            storage: "memory://tansu/".to_owned(),
            env: Vec::new(),
            advertised: None,
        };
        broker.launch();
        broker
    }

    /// A broker that tells clients to reach it through `proxy` (whose upstream is this
    /// broker's port, [`DelayProxy::start`]).
    pub fn start_behind(proxy: &DelayProxy) -> Self {
        let mut broker = Self {
            port: proxy.upstream,
            child: None,
            storage: "memory://tansu/".to_owned(),
            env: Vec::new(),
            advertised: Some(proxy.port),
        };
        broker.launch();
        broker
    }

    /// A broker whose topics live in the bucket of `s3`.
    pub fn start_on_s3(s3: &PrivateS3) -> Self {
        let endpoint = format!("http://127.0.0.1:{}", s3.port);
        let mut broker = Self {
            port: free_server_port(),
            child: None,
            storage: "s3://tansu/".to_owned(),
            advertised: None,
            env: [
                ("AWS_ACCESS_KEY_ID", "test"),
                ("AWS_SECRET_ACCESS_KEY", "test"),
                ("AWS_DEFAULT_REGION", "us-east-1"),
                ("AWS_ALLOW_HTTP", "true"),
                ("AWS_ENDPOINT", endpoint.as_str()),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        };
        broker.launch();
        broker
    }

    /// Stops the broker (SIGTERM, as a service manager restarting it would) and leaves it down.
    pub fn stop(&mut self) {
        self.wake();
        if let Some(mut child) = self.child.take() {
            let _ = StdCommand::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
    }

    /// Starts the broker again on the same port and storage. The port may stay in TIME_WAIT
    /// for up to a minute after a stop (Tansu does not set `SO_REUSEADDR`): the launch is
    /// retried until the broker stays up and answers.
    pub fn relaunch(&mut self) {
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        loop {
            self.launch();
            let up = (0..30).any(|_| {
                std::thread::sleep(Duration::from_millis(100));
                std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok()
            });
            let exited = self
                .child
                .as_mut()
                .is_some_and(|c| c.try_wait().ok().flatten().is_some());
            if up && !exited {
                return;
            }
            self.kill();
            assert!(
                std::time::Instant::now() < deadline,
                "the broker did not come back on port {}",
                self.port
            );
            std::thread::sleep(Duration::from_secs(2));
        }
    }

    fn launch(&mut self) {
        let bin = std::env::var("PIPELINE_TEST_TANSU_BIN")
            .expect("PIPELINE_TEST_TANSU_BIN is not set: run the tests with scripts/test");
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let advertised = format!("tcp://127.0.0.1:{}", self.advertised.unwrap_or(self.port));
        let child = StdCommand::new(bin)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &advertised,
                "--storage-engine",
                &self.storage,
            ])
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn tansu");
        self.child = Some(child);
    }

    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.advertised.unwrap_or(self.port))
    }

    fn kill(&mut self) {
        self.wake();
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Freezes the broker process (it stops answering, connections stay open).
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Lets a paused broker run again.
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    /// Lets the broker run again if it is paused, before it is stopped or killed. Quietly: the
    /// process may have exited already (a launch that failed is killed this way too).
    fn wake(&self) {
        self.send_signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        assert!(self.send_signal(signal), "kill {signal} failed");
    }

    /// Sends `signal` to the broker process, if there is one; whether `kill` succeeded.
    fn send_signal(&self, signal: &str) -> bool {
        self.child.as_ref().is_none_or(|child| {
            StdCommand::new("kill")
                .args([signal, &child.id().to_string()])
                .stderr(Stdio::null())
                .status()
                .expect("kill")
                .success()
        })
    }
}

impl Drop for PrivateBroker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A TCP proxy in front of a broker that can slow down the clients already connected:
/// [`DelayProxy::slow_existing`] makes every byte those connections send towards the broker
/// arrive a fixed time late (in order, at full throughput), while connections opened later go
/// straight through. This is a deposed leader on a slow network path, whose writes can
/// overtake its successor's if nothing fences them.
#[derive(Debug)]
pub struct DelayProxy {
    /// Where clients connect.
    pub port: u16,
    /// Where the broker listens.
    pub upstream: u16,
    /// The delay (ms) of each connection accepted so far.
    delays: std::sync::Arc<std::sync::Mutex<Vec<std::sync::Arc<std::sync::atomic::AtomicU64>>>>,
    /// Chunks read from clients and not yet written to the broker.
    queued: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl DelayProxy {
    /// Listens on a free port for a broker that is to listen on another one (`upstream`).
    pub async fn start() -> Self {
        use std::sync::atomic::AtomicU64;
        use std::sync::Arc;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        let port = listener.local_addr().expect("addr").port();
        let upstream = free_server_port();
        let delays: Arc<std::sync::Mutex<Vec<Arc<AtomicU64>>>> = Arc::default();
        let accepted = Arc::clone(&delays);
        let queued = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = Arc::clone(&queued);
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await
                else {
                    continue;
                };
                let delay = Arc::new(AtomicU64::new(0));
                accepted.lock().expect("delays").push(Arc::clone(&delay));
                let (mut client_read, mut client_write) = client.into_split();
                let (mut server_read, mut server_write) = server.into_split();
                let counter = Arc::clone(&counter);
                tokio::spawn(async move {
                    let (tx, mut rx) =
                        tokio::sync::mpsc::unbounded_channel::<(tokio::time::Instant, Vec<u8>)>();
                    let written = Arc::clone(&counter);
                    let writer = tokio::spawn(async move {
                        while let Some((due, chunk)) = rx.recv().await {
                            tokio::time::sleep_until(due).await;
                            let sent = server_write.write_all(&chunk).await;
                            written.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                            if sent.is_err() {
                                break;
                            }
                        }
                        // Whatever is left is dropped with the connection.
                        while rx.recv().await.is_some() {
                            written.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                        }
                    });
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        match client_read.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => {
                                let late = std::time::Duration::from_millis(
                                    delay.load(std::sync::atomic::Ordering::SeqCst),
                                );
                                let due = tokio::time::Instant::now() + late;
                                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                                if tx.send((due, buf[..n].to_vec())).is_err() {
                                    counter.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                                    break;
                                }
                            }
                        }
                    }
                    // What was read still goes through, late, after the client went away.
                    drop(tx);
                    let _ = writer.await;
                });
                tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
                });
            }
        });
        Self {
            port,
            upstream,
            delays,
            queued,
            task,
        }
    }

    /// Chunks still held back (0 once everything slowed has reached the broker).
    pub fn queued(&self) -> usize {
        self.queued.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// From now on, what the connections open at this moment send reaches the broker `delay`
    /// late; connections opened later are not slowed.
    pub fn slow_existing(&self, delay: Duration) {
        let millis = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        for d in self.delays.lock().expect("delays").iter() {
            d.store(millis, std::sync::atomic::Ordering::SeqCst);
        }
    }
}

impl Drop for DelayProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A spawned process killed when dropped, so that a failing test leaves no worker behind.
#[derive(Debug)]
pub struct KillOnDrop(pub Child);

impl std::ops::Deref for KillOnDrop {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for KillOnDrop {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
