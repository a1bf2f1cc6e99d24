//! Connection strings made safe to log: user, password and query parameters are dropped.

/// Renders a connection URL as `scheme://host:port/path` so it can be logged: no user, no
/// password, no query string (which may carry `password=` or TLS key paths).
///
/// Anything that does not parse as a URL is rendered as `<unparseable url>` rather than echoed,
/// since it may be a secret in another shape.
pub fn redact_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(url) => {
            let mut out = format!("{}://", url.scheme());
            if let Some(host) = url.host_str() {
                out.push_str(host);
            }
            if let Some(port) = url.port() {
                out.push(':');
                out.push_str(&port.to_string());
            }
            out.push_str(url.path());
            out
        }
        Err(_) => "<unparseable url>".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_credentials_and_query() {
        let shown = redact_url(
            "postgres://app:s3cret@db.internal:5433/pipeline?sslmode=require&password=x",
        );
        assert_eq!(shown, "postgres://db.internal:5433/pipeline");
        assert!(!shown.contains("s3cret"));
    }

    #[test]
    fn unparseable_is_not_echoed() {
        assert_eq!(redact_url("host=db password=hunter2"), "<unparseable url>");
    }
}
