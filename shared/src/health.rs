//! The HTTP endpoints every process exposes: `/metrics` (Prometheus text format), `/healthz`
//! (liveness: the process serves requests) and `/readyz` (readiness: every component the worker
//! registered reports healthy, with a JSON body naming each).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use prometheus::{Encoder, Registry, TextEncoder};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::shutdown::Shutdown;

/// Creates the process's metric registry, with the standard process collector (CPU, RSS, open
/// files) and a `<namespace>_build_info` gauge carrying the version as a label.
pub fn new_registry(namespace: &str) -> Registry {
    let registry = Registry::new();
    #[cfg(target_os = "linux")]
    {
        let process = prometheus::process_collector::ProcessCollector::for_self();
        // Registering a fresh collector in a fresh registry cannot collide.
        let _ = registry.register(Box::new(process));
    }
    if let Ok(info) = prometheus::IntGaugeVec::new(
        prometheus::Opts::new(
            format!("{namespace}_build_info"),
            "Build information; always 1.",
        ),
        &["version"],
    ) {
        info.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        let _ = registry.register(Box::new(info));
    }
    registry
}

/// Readiness of the worker's components (database, broker, replication stream…).
///
/// Components start not ready; the worker marks each as it connects and again when it loses
/// it. `/readyz` answers 200 only when every registered component is ready.
#[derive(Clone, Debug, Default)]
pub struct Health {
    components: Arc<Mutex<BTreeMap<&'static str, Status>>>,
}

#[derive(Clone, Debug)]
struct Status {
    ready: bool,
    detail: String,
}

impl Health {
    /// An empty set of components (ready, since nothing is pending).
    pub fn new() -> Self {
        Self::default()
    }

    /// Records the state of one component. `detail` is shown on `/readyz`; it must not
    /// contain secrets.
    pub fn set(&self, component: &'static str, ready: bool, detail: impl Into<String>) {
        let mut map = self.components.lock().unwrap_or_else(|p| p.into_inner());
        map.insert(
            component,
            Status {
                ready,
                detail: detail.into(),
            },
        );
    }

    /// Whether every component is ready.
    pub fn is_ready(&self) -> bool {
        let map = self.components.lock().unwrap_or_else(|p| p.into_inner());
        map.values().all(|s| s.ready)
    }

    fn report(&self) -> (bool, serde_json::Value) {
        let map = self.components.lock().unwrap_or_else(|p| p.into_inner());
        let ready = map.values().all(|s| s.ready);
        let components: serde_json::Map<String, serde_json::Value> = map
            .iter()
            .map(|(name, s)| {
                (
                    (*name).to_owned(),
                    serde_json::json!({ "ready": s.ready, "detail": s.detail }),
                )
            })
            .collect();
        (
            ready,
            serde_json::json!({ "ready": ready, "components": components }),
        )
    }
}

#[derive(Clone)]
struct AppState {
    registry: Registry,
    health: Health,
}

/// Binds `addr` and serves the endpoints until `shutdown`. Binding happens before this returns,
/// so a port conflict is reported at start-up, not later.
pub async fn serve(
    addr: SocketAddr,
    registry: Registry,
    health: Health,
    shutdown: Shutdown,
) -> std::io::Result<(SocketAddr, JoinHandle<()>)> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(AppState { registry, health });
    let handle = tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "metrics server failed");
        }
    });
    tracing::info!(addr = %bound, "serving /metrics, /healthz and /readyz");
    Ok((bound, handle))
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let encoder = TextEncoder::new();
    let mut body = Vec::with_capacity(16 * 1024);
    match encoder.encode(&state.registry.gather(), &mut body) {
        Ok(()) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, encoder.format_type().to_owned())],
            body,
        ),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain".to_owned())],
            e.to_string().into_bytes(),
        ),
    }
}

async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let (ready, body) = state.health.report();
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_when_all_components_are() {
        let health = Health::new();
        assert!(health.is_ready());
        health.set("postgres", true, "connected");
        health.set("kafka", false, "connecting");
        assert!(!health.is_ready());
        health.set("kafka", true, "connected");
        assert!(health.is_ready());
    }

    #[tokio::test]
    async fn serves_metrics_and_health() {
        let registry = new_registry("test");
        let health = Health::new();
        health.set("db", false, "down");
        let shutdown = Shutdown::new();
        let (addr, handle) = serve(
            "127.0.0.1:0".parse().unwrap(),
            registry,
            health.clone(),
            shutdown.clone(),
        )
        .await
        .unwrap();
        let get = |path: &'static str| async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            stream
                .write_all(
                    format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                        .as_bytes(),
                )
                .await
                .unwrap();
            let mut out = String::new();
            stream.read_to_string(&mut out).await.unwrap();
            out
        };
        assert!(get("/healthz").await.starts_with("HTTP/1.1 200"));
        assert!(get("/readyz").await.starts_with("HTTP/1.1 503"));
        health.set("db", true, "up");
        assert!(get("/readyz").await.starts_with("HTTP/1.1 200"));
        assert!(get("/metrics").await.contains("test_build_info"));
        shutdown.trigger();
        handle.await.unwrap();
    }
}
