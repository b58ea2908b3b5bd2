//! A node's key, certificate and trusted roots on disk.
//!
//! Every file is written atomically: a temporary file in the same
//! directory, written, `fsync`ed, renamed over the old one, then the
//! directory `fsync`ed; a crash leaves the old file or the new one, never a
//! mix. The key is created with mode 0600 (never readable by others, not
//! even for an instant), and a key file that group or others can read is
//! refused when loading.
//!
//! The calls block (small files, a few fsyncs): from async code, use
//! `tokio::task::spawn_blocking`.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rustls::pki_types::CertificateDer;

use crate::credentials::{CredentialsError, NodeCredentials};
use crate::trust::{TrustError, bundle_pem, parse_bundle_pem};

/// File name of the node's private key.
pub const KEY_FILE: &str = "node.key";
/// File name of the node's certificate chain.
pub const CERT_FILE: &str = "node.crt";
/// File name of the trusted root bundle.
pub const ROOTS_FILE: &str = "root.crt";

/// Why credentials could not be stored or loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// A file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// The key file is readable by group or others.
    #[error("{0}: private key readable by group or others (mode must be 0600)")]
    InsecurePermissions(PathBuf),
    /// The files do not make valid credentials.
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
    /// The root bundle is invalid.
    #[error(transparent)]
    Roots(#[from] TrustError),
}

/// What is stored: credentials and the roots the node trusts.
#[derive(Debug)]
pub struct StoredNode {
    /// Key and certificate chain.
    pub credentials: NodeCredentials,
    /// Trusted roots.
    pub roots: Vec<CertificateDer<'static>>,
}

/// A directory holding one node's credentials.
#[derive(Debug, Clone)]
pub struct CredentialStore {
    dir: PathBuf,
}

impl CredentialStore {
    /// A store in `dir` (created, mode 0700, on first save).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        CredentialStore { dir: dir.into() }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Saves key, chain and roots. The key is written first and the
    /// certificate last, so a crash in between leaves the old certificate
    /// with a key it does not match: [`CredentialStore::load`] then
    /// reports it rather than loading a half-updated node.
    pub fn save(
        &self,
        credentials: &NodeCredentials,
        roots: &[CertificateDer<'_>],
    ) -> Result<(), StorageError> {
        self.ensure_dir()?;
        write_atomic(
            &self.dir.join(KEY_FILE),
            credentials.key_pem().as_bytes(),
            0o600,
        )?;
        write_atomic(
            &self.dir.join(ROOTS_FILE),
            bundle_pem(roots).as_bytes(),
            0o644,
        )?;
        write_atomic(
            &self.dir.join(CERT_FILE),
            credentials.chain_pem().as_bytes(),
            0o644,
        )?;
        Ok(())
    }

    /// Loads what [`CredentialStore::save`] wrote; `None` when nothing
    /// was saved yet.
    pub fn load(&self) -> Result<Option<StoredNode>, StorageError> {
        let key_path = self.dir.join(KEY_FILE);
        let key_meta = match fs::metadata(&key_path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(StorageError::Io {
                    path: key_path,
                    source,
                });
            }
        };
        if key_meta.permissions().mode() & 0o077 != 0 {
            return Err(StorageError::InsecurePermissions(key_path));
        }
        let key = read_string(&key_path)?;
        let chain = read_string(&self.dir.join(CERT_FILE))?;
        let roots = read_string(&self.dir.join(ROOTS_FILE))?;
        let credentials = NodeCredentials::from_pem(&key, chain.as_bytes())?;
        let roots = parse_bundle_pem(roots.as_bytes())?;
        Ok(Some(StoredNode { credentials, roots }))
    }

    fn ensure_dir(&self) -> Result<(), StorageError> {
        let io_err = |source| StorageError::Io {
            path: self.dir.clone(),
            source,
        };
        if !self.dir.exists() {
            fs::create_dir_all(&self.dir).map_err(io_err)?;
            fs::set_permissions(&self.dir, fs::Permissions::from_mode(0o700)).map_err(io_err)?;
        }
        Ok(())
    }
}

fn read_string(path: &Path) -> Result<String, StorageError> {
    fs::read_to_string(path).map_err(|source| StorageError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Writes `data` to `path` atomically with `mode`.
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> Result<(), StorageError> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let io_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| StorageError::Io { path, source }
    };
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(
        ".{name}.tmp-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)
            .map_err(io_err(&tmp))?;
        // The umask may have narrowed the mode; set it exactly.
        file.set_permissions(fs::Permissions::from_mode(mode))
            .map_err(io_err(&tmp))?;
        file.write_all(data).map_err(io_err(&tmp))?;
        file.sync_all().map_err(io_err(&tmp))?;
        fs::rename(&tmp, path).map_err(io_err(path))?;
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err(dir))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ca::ClusterCa;
    use crate::csr::NodeKey;
    use crate::root::RootCa;
    use swarm_api::v1::NodeRole;

    struct TempDir(PathBuf);

    impl TempDir {
        fn new(tag: &str) -> Self {
            static N: AtomicU64 = AtomicU64::new(0);
            TempDir(std::env::temp_dir().join(format!(
                "swarm-pki-{tag}-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            )))
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn credentials(ca: &ClusterCa) -> NodeCredentials {
        let key = NodeKey::generate().unwrap();
        let issued = ca
            .issue_for_key(&key, &swarm_api::id::new_id(), NodeRole::Worker)
            .unwrap();
        NodeCredentials::from_issued(key, &issued).unwrap()
    }

    #[test]
    fn save_load_round_trip_with_private_key_mode() {
        let dir = TempDir::new("store");
        let store = CredentialStore::new(dir.0.join("node"));
        assert!(store.load().unwrap().is_none());
        let ca = ClusterCa::new(
            "c1",
            RootCa::generate(std::time::SystemTime::now()).unwrap(),
        )
        .unwrap();
        let creds = credentials(&ca);
        store.save(&creds, &ca.trusted_roots()).unwrap();
        let mode = |f: &str| {
            fs::metadata(store.dir().join(f))
                .unwrap()
                .permissions()
                .mode()
                & 0o777
        };
        assert_eq!(mode(KEY_FILE), 0o600);
        assert_eq!(mode(CERT_FILE), 0o644);
        assert_eq!(
            fs::metadata(store.dir()).unwrap().permissions().mode() & 0o777,
            0o700
        );
        let loaded = store.load().unwrap().unwrap();
        assert_eq!(loaded.credentials.identity(), creds.identity());
        assert_eq!(loaded.roots, ca.trusted_roots());
        // No temporary file is left behind.
        let names: Vec<_> = fs::read_dir(store.dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names.len(), 3, "{names:?}");

        // Overwrite with new credentials: atomically replaced.
        let next = credentials(&ca);
        store.save(&next, &ca.trusted_roots()).unwrap();
        assert_eq!(
            store.load().unwrap().unwrap().credentials.identity(),
            next.identity()
        );
    }

    #[test]
    fn load_refuses_a_readable_key_and_a_mismatched_pair() {
        let dir = TempDir::new("refuse");
        let store = CredentialStore::new(&dir.0);
        let ca = ClusterCa::new(
            "c1",
            RootCa::generate(std::time::SystemTime::now()).unwrap(),
        )
        .unwrap();
        let creds = credentials(&ca);
        store.save(&creds, &ca.trusted_roots()).unwrap();
        let key = dir.0.join(KEY_FILE);
        fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            store.load(),
            Err(StorageError::InsecurePermissions(_))
        ));
        fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).unwrap();
        // A crash between the key and the certificate: detected.
        let other = credentials(&ca);
        write_atomic(&key, other.key_pem().as_bytes(), 0o600).unwrap();
        assert!(matches!(
            store.load(),
            Err(StorageError::Credentials(CredentialsError::KeyMismatch))
        ));
        // A missing directory for write_atomic is an error, not a panic.
        assert!(write_atomic(&dir.0.join("no/such/dir/f"), b"x", 0o600).is_err());
    }
}
