//! The key that signs certificates: local (a P-256 key in memory) or
//! external (an HSM, a KMS, another service) through [`CaSigner`].

use std::fmt;
use std::sync::Arc;

use rcgen::{KeyPair, PublicKeyData, SignatureAlgorithm, SigningKey};

/// Signature algorithm of a CA key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SignerAlgorithm {
    /// ECDSA over P-256 with SHA-256 (what generated roots use).
    EcdsaP256Sha256,
    /// ECDSA over P-384 with SHA-384.
    EcdsaP384Sha384,
    /// Ed25519.
    Ed25519,
}

impl SignerAlgorithm {
    pub(crate) fn rcgen(self) -> &'static SignatureAlgorithm {
        match self {
            SignerAlgorithm::EcdsaP256Sha256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            SignerAlgorithm::EcdsaP384Sha384 => &rcgen::PKCS_ECDSA_P384_SHA384,
            SignerAlgorithm::Ed25519 => &rcgen::PKCS_ED25519,
        }
    }
}

/// A signing failure reported by a signer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("CA signer failed: {0}")]
pub struct SignerError(pub String);

/// A CA key that signs certificates. Implement it to keep the root key in
/// an HSM or another service: the CA builds every certificate (subject,
/// validity, usages) itself and only asks the signer to sign its bytes.
///
/// `sign` is called from a blocking thread pool, never on an async task,
/// so it may block (a network call to a KMS, a PKCS#11 session).
pub trait CaSigner: Send + Sync + fmt::Debug {
    /// The algorithm `sign` produces.
    fn algorithm(&self) -> SignerAlgorithm;
    /// The raw public key: the uncompressed EC point for ECDSA, the 32
    /// bytes for Ed25519 (the `subjectPublicKey` bits of the SPKI).
    fn public_key(&self) -> &[u8];
    /// Signs `message`: ECDSA signatures are ASN.1 DER encoded.
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignerError>;
}

/// A CA key held in this process.
pub struct LocalSigner {
    key: KeyPair,
    algorithm: SignerAlgorithm,
}

impl fmt::Debug for LocalSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalSigner")
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

impl LocalSigner {
    /// A new random ECDSA P-256 key (SwarmKit's root key type).
    pub fn generate() -> Result<Self, SignerError> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .map_err(|e| SignerError(e.to_string()))?;
        Ok(LocalSigner {
            key,
            algorithm: SignerAlgorithm::EcdsaP256Sha256,
        })
    }

    /// Reads a PKCS#8 key (PEM): ECDSA P-256, P-384 or Ed25519.
    pub fn from_pem(pem: &str) -> Result<Self, SignerError> {
        let key = KeyPair::from_pem(pem).map_err(|e| SignerError(e.to_string()))?;
        let alg = key.algorithm();
        let algorithm = if alg == &rcgen::PKCS_ECDSA_P256_SHA256 {
            SignerAlgorithm::EcdsaP256Sha256
        } else if alg == &rcgen::PKCS_ECDSA_P384_SHA384 {
            SignerAlgorithm::EcdsaP384Sha384
        } else if alg == &rcgen::PKCS_ED25519 {
            SignerAlgorithm::Ed25519
        } else {
            return Err(SignerError("unsupported CA key algorithm".into()));
        };
        Ok(LocalSigner { key, algorithm })
    }

    /// The key as PKCS#8 PEM (a secret).
    pub fn to_pem(&self) -> String {
        self.key.serialize_pem()
    }
}

impl CaSigner for LocalSigner {
    fn algorithm(&self) -> SignerAlgorithm {
        self.algorithm
    }

    fn public_key(&self) -> &[u8] {
        self.key.der_bytes()
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignerError> {
        SigningKey::sign(&self.key, message).map_err(|e| SignerError(e.to_string()))
    }
}

/// Adapts a [`CaSigner`] to rcgen.
#[derive(Debug, Clone)]
pub(crate) struct RcgenSigner(pub(crate) Arc<dyn CaSigner>);

impl PublicKeyData for RcgenSigner {
    fn der_bytes(&self) -> &[u8] {
        self.0.public_key()
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        self.0.algorithm().rcgen()
    }
}

impl SigningKey for RcgenSigner {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        self.0.sign(msg).map_err(|e| {
            tracing::warn!(error = %e, "CA signer failed");
            rcgen::Error::RemoteKeyError
        })
    }
}
