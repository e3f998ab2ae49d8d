//! HTTPS for the gateway: `[gateway.tls]`'s certificate and key as a rustls server config
//! (ring as the crypto provider, TLS 1.2 and 1.3, HTTP/1.1 by ALPN).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::settings::GatewayTls;

/// Why the certificate could not be served.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read or holds no usable item.
    #[error("reading {path}: {reason}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// rustls refused the certificate or key (a key that does not match the certificate).
    #[error("the certificate and key do not make a TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

/// The server config for `tls`.
pub fn server_config(tls: &GatewayTls) -> Result<Arc<ServerConfig>, TlsError> {
    let read = |path: &Path| {
        let path = path.to_path_buf();
        move |error: rustls_pki_types::pem::Error| TlsError::Read { path, reason: error.to_string() }
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&tls.cert_file)
        .map_err(read(&tls.cert_file))?
        .collect::<Result<_, _>>()
        .map_err(read(&tls.cert_file))?;
    if chain.is_empty() {
        return Err(TlsError::Read { path: tls.cert_file.clone(), reason: "no certificate in it".into() });
    }
    let key = PrivateKeyDer::from_pem_file(&tls.key_file).map_err(read(&tls.key_file))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_certificate_names_its_file() {
        let tls = GatewayTls { cert_file: "/nonexistent/cert.pem".into(), key_file: "/nonexistent/key.pem".into() };
        let error = server_config(&tls).unwrap_err().to_string();
        assert!(error.contains("/nonexistent/cert.pem"), "{error}");
    }
}
