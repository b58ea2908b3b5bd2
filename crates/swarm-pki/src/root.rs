//! The cluster's root CA: a self-signed certificate and the key (or
//! external signer) behind it.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, DnValue, IsCa, Issuer,
    KeyUsagePurpose, SerialNumber,
};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use x509_parser::der_parser::asn1_rs::Tag;
use x509_parser::x509::X509Name;

use crate::identity::{hex, parse_certificate, unix_to_system};
use crate::signer::{CaSigner, LocalSigner, RcgenSigner};

/// CN of the roots this crate generates (as SwarmKit's).
pub const ROOT_CN: &str = "swarm-ca";
/// How far back a certificate's `not_before` is set, so that nodes whose
/// clocks are a little behind accept it.
pub const CLOCK_SKEW_BACKDATE: Duration = Duration::from_secs(5 * 60);

/// Why a root CA could not be created or loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RootError {
    /// The certificate could not be read.
    #[error("invalid root CA certificate: {0}")]
    Certificate(String),
    /// The certificate is not a CA certificate.
    #[error("the root certificate is not a CA certificate")]
    NotCa,
    /// The key does not belong to the certificate.
    #[error("the CA key does not match the root certificate")]
    KeyMismatch,
    /// The key could not be read, generated or used.
    #[error("CA key: {0}")]
    Key(String),
    /// The root has expired or is not valid yet.
    #[error("the root CA certificate is not valid at this time")]
    NotValidNow,
}

/// A root CA: certificate plus signer.
#[derive(Clone)]
pub struct RootCa {
    cert: CertificateDer<'static>,
    signer: Arc<dyn CaSigner>,
    local_key_pem: Option<Arc<String>>,
    digest: [u8; 32],
    not_before: SystemTime,
    not_after: SystemTime,
}

impl fmt::Debug for RootCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RootCa")
            .field("digest", &hex(&self.digest))
            .field("signer", &self.signer)
            .finish_non_exhaustive()
    }
}

impl RootCa {
    /// A new root: ECDSA P-256, valid 20 years from `now` (minus a few
    /// minutes for clock skew).
    pub fn generate(now: SystemTime) -> Result<Self, RootError> {
        Self::generate_with_validity(now, swarm_api::defaults::ROOT_CA_EXPIRY)
    }

    /// A new root valid for `validity` from `now`.
    pub fn generate_with_validity(now: SystemTime, validity: Duration) -> Result<Self, RootError> {
        let signer = LocalSigner::generate().map_err(|e| RootError::Key(e.0))?;
        let key_pem = signer.to_pem();
        let signer: Arc<dyn CaSigner> = Arc::new(signer);
        let params = root_params(now, validity)?;
        let cert = params
            .self_signed(&RcgenSigner(signer.clone()))
            .map_err(|e| RootError::Certificate(e.to_string()))?;
        let mut root = Self::with_signer(cert.der().clone(), signer)?;
        root.local_key_pem = Some(Arc::new(key_pem));
        Ok(root)
    }

    /// Loads a root from its certificate and PKCS#8 key (PEM).
    pub fn from_pem(cert_pem: &[u8], key_pem: &str) -> Result<Self, RootError> {
        let cert = CertificateDer::from_pem_slice(cert_pem)
            .map_err(|e| RootError::Certificate(e.to_string()))?;
        let signer = LocalSigner::from_pem(key_pem).map_err(|e| RootError::Key(e.0))?;
        let mut root = Self::with_signer(cert, Arc::new(signer))?;
        root.local_key_pem = Some(Arc::new(key_pem.to_string()));
        Ok(root)
    }

    /// A root whose key is held by an external signer. The signer's public
    /// key must be the certificate's.
    pub fn with_signer(
        cert: CertificateDer<'static>,
        signer: Arc<dyn CaSigner>,
    ) -> Result<Self, RootError> {
        let parsed = parse_certificate(&cert).map_err(|e| RootError::Certificate(e.to_string()))?;
        if !parsed.is_ca() {
            return Err(RootError::NotCa);
        }
        check_dn_supported(parsed.subject())?;
        if parsed.public_key().subject_public_key.data.as_ref() != signer.public_key() {
            return Err(RootError::KeyMismatch);
        }
        let validity = parsed.validity();
        let not_before = unix_to_system(validity.not_before.timestamp());
        let not_after = unix_to_system(validity.not_after.timestamp());
        let digest = sha256(&cert);
        Ok(RootCa {
            cert,
            signer,
            local_key_pem: None,
            digest,
            not_before,
            not_after,
        })
    }

    /// The certificate (DER).
    pub fn certificate(&self) -> &CertificateDer<'static> {
        &self.cert
    }

    /// The certificate (PEM).
    pub fn certificate_pem(&self) -> String {
        pem_encode("CERTIFICATE", &self.cert)
    }

    /// The key (PKCS#8 PEM) when it is held locally; `None` with an
    /// external signer. A secret: store it 0600, never log it.
    pub fn key_pem(&self) -> Option<&str> {
        self.local_key_pem.as_deref().map(String::as_str)
    }

    /// SHA-256 of the certificate (DER): what join tokens carry.
    pub fn digest(&self) -> [u8; 32] {
        self.digest
    }

    /// End of the root's validity.
    pub fn not_after(&self) -> SystemTime {
        self.not_after
    }

    /// Start of the root's validity.
    pub fn not_before(&self) -> SystemTime {
        self.not_before
    }

    /// The rcgen issuer for this root.
    pub(crate) fn issuer(&self) -> Result<Issuer<'static, RcgenSigner>, RootError> {
        Issuer::from_ca_cert_der(&self.cert, RcgenSigner(self.signer.clone()))
            .map_err(|e| RootError::Certificate(e.to_string()))
    }

    /// `other`'s certificate signed by this root: the intermediate that
    /// lets holders of this root trust certificates `other` issues during a
    /// rotation. Valid as long as both roots, at most.
    pub fn cross_sign(&self, other: &RootCa) -> Result<CertificateDer<'static>, RootError> {
        let parsed =
            parse_certificate(&other.cert).map_err(|e| RootError::Certificate(e.to_string()))?;
        let mut params = CertificateParams::default();
        params.distinguished_name = dn_from_x509(parsed.subject())?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.not_before = other.not_before.max(self.not_before).into();
        params.not_after = other.not_after.min(self.not_after).into();
        params.serial_number = Some(random_serial());
        params.use_authority_key_identifier_extension = true;
        let cert = params
            .signed_by(
                &crate::signer::RcgenSigner(other.signer.clone()),
                &self.issuer()?,
            )
            .map_err(|e| RootError::Certificate(e.to_string()))?;
        Ok(cert.der().clone())
    }
}

fn root_params(now: SystemTime, validity: Duration) -> Result<CertificateParams, RootError> {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, ROOT_CN);
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let not_before = now
        .checked_sub(CLOCK_SKEW_BACKDATE)
        .ok_or(RootError::NotValidNow)?;
    let not_after = now.checked_add(validity).ok_or(RootError::NotValidNow)?;
    params.not_before = not_before.into();
    params.not_after = not_after.into();
    params.serial_number = Some(random_serial());
    Ok(params)
}

/// A random positive 128-bit serial number.
pub(crate) fn random_serial() -> SerialNumber {
    let mut bytes: [u8; 16] = rand::random();
    // Positive and without a leading zero byte: DER INTEGER stays 16 bytes.
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    SerialNumber::from_slice(&bytes)
}

/// SHA-256 of `bytes`.
pub(crate) fn sha256(bytes: &[u8]) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// PEM text of one DER object.
pub(crate) fn pem_encode(label: &str, der: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        // base64 output is ASCII, so every chunk is valid UTF-8.
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// Refuses subjects rcgen cannot re-encode faithfully (it would panic on
/// an empty RDN and refuses multi-valued ones).
fn check_dn_supported(name: &X509Name<'_>) -> Result<(), RootError> {
    dn_from_x509(name).map(|_| ())
}

/// Rebuilds a subject with rcgen, keeping each value's string type so the
/// re-encoding matches the original.
fn dn_from_x509(name: &X509Name<'_>) -> Result<DistinguishedName, RootError> {
    let bad = |what: &str| RootError::Certificate(format!("unsupported subject: {what}"));
    let mut dn = DistinguishedName::new();
    for rdn in name.iter() {
        let mut attrs = rdn.iter();
        let (Some(attr), None) = (attrs.next(), attrs.next()) else {
            return Err(bad("each name component must hold exactly one attribute"));
        };
        let oid: Vec<u64> = attr
            .attr_type()
            .iter()
            .ok_or_else(|| bad("attribute type"))?
            .collect();
        let data = attr.attr_value().data;
        let text = std::str::from_utf8(data).map_err(|_| bad("attribute text"))?;
        let value = match attr.attr_value().header.tag() {
            Tag::Utf8String => DnValue::Utf8String(text.to_string()),
            Tag::PrintableString => {
                DnValue::PrintableString(text.try_into().map_err(|_| bad("printable string"))?)
            }
            Tag::Ia5String => DnValue::Ia5String(text.try_into().map_err(|_| bad("IA5 string"))?),
            _ => return Err(bad("attribute string type")),
        };
        dn.push(DnType::from_oid(&oid), value);
    }
    Ok(dn)
}
