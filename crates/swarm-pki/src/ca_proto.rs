//! The CA in the cluster object (`swarm.v1.RootCa`), so managers share it
//! through their replicated store.
//!
//! As in SwarmKit, during a rotation `ca_cert`/`ca_key` stay the old root
//! and `root_rotation` holds the new root and the cross-signed certificate;
//! finishing the rotation makes the new root `ca_cert`.

use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use swarm_api::v1;

use crate::base36;
use crate::ca::{CaError, ClusterCa};
use crate::clock::SharedClock;
use crate::root::{RootCa, pem_encode};
use crate::signer::CaSigner;
use crate::token::{DIGEST_LEN, JoinTokens};

/// A root's digest as the cluster object writes it (base 36, 50 chars).
pub fn digest_base36(digest: &[u8; 32]) -> String {
    // 32 bytes always fit in 50 base-36 digits.
    base36::encode(digest, DIGEST_LEN).unwrap_or_default()
}

fn root_from(
    cert: &[u8],
    key: &[u8],
    signer: Option<Arc<dyn CaSigner>>,
) -> Result<RootCa, CaError> {
    if key.is_empty() {
        let signer = signer.ok_or_else(|| {
            CaError::Stored("no CA key stored and no external signer given".into())
        })?;
        let der = CertificateDer::from_pem_slice(cert)
            .map_err(|e| CaError::Stored(format!("root certificate: {e}")))?;
        return Ok(RootCa::with_signer(der, signer)?);
    }
    let key = std::str::from_utf8(key).map_err(|_| CaError::Stored("CA key is not PEM".into()))?;
    Ok(RootCa::from_pem(cert, key)?)
}

impl ClusterCa {
    /// The CA as stored in the cluster object, with `tokens`.
    pub fn to_proto(&self, tokens: &JoinTokens) -> v1::RootCa {
        let (current, rotation) = match self.rotation() {
            Some(r) => (
                r.old.clone(),
                Some(v1::RootRotation {
                    ca_cert: r.new.certificate_pem().into_bytes(),
                    ca_key: r.new.key_pem().unwrap_or_default().as_bytes().to_vec(),
                    cross_signed_ca_cert: pem_encode("CERTIFICATE", &r.cross_signed).into_bytes(),
                }),
            ),
            None => (self.signing_root(), None),
        };
        v1::RootCa {
            ca_key: current.key_pem().unwrap_or_default().as_bytes().to_vec(),
            ca_cert: current.certificate_pem().into_bytes(),
            ca_cert_hash: digest_base36(&current.digest()),
            join_tokens: Some(tokens.to_proto()),
            root_rotation: rotation,
            last_forced_rotation: 0,
        }
    }

    /// The CA from the cluster object. `signer` signs for a root whose
    /// key is not stored (external CA); the tokens are returned parsed.
    pub fn from_proto(
        cluster_id: &str,
        stored: &v1::RootCa,
        signer: Option<Arc<dyn CaSigner>>,
        clock: SharedClock,
    ) -> Result<(ClusterCa, Option<JoinTokens>), CaError> {
        let current = root_from(&stored.ca_cert, &stored.ca_key, signer.clone())?;
        let ca = ClusterCa::with_clock(cluster_id, current.clone(), clock)?;
        if let Some(rotation) = &stored.root_rotation {
            let new = root_from(&rotation.ca_cert, &rotation.ca_key, signer)?;
            let cross = CertificateDer::from_pem_slice(&rotation.cross_signed_ca_cert)
                .map_err(|e| CaError::Stored(format!("cross-signed certificate: {e}")))?;
            ca.resume_rotation(current, new, cross)?;
        }
        let tokens = stored
            .join_tokens
            .as_ref()
            .map(JoinTokens::from_proto)
            .transpose()
            .map_err(|e| CaError::Stored(format!("join tokens: {e}")))?;
        Ok((ca, tokens))
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;
    use crate::clock::system_clock;

    #[test]
    fn round_trips_stable_and_rotating() {
        let root = RootCa::generate(SystemTime::now()).unwrap();
        let ca = ClusterCa::new("c1", root.clone()).unwrap();
        let tokens = JoinTokens::generate(root.digest(), &mut rand::rng());
        let stored = ca.to_proto(&tokens);
        assert_eq!(stored.ca_cert_hash.len(), 50);
        let (back, back_tokens) =
            ClusterCa::from_proto("c1", &stored, None, system_clock()).unwrap();
        assert_eq!(back.signing_root().digest(), root.digest());
        assert_eq!(back_tokens, Some(tokens.clone()));

        let new_root = RootCa::generate(SystemTime::now()).unwrap();
        ca.start_rotation(new_root.clone()).unwrap();
        let stored = ca.to_proto(&tokens);
        assert_eq!(stored.ca_cert_hash, digest_base36(&root.digest()));
        let (back, _) = ClusterCa::from_proto("c1", &stored, None, system_clock()).unwrap();
        let rotation = back.rotation().unwrap();
        assert_eq!(rotation.new.digest(), new_root.digest());
        assert_eq!(rotation.cross_signed, ca.rotation().unwrap().cross_signed);

        // A tampered cross-signed certificate is refused.
        let mut bad = stored.clone();
        if let Some(r) = bad.root_rotation.as_mut() {
            r.cross_signed_ca_cert = root.certificate_pem().into_bytes();
        }
        assert!(ClusterCa::from_proto("c1", &bad, None, system_clock()).is_err());
        // An external root needs its signer.
        let mut external = ca.to_proto(&tokens);
        external.ca_key.clear();
        assert!(ClusterCa::from_proto("c1", &external, None, system_clock()).is_err());
    }
}
