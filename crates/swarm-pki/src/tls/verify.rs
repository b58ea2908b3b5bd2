//! Certificate verifiers that follow a [`ClusterTrust`] handle and add the
//! cluster checks (O = cluster id, node not removed) to webpki's.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, Error, SignatureScheme};

use crate::identity::NodeIdentity;
use crate::revocation::Revocation;
use crate::trust::{ChainError, ClusterTrust};

use super::provider;

fn chain_error(e: ChainError) -> Error {
    match e {
        ChainError::WrongCluster { .. } => {
            Error::InvalidCertificate(CertificateError::ApplicationVerificationFailure)
        }
        other => Error::General(other.to_string()),
    }
}

fn verify_tls13(
    message: &[u8],
    cert: &CertificateDer<'_>,
    dss: &DigitallySignedStruct,
) -> Result<HandshakeSignatureValid, Error> {
    rustls::crypto::verify_tls13_signature(
        message,
        cert,
        dss,
        &provider().signature_verification_algorithms,
    )
}

fn verify_tls12(
    message: &[u8],
    cert: &CertificateDer<'_>,
    dss: &DigitallySignedStruct,
) -> Result<HandshakeSignatureValid, Error> {
    rustls::crypto::verify_tls12_signature(
        message,
        cert,
        dss,
        &provider().signature_verification_algorithms,
    )
}

fn schemes() -> Vec<SignatureScheme> {
    provider()
        .signature_verification_algorithms
        .supported_schemes()
}

/// Entries kept by [`ChainCache`] before it starts over.
const CHAIN_CACHE_MAX: usize = 16_384;

/// Remembers chains that passed path validation, so a node reconnecting
/// with the same certificate costs one signature check (its handshake
/// signature, which proves it holds the key) instead of two. An entry is
/// used only under the same trusted roots (trust generation) and inside
/// the validity window of every certificate of the chain; revocation is
/// checked on every handshake regardless.
#[derive(Debug, Default)]
pub(crate) struct ChainCache {
    entries: Mutex<HashMap<[u8; 32], CachedChain>>,
}

#[derive(Debug, Clone)]
struct CachedChain {
    generation: u64,
    not_before: u64,
    not_after: u64,
    node_id: String,
}

fn chain_key(end_entity: &CertificateDer<'_>, intermediates: &[CertificateDer<'_>]) -> [u8; 32] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for cert in std::iter::once(end_entity).chain(intermediates) {
        ctx.update(&(cert.len() as u64).to_be_bytes());
        ctx.update(cert);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

fn unix_secs(t: std::time::SystemTime) -> u64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl ChainCache {
    fn get(&self, key: &[u8; 32], generation: u64, now: UnixTime) -> Option<String> {
        let entries = self.entries.lock();
        let hit = entries.get(key)?;
        let now = now.as_secs();
        (hit.generation == generation && hit.not_before <= now && now <= hit.not_after)
            .then(|| hit.node_id.clone())
    }

    fn insert(
        &self,
        key: [u8; 32],
        generation: u64,
        identity: &NodeIdentity,
        intermediates: &[CertificateDer<'_>],
    ) {
        // The window where every certificate of the chain is valid.
        let mut not_before = unix_secs(identity.not_before);
        let mut not_after = unix_secs(identity.not_after);
        for cert in intermediates {
            let Ok(parsed) = crate::identity::parse_certificate(cert) else {
                return;
            };
            let validity = parsed.validity();
            not_before = not_before.max(validity.not_before.timestamp().max(0).unsigned_abs());
            not_after = not_after.min(validity.not_after.timestamp().max(0).unsigned_abs());
        }
        let mut entries = self.entries.lock();
        if entries.len() >= CHAIN_CACHE_MAX {
            entries.clear();
        }
        entries.insert(
            key,
            CachedChain {
                generation,
                not_before,
                not_after,
                node_id: identity.node_id.clone(),
            },
        );
    }
}

/// Verifies client (node) certificates for a server.
#[derive(Debug)]
pub(crate) struct ClusterClientVerifier {
    pub(crate) trust: ClusterTrust,
    pub(crate) revocation: Arc<dyn Revocation>,
    pub(crate) mandatory: bool,
    pub(crate) cache: ChainCache,
}

impl ClientCertVerifier for ClusterClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        // No hints: a node has one certificate and always sends it.
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        let state = self.trust.load();
        let key = chain_key(end_entity, intermediates);
        let node_id = match self.cache.get(&key, state.generation, now) {
            Some(node_id) => node_id,
            None => {
                let mut chain = Vec::with_capacity(1 + intermediates.len());
                chain.push(end_entity.clone());
                chain.extend(intermediates.iter().cloned());
                let identity: NodeIdentity =
                    state.verify_node_chain(&chain, now).map_err(chain_error)?;
                self.cache
                    .insert(key, state.generation, &identity, intermediates);
                identity.node_id
            }
        };
        if self.revocation.is_removed(&node_id) {
            return Err(Error::InvalidCertificate(CertificateError::Revoked));
        }
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls12(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls13(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        schemes()
    }
}

/// Verifies a server's certificate for a node: webpki (chain, validity,
/// server name) against the current roots, then the cluster id.
#[derive(Debug)]
pub(crate) struct ClusterServerVerifier {
    pub(crate) trust: ClusterTrust,
}

impl ServerCertVerifier for ClusterServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let state = self.trust.load();
        state.server_verifier.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )?;
        let identity =
            NodeIdentity::from_der(end_entity).map_err(|e| Error::General(e.to_string()))?;
        if *identity.cluster_id != *state.cluster_id {
            return Err(Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            ));
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls12(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls13(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        schemes()
    }
}

/// Accepts any server certificate but still checks the handshake
/// signatures. Used only by a joining node to fetch the root CA before it
/// knows what to trust; the root is then checked against the token's
/// digest and nothing else is sent on that connection.
#[derive(Debug)]
pub(crate) struct AcceptAnyServer;

impl ServerCertVerifier for AcceptAnyServer {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls12(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls13(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        schemes()
    }
}
