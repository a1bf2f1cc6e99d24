//! TLS for the replication connection, with libpq's `sslmode` meanings:
//!
//! | `sslmode` | TLS | server certificate |
//! |---|---|---|
//! | `disable`, `allow` | never | — |
//! | `prefer` (default) | if the server offers it | not checked |
//! | `require` | always | not checked; checked against `sslrootcert` as in `verify-ca` when one is given |
//! | `verify-ca` | always | chain checked against `sslrootcert` (or the public web roots) |
//! | `verify-full` | always | chain and host name checked |
//!
//! The pools of the workers get the same URL parameters through sqlx, which implements the
//! same table.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::connection::PgWireError;

/// How the connection uses TLS (`sslmode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SslMode {
    /// Never.
    Disable,
    /// libpq tries without TLS first; so does this client, and never falls back.
    Allow,
    /// TLS when the server offers it, without checking its certificate.
    Prefer,
    /// TLS always; the certificate is checked only against an explicit `sslrootcert`.
    Require,
    /// TLS always; the certificate chain is checked.
    VerifyCa,
    /// TLS always; chain and host name are checked.
    VerifyFull,
}

impl SslMode {
    /// Parses an `sslmode` value.
    pub fn parse(value: &str) -> Result<Self, PgWireError> {
        Ok(match value {
            "disable" => SslMode::Disable,
            "allow" => SslMode::Allow,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => {
                return Err(PgWireError::Url(format!(
                    "sslmode={other} is not one of disable, allow, prefer, require, verify-ca, verify-full"
                )))
            }
        })
    }

    fn required(self) -> bool {
        matches!(
            self,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull
        )
    }
}

/// TLS settings of a connection URL.
#[derive(Clone, Debug)]
pub struct TlsParams {
    /// `sslmode`.
    pub mode: SslMode,
    /// `sslrootcert`: PEM file of the certificates to trust.
    pub root_cert: Option<PathBuf>,
}

impl Default for TlsParams {
    fn default() -> Self {
        Self {
            mode: SslMode::Prefer,
            root_cert: None,
        }
    }
}

/// What the socket became.
#[derive(Debug)]
pub enum Negotiated {
    /// The server and the mode agreed on plain TCP.
    Plain(TcpStream),
    /// TLS is established.
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

/// Asks the server for TLS (`SSLRequest`) when the mode wants it and performs the handshake.
pub async fn negotiate(
    mut stream: TcpStream,
    host: &str,
    params: &TlsParams,
) -> Result<Negotiated, PgWireError> {
    if matches!(params.mode, SslMode::Disable | SslMode::Allow) {
        return Ok(Negotiated::Plain(stream));
    }
    // Build the configuration first: a bad sslrootcert is reported without touching the
    // server.
    let config = client_config(params)?;
    // SSLRequest: length 8, code 1234.5679.
    stream
        .write_all(&[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f])
        .await?;
    let mut answer = [0u8; 1];
    stream.read_exact(&mut answer).await?;
    match answer[0] {
        b'S' => {
            let name = ServerName::try_from(host.to_owned()).map_err(|e| {
                PgWireError::Tls(format!("`{host}` is not a valid server name: {e}"))
            })?;
            let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
                .connect(name, stream)
                .await
                .map_err(|e| PgWireError::Tls(format!("TLS handshake with {host} failed: {e}")))?;
            Ok(Negotiated::Tls(Box::new(tls)))
        }
        b'N' if !params.mode.required() => Ok(Negotiated::Plain(stream)),
        b'N' => Err(PgWireError::Tls(format!(
            "the server does not accept TLS connections (sslmode={:?} requires TLS)",
            params.mode
        ))),
        other => Err(PgWireError::Protocol(format!(
            "unexpected answer `{}` to the TLS request",
            other.escape_ascii()
        ))),
    }
}

fn client_config(params: &TlsParams) -> Result<rustls::ClientConfig, PgWireError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let check_chain = match params.mode {
        SslMode::VerifyCa | SslMode::VerifyFull => true,
        SslMode::Require => params.root_cert.is_some(),
        _ => false,
    };
    let chain = if check_chain {
        let roots = Arc::new(root_store(params)?);
        let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
            .build()
            .map_err(|e| PgWireError::Tls(format!("certificate verifier: {e}")))?;
        Some(webpki)
    } else {
        None
    };
    let verifier: Arc<dyn ServerCertVerifier> = match chain {
        Some(webpki) if params.mode == SslMode::VerifyFull => webpki,
        chain => Arc::new(Relaxed {
            chain,
            provider: provider.clone(),
        }),
    };
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| PgWireError::Tls(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth())
}

fn root_store(params: &TlsParams) -> Result<RootCertStore, PgWireError> {
    let mut roots = RootCertStore::empty();
    match &params.root_cert {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|e| PgWireError::Tls(format!("sslrootcert {}: {e}", path.display())))?;
            let (added, _) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(PgWireError::Tls(format!(
                    "sslrootcert {} holds no usable certificate",
                    path.display()
                )));
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    Ok(roots)
}

/// The checks libpq makes short of `verify-full`. Without `chain` (`prefer`, `require` without
/// a root) the certificate is not checked at all: encryption without authentication of the
/// server, as libpq does. With it (`verify-ca`, `require` with a root) the chain must lead to
/// a trusted root, whatever name the certificate carries. Handshake signatures are verified
/// either way.
#[derive(Debug)]
struct Relaxed {
    chain: Option<Arc<WebPkiServerVerifier>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Relaxed {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else {
            return Ok(ServerCertVerified::assertion());
        };
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_like_libpq() {
        assert_eq!(SslMode::parse("verify-full").unwrap(), SslMode::VerifyFull);
        assert_eq!(SslMode::parse("prefer").unwrap(), SslMode::Prefer);
        assert!(SslMode::parse("on").is_err());
        assert!(SslMode::Require.required() && !SslMode::Prefer.required());
    }

    #[test]
    fn a_missing_root_file_is_a_clear_error() {
        let params = TlsParams {
            mode: SslMode::VerifyFull,
            root_cert: Some("/nonexistent/root.pem".into()),
        };
        let error = client_config(&params).unwrap_err().to_string();
        assert!(error.contains("/nonexistent/root.pem"), "{error}");
        // Without a root file, the public roots are used.
        let params = TlsParams {
            mode: SslMode::VerifyFull,
            root_cert: None,
        };
        assert!(client_config(&params).is_ok());
    }
}
