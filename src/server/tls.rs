//! TLS for the listener: a certificate chain and key read from PEM files,
//! swappable at run time (`reload`) without dropping a connection.
//!
//! Every handshake asks `CurrentCertificate` for the key, which reads an
//! `ArcSwap`; a reload builds the new key completely before it swaps, so a
//! broken file never leaves the gateway without a certificate.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::crypto::{CryptoProvider, ring};
use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert};
use tokio_rustls::rustls::sign::CertifiedKey;
use tokio_rustls::rustls::{self, ServerConfig};

/// Where the PEM certificate chain (leaf first) and private key live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Why a certificate could not be loaded. Messages name the file, never its
/// contents: a key file's parse errors can quote bytes of the key.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} holds no PEM certificate", path.display())]
    NoCertificate { path: PathBuf },
    #[error("{} is not a valid PEM certificate chain: {source}", path.display())]
    BadCertificate { path: PathBuf, source: pem::Error },
    #[error("{} holds no PEM private key (PKCS#8, PKCS#1 or SEC1)", path.display())]
    NoKey { path: PathBuf },
    #[error("{} is not a well-formed PEM private key", path.display())]
    BadKeyEncoding { path: PathBuf },
    #[error("the private key in {} cannot be used: {source}", path.display())]
    UnusableKey {
        path: PathBuf,
        source: rustls::Error,
    },
    #[error("the private key in {} does not belong to the certificate in {}: {source}", key.display(), cert.display())]
    KeyMismatch {
        cert: PathBuf,
        key: PathBuf,
        source: rustls::Error,
    },
    #[error("cannot build the TLS configuration: {0}")]
    Config(rustls::Error),
}

/// The server's TLS state: the files, the live certificate and the rustls
/// configuration whose resolver reads it.
pub struct Tls {
    files: TlsFiles,
    provider: Arc<CryptoProvider>,
    current: Arc<CurrentCertificate>,
    config: Arc<ServerConfig>,
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tls").field("files", &self.files).finish()
    }
}

impl Tls {
    /// Reads the files and builds a configuration offering h2 and http/1.1.
    pub fn load(files: TlsFiles) -> Result<Tls, TlsError> {
        // Explicit provider: the process-wide default is ambiguous when a
        // dependency (reqwest) enables another rustls backend.
        let provider = Arc::new(ring::default_provider());
        let key = certified_key(&files, &provider)?;
        let current = Arc::new(CurrentCertificate(ArcSwap::from_pointee(key)));
        let mut config = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(TlsError::Config)?
            .with_no_client_auth()
            .with_cert_resolver(current.clone());
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Tls {
            files,
            provider,
            current,
            config: Arc::new(config),
        })
    }

    /// Re-reads the files; new handshakes use the new certificate, connections
    /// already open keep theirs. On error the old certificate stays in use.
    ///
    /// Reads the files synchronously (they are small); from async code that
    /// cares, call it in `spawn_blocking`.
    pub fn reload(&self) -> Result<(), TlsError> {
        let key = certified_key(&self.files, &self.provider)?;
        self.current.0.store(Arc::new(key));
        Ok(())
    }

    pub fn files(&self) -> &TlsFiles {
        &self.files
    }

    /// An acceptor for one listener; cheap, shares the live certificate.
    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.config.clone())
    }
}

/// The certificate every handshake gets (no SNI selection: one gateway name).
struct CurrentCertificate(ArcSwap<CertifiedKey>);

impl fmt::Debug for CurrentCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CurrentCertificate")
    }
}

impl ResolvesServerCert for CurrentCertificate {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.load_full())
    }
}

fn certified_key(files: &TlsFiles, provider: &CryptoProvider) -> Result<CertifiedKey, TlsError> {
    let chain = read_chain(&files.cert)?;
    let key = read_key(&files.key)?;
    let key = provider
        .key_provider
        .load_private_key(key)
        .map_err(|source| TlsError::UnusableKey {
            path: files.key.clone(),
            source,
        })?;
    let certified = CertifiedKey::new(chain, key);
    match certified.keys_match() {
        // rustls cannot compare every key type; that is not a mismatch.
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {
            Ok(certified)
        }
        Err(source) => Err(TlsError::KeyMismatch {
            cert: files.cert.clone(),
            key: files.key.clone(),
            source,
        }),
    }
}

fn read_file(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read_file(path)?;
    let chain = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::BadCertificate {
            path: path.to_path_buf(),
            source,
        })?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    Ok(chain)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read_file(path)?;
    match PrivateKeyDer::from_pem_slice(&pem) {
        Ok(key) => Ok(key),
        Err(pem::Error::NoItemsFound) => Err(TlsError::NoKey {
            path: path.to_path_buf(),
        }),
        // The pem error would quote the offending line or base64: key bytes.
        Err(_) => Err(TlsError::BadKeyEncoding {
            path: path.to_path_buf(),
        }),
    }
}

/// Certificates for tests: a CA per name and a `localhost` leaf it signs.
#[cfg(test)]
pub(crate) mod test_certs {
    use std::path::Path;

    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};

    pub(crate) struct TestPki {
        pub ca_pem: String,
        pub leaf_pem: String,
        pub leaf_der: Vec<u8>,
        pub key_pem: String,
    }

    impl TestPki {
        pub(crate) fn new(name: &str) -> TestPki {
            let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
            ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            ca.distinguished_name
                .push(rcgen::DnType::CommonName, format!("test CA {name}"));
            let ca_key = KeyPair::generate().unwrap();
            let ca_cert = ca.self_signed(&ca_key).unwrap();
            let issuer = Issuer::new(ca, ca_key);
            let leaf_key = KeyPair::generate().unwrap();
            let leaf = CertificateParams::new(vec!["localhost".to_string()])
                .unwrap()
                .signed_by(&leaf_key, &issuer)
                .unwrap();
            TestPki {
                ca_pem: ca_cert.pem(),
                leaf_pem: leaf.pem(),
                leaf_der: leaf.der().to_vec(),
                key_pem: leaf_key.serialize_pem(),
            }
        }

        pub(crate) fn write(&self, dir: &Path) -> super::TlsFiles {
            let files = super::TlsFiles {
                cert: dir.join("cert.pem"),
                key: dir.join("key.pem"),
            };
            std::fs::write(&files.cert, &self.leaf_pem).unwrap();
            std::fs::write(&files.key, &self.key_pem).unwrap();
            files
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_certs::TestPki;
    use super::*;

    fn served_leaf(tls: &Tls) -> Vec<u8> {
        tls.current.0.load().cert[0].to_vec()
    }

    #[test]
    fn load_reads_chain_and_key() {
        let pki = TestPki::new("a");
        let tls = Tls::load(pki.write(tempfile::tempdir().unwrap().path())).unwrap();
        assert_eq!(served_leaf(&tls), pki.leaf_der);
        assert_eq!(
            tls.config.alpn_protocols,
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        );
    }

    #[test]
    fn missing_file_error_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let files = TlsFiles {
            cert: dir.path().join("nope.pem"),
            key: dir.path().join("key.pem"),
        };
        let error = Tls::load(files).unwrap_err();
        assert!(matches!(error, TlsError::Read { .. }));
        assert!(error.to_string().contains("nope.pem"), "{error}");
    }

    #[test]
    fn key_errors_name_the_file_but_quote_nothing_from_it() {
        let dir = tempfile::tempdir().unwrap();
        let files = TestPki::new("a").write(dir.path());
        // A broken base64 line inside a key section.
        std::fs::write(
            &files.key,
            "-----BEGIN PRIVATE KEY-----\nSECRETSECRET!!!\n-----END PRIVATE KEY-----\n",
        )
        .unwrap();
        let message = Tls::load(files.clone()).unwrap_err().to_string();
        assert!(message.contains("key.pem"), "{message}");
        assert!(!message.contains("SECRET"), "{message}");

        std::fs::write(&files.key, "not pem at all").unwrap();
        let error = Tls::load(files).unwrap_err();
        assert!(matches!(error, TlsError::NoKey { .. }), "{error}");
    }

    #[test]
    fn key_of_another_certificate_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let files = TestPki::new("a").write(dir.path());
        std::fs::write(&files.key, TestPki::new("b").key_pem).unwrap();
        let error = Tls::load(files).unwrap_err();
        assert!(matches!(error, TlsError::KeyMismatch { .. }), "{error}");
    }

    #[test]
    fn failed_reload_keeps_the_old_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let a = TestPki::new("a");
        let files = a.write(dir.path());
        let tls = Tls::load(files.clone()).unwrap();
        std::fs::write(&files.cert, "garbage").unwrap();
        assert!(matches!(tls.reload(), Err(TlsError::NoCertificate { .. })));
        assert_eq!(served_leaf(&tls), a.leaf_der);

        let b = TestPki::new("b");
        b.write(dir.path());
        tls.reload().unwrap();
        assert_eq!(served_leaf(&tls), b.leaf_der);
    }
}
