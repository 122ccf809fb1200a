//! The one way gnomon builds HTTP clients: to peers, to job targets, from
//! the command line.
//!
//! TLS goes through rustls with the `ring` provider, set on each client
//! rather than installed process-wide, and trusts the system's CA
//! certificates (`SSL_CERT_FILE` and `SSL_CERT_DIR` are honoured, for a
//! private CA). They are loaded once, when the first client is built. A host
//! without any still builds every client: plain `http` works as before and
//! an `https` call fails with an unknown-issuer error that says why — which
//! is what keeps a minimal edge image without a CA bundle able to run a node.

use std::sync::{Arc, OnceLock};

use rustls::{ClientConfig, RootCertStore};

/// A client builder with gnomon's TLS settings; add timeouts and build.
pub fn builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder().tls_backend_preconfigured(tls_config().clone())
}

fn tls_config() -> &'static ClientConfig {
    static CONFIG: OnceLock<ClientConfig> = OnceLock::new();
    CONFIG.get_or_init(|| {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("ring supports rustls's default protocol versions")
            .with_root_certificates(system_roots())
            .with_no_client_auth()
    })
}

fn system_roots() -> RootCertStore {
    let found = rustls_native_certs::load_native_certs();
    for error in &found.errors {
        tracing::warn!(%error, "reading the system's CA certificates");
    }
    let mut roots = RootCertStore::empty();
    let (added, ignored) = roots.add_parsable_certificates(found.certs);
    if ignored > 0 {
        tracing::warn!(ignored, "CA certificates that could not be parsed");
    }
    if added == 0 {
        tracing::warn!("no CA certificates found: https targets will fail (set SSL_CERT_FILE)");
    }
    roots
}
