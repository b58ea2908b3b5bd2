//! `Debug` for messages that hold secrets: secret bytes and tokens print as
//! `<redacted: N bytes>`, so a stray `{:?}` in a log line leaks nothing.

use std::fmt;

use crate::v1::{
    CaConfig, Cluster, ConfigSpec, EncryptionKey, IssueNodeCertificateRequest, JoinTokens, RootCa,
    RootRotation, SecretSpec,
};

/// Shows the length of a secret, never its content.
struct Redacted(usize);

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<redacted: {} bytes>", self.0)
    }
}

impl fmt::Debug for SecretSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretSpec")
            .field("annotations", &self.annotations)
            .field("data", &Redacted(self.data.len()))
            .field("driver", &self.driver)
            .finish()
    }
}

impl fmt::Debug for ConfigSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConfigSpec")
            .field("annotations", &self.annotations)
            .field("data", &Redacted(self.data.len()))
            .finish()
    }
}

impl fmt::Debug for RootCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RootCa")
            .field("ca_key", &Redacted(self.ca_key.len()))
            .field("ca_cert", &String::from_utf8_lossy(&self.ca_cert))
            .field("ca_cert_hash", &self.ca_cert_hash)
            .field("join_tokens", &self.join_tokens)
            .field("root_rotation", &self.root_rotation)
            .field("last_forced_rotation", &self.last_forced_rotation)
            .finish()
    }
}

impl fmt::Debug for RootRotation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RootRotation")
            .field("ca_cert", &String::from_utf8_lossy(&self.ca_cert))
            .field("ca_key", &Redacted(self.ca_key.len()))
            .field(
                "cross_signed_ca_cert",
                &String::from_utf8_lossy(&self.cross_signed_ca_cert),
            )
            .finish()
    }
}

impl fmt::Debug for CaConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CaConfig")
            .field("node_cert_expiry", &self.node_cert_expiry)
            .field("external_cas", &self.external_cas)
            .field(
                "signing_ca_cert",
                &String::from_utf8_lossy(&self.signing_ca_cert),
            )
            .field("signing_ca_key", &Redacted(self.signing_ca_key.len()))
            .field("force_rotate", &self.force_rotate)
            .finish()
    }
}

impl fmt::Debug for JoinTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinTokens")
            .field("worker", &Redacted(self.worker.len()))
            .field("manager", &Redacted(self.manager.len()))
            .finish()
    }
}

impl fmt::Debug for EncryptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncryptionKey")
            .field("subsystem", &self.subsystem)
            .field("algorithm", &self.algorithm)
            .field("key", &Redacted(self.key.len()))
            .field("lamport_time", &self.lamport_time)
            .finish()
    }
}

impl fmt::Debug for Cluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cluster")
            .field("id", &self.id)
            .field("meta", &self.meta)
            .field("spec", &self.spec)
            .field("root_ca", &self.root_ca)
            .field("network_bootstrap_keys", &self.network_bootstrap_keys)
            .field(
                "encryption_key_lamport_clock",
                &self.encryption_key_lamport_clock,
            )
            .field("unlock_key", &Redacted(self.unlock_key.len()))
            .field("default_address_pool", &self.default_address_pool)
            .field("subnet_size", &self.subnet_size)
            .field("removed_nodes", &self.removed_nodes)
            .finish()
    }
}

impl fmt::Debug for IssueNodeCertificateRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssueNodeCertificateRequest")
            .field("csr", &String::from_utf8_lossy(&self.csr))
            .field("token", &Redacted(self.token.len()))
            .field("availability", &self.availability)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use crate::v1::{Annotations, Cluster, JoinTokens, RootCa, SecretSpec};

    #[test]
    fn secrets_never_reach_debug_output() {
        let spec = SecretSpec {
            annotations: Some(Annotations {
                name: "db-password".into(),
                ..Default::default()
            }),
            data: b"hunter2".to_vec(),
            driver: None,
        };
        let text = format!("{spec:?}");
        assert!(text.contains("db-password"));
        assert!(text.contains("<redacted: 7 bytes>"));
        assert!(!text.contains("hunter2"));

        let cluster = Cluster {
            root_ca: Some(RootCa {
                ca_key: b"-----BEGIN PRIVATE KEY-----secret".to_vec(),
                join_tokens: Some(JoinTokens {
                    worker: "SWMTKN-1-aaa-workersecret".into(),
                    manager: "SWMTKN-1-aaa-managersecret".into(),
                }),
                ..Default::default()
            }),
            unlock_key: b"unlock".to_vec(),
            ..Default::default()
        };
        let text = format!("{cluster:?}");
        for secret in ["PRIVATE KEY", "workersecret", "managersecret", "unlock\""] {
            assert!(!text.contains(secret), "{secret} leaked in {text}");
        }
    }
}
