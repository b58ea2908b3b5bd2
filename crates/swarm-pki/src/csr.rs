//! A node's key and certificate signing request (CSR), and the CA-side
//! reading of a CSR from untrusted bytes.
//!
//! The CA keeps exactly one thing from a CSR: its public key, after
//! checking the CSR's signature (proof that the requester holds the private
//! key). The subject, extensions and attributes are ignored: the CA decides
//! what the certificate says.

use std::fmt;

use rcgen::{
    CertificateParams, DistinguishedName, DnType, KeyPair, PublicKeyData, SignatureAlgorithm,
};
use ring::signature;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateSigningRequestDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::oid_registry::{
    OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384, OID_SIG_ECDSA_WITH_SHA256,
    OID_SIG_ECDSA_WITH_SHA384, OID_SIG_ED25519,
};
use x509_parser::prelude::FromDer;

/// Largest CSR the CA reads (PEM or DER). Real ones are well under 1 KiB.
pub const MAX_CSR_BYTES: usize = 16 * 1024;

/// Why a CSR or key was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CsrError {
    /// Empty input.
    #[error("the CSR is empty")]
    Empty,
    /// Larger than [`MAX_CSR_BYTES`].
    #[error("the CSR is {0} bytes, more than the {MAX_CSR_BYTES} accepted")]
    TooLarge(usize),
    /// Not PEM `CERTIFICATE REQUEST` nor DER PKCS#10.
    #[error("malformed CSR: {0}")]
    Malformed(String),
    /// A key or signature algorithm the CA does not accept.
    #[error("unsupported CSR key or signature algorithm (use ECDSA P-256/P-384 or Ed25519)")]
    UnsupportedAlgorithm,
    /// The signature does not match the public key.
    #[error("the CSR signature does not verify")]
    BadSignature,
    /// A key could not be generated, read or used.
    #[error("key error: {0}")]
    Key(String),
}

/// A node's private key (ECDSA P-256). `Debug` never prints it.
pub struct NodeKey {
    key: KeyPair,
}

impl fmt::Debug for NodeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NodeKey(<redacted>)")
    }
}

impl NodeKey {
    /// A new random P-256 key.
    pub fn generate() -> Result<Self, CsrError> {
        KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .map(|key| NodeKey { key })
            .map_err(|e| CsrError::Key(e.to_string()))
    }

    /// Reads a PKCS#8 key (PEM).
    pub fn from_pem(pem: &str) -> Result<Self, CsrError> {
        KeyPair::from_pem(pem)
            .map(|key| NodeKey { key })
            .map_err(|e| CsrError::Key(e.to_string()))
    }

    /// The key as PKCS#8 PEM (a secret: store it 0600).
    pub fn to_pem(&self) -> String {
        self.key.serialize_pem()
    }

    /// The key in the form rustls signs with.
    pub fn private_key_der(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key.serialize_der()))
    }

    /// The public key (SubjectPublicKeyInfo, DER).
    pub fn public_key_der(&self) -> Vec<u8> {
        self.key.subject_public_key_info()
    }

    /// A CSR (PEM) for this key. Its subject is a placeholder: the CA
    /// ignores it and writes the node's identity itself.
    pub fn csr_pem(&self) -> Result<String, CsrError> {
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "swarm-node");
        params.distinguished_name = dn;
        params
            .serialize_request(&self.key)
            .and_then(|csr| csr.pem())
            .map_err(|e| CsrError::Key(e.to_string()))
    }

    pub(crate) fn key_pair(&self) -> &KeyPair {
        &self.key
    }
}

/// The public key of a CSR whose signature verified: the only part of a
/// CSR the CA uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedCsr {
    raw_key: Vec<u8>,
    alg: &'static SignatureAlgorithm,
    spki_der: Vec<u8>,
}

impl VerifiedCsr {
    /// The requester's public key (SubjectPublicKeyInfo, DER).
    pub fn public_key_der(&self) -> &[u8] {
        &self.spki_der
    }
}

impl PublicKeyData for VerifiedCsr {
    fn der_bytes(&self) -> &[u8] {
        &self.raw_key
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        self.alg
    }
}

/// Reads a CSR (PEM or DER) from untrusted bytes and checks its signature.
/// Total: never panics, any bad input is a [`CsrError`].
pub fn verify_csr(input: &[u8]) -> Result<VerifiedCsr, CsrError> {
    if input.is_empty() {
        return Err(CsrError::Empty);
    }
    if input.len() > MAX_CSR_BYTES {
        return Err(CsrError::TooLarge(input.len()));
    }
    let der_owned;
    let der: &[u8] = if input.starts_with(b"-----BEGIN") {
        der_owned = CertificateSigningRequestDer::from_pem_slice(input)
            .map_err(|e| CsrError::Malformed(format!("PEM: {e}")))?;
        der_owned.as_ref()
    } else {
        input
    };
    let csr = match X509CertificationRequest::from_der(der) {
        Ok(([], csr)) => csr,
        Ok(_) => return Err(CsrError::Malformed("trailing bytes".into())),
        Err(e) => return Err(CsrError::Malformed(e.to_string())),
    };
    let info = &csr.certification_request_info;
    let spki = &info.subject_pki;
    let key_alg = &spki.algorithm.algorithm;
    let sig_alg = &csr.signature_algorithm.algorithm;
    let (verify_alg, alg): (&'static dyn signature::VerificationAlgorithm, _) =
        if *key_alg == OID_KEY_TYPE_EC_PUBLIC_KEY {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .ok_or(CsrError::UnsupportedAlgorithm)?;
            if curve == OID_EC_P256 && *sig_alg == OID_SIG_ECDSA_WITH_SHA256 {
                (
                    &signature::ECDSA_P256_SHA256_ASN1,
                    &rcgen::PKCS_ECDSA_P256_SHA256,
                )
            } else if curve == OID_NIST_EC_P384 && *sig_alg == OID_SIG_ECDSA_WITH_SHA384 {
                (
                    &signature::ECDSA_P384_SHA384_ASN1,
                    &rcgen::PKCS_ECDSA_P384_SHA384,
                )
            } else {
                return Err(CsrError::UnsupportedAlgorithm);
            }
        } else if *key_alg == OID_SIG_ED25519 && *sig_alg == OID_SIG_ED25519 {
            (&signature::ED25519, &rcgen::PKCS_ED25519)
        } else {
            return Err(CsrError::UnsupportedAlgorithm);
        };
    if csr.signature_value.unused_bits != 0 || spki.subject_public_key.unused_bits != 0 {
        return Err(CsrError::Malformed("bit string with unused bits".into()));
    }
    let raw_key = spki.subject_public_key.data.to_vec();
    signature::UnparsedPublicKey::new(verify_alg, &raw_key)
        .verify(info.raw, &csr.signature_value.data)
        .map_err(|_| CsrError::BadSignature)?;
    Ok(VerifiedCsr {
        raw_key,
        alg,
        spki_der: spki.raw.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_csr_verifies_and_carries_the_key() {
        let key = NodeKey::generate().unwrap();
        let csr = key.csr_pem().unwrap();
        let verified = verify_csr(csr.as_bytes()).unwrap();
        assert_eq!(verified.public_key_der(), key.public_key_der().as_slice());
        // DER works too.
        let der = CertificateSigningRequestDer::from_pem_slice(csr.as_bytes()).unwrap();
        assert_eq!(verify_csr(der.as_ref()).unwrap(), verified);
    }

    #[test]
    fn a_tampered_csr_is_refused() {
        let key = NodeKey::generate().unwrap();
        let csr = key.csr_pem().unwrap();
        let der = CertificateSigningRequestDer::from_pem_slice(csr.as_bytes()).unwrap();
        let mut bytes = der.as_ref().to_vec();
        // Flip a bit in the subject (inside the signed part).
        let pos = bytes.windows(10).position(|w| w == b"swarm-node").unwrap();
        bytes[pos] ^= 1;
        assert_eq!(verify_csr(&bytes), Err(CsrError::BadSignature));
    }

    #[test]
    fn garbage_and_limits_are_typed_errors() {
        assert_eq!(verify_csr(b""), Err(CsrError::Empty));
        assert!(matches!(
            verify_csr(&[0x30; 20]),
            Err(CsrError::Malformed(_))
        ));
        assert!(matches!(
            verify_csr(
                b"-----BEGIN CERTIFICATE REQUEST-----\n!!\n-----END CERTIFICATE REQUEST-----\n"
            ),
            Err(CsrError::Malformed(_))
        ));
        assert_eq!(
            verify_csr(&vec![0u8; MAX_CSR_BYTES + 1]),
            Err(CsrError::TooLarge(MAX_CSR_BYTES + 1))
        );
    }

    #[test]
    fn keys_round_trip_through_pem_and_debug_is_redacted() {
        let key = NodeKey::generate().unwrap();
        let back = NodeKey::from_pem(&key.to_pem()).unwrap();
        assert_eq!(back.public_key_der(), key.public_key_der());
        assert_eq!(format!("{key:?}"), "NodeKey(<redacted>)");
        assert!(NodeKey::from_pem("nope").is_err());
    }
}
