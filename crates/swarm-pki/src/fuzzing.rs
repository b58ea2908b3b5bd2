//! Fuzz bodies: every parser of untrusted input this crate has, as plain
//! functions that must never panic. The cargo-fuzz targets in `fuzz/`
//! call them, and the unit tests run them on random and mutated inputs so
//! stable CI exercises them too.

use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use swarm_api::v1::NodeRole;

use crate::ca::ClusterCa;
use crate::csr::verify_csr;
use crate::identity::NodeIdentity;
use crate::root::RootCa;
use crate::token::JoinToken;
use crate::trust::parse_bundle_pem;

/// Join token parsing: total, and whatever parses prints back to the same
/// text.
pub fn fuzz_token(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(token) = JoinToken::parse(text) {
        assert_eq!(token.to_string(), text, "a parsed token must round-trip");
    }
}

fn fuzz_ca() -> Option<&'static ClusterCa> {
    static CA: OnceLock<Option<ClusterCa>> = OnceLock::new();
    CA.get_or_init(|| {
        // Fixed time so the CA works whatever the machine's clock says.
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let root = RootCa::generate(now).ok()?;
        let clock = crate::clock::ManualClock::new(now);
        ClusterCa::with_clock("fuzzcluster", root, std::sync::Arc::new(clock)).ok()
    })
    .as_ref()
}

/// CSR handling as the CA does it: parse and verify, then sign. A CSR
/// that verifies must sign, and the certificate must carry the identity
/// the CA chose.
pub fn fuzz_csr(data: &[u8]) {
    let verified = verify_csr(data);
    let Some(ca) = fuzz_ca() else { return };
    let node_id = "0123456789abcdefghijklmno";
    match ca.issue(data, node_id, NodeRole::Worker) {
        Ok(issued) => {
            assert!(verified.is_ok(), "issued for a CSR that did not verify");
            assert_eq!(issued.identity.node_id, node_id);
            assert_eq!(issued.identity.cluster_id, "fuzzcluster");
        }
        Err(_) => assert!(verified.is_err(), "a verified CSR must be signed"),
    }
}

/// Reading an identity and a PEM bundle from untrusted certificates.
pub fn fuzz_certificate(data: &[u8]) {
    let _ = NodeIdentity::from_der(data);
    let _ = parse_bundle_pem(data);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    use crate::csr::NodeKey;

    fn valid_csr() -> Vec<u8> {
        NodeKey::generate().unwrap().csr_pem().unwrap().into_bytes()
    }

    fn valid_csr_der() -> Vec<u8> {
        use rustls::pki_types::CertificateSigningRequestDer;
        use rustls::pki_types::pem::PemObject;
        CertificateSigningRequestDer::from_pem_slice(&valid_csr())
            .unwrap()
            .as_ref()
            .to_vec()
    }

    #[test]
    fn seeds_pass() {
        fuzz_csr(&valid_csr());
        fuzz_csr(&valid_csr_der());
        fuzz_token(b"SWMTKN-1-49nj1cmql0jkz5s954yi3oex3nedyz0fb0xx14ie39trti4wxv-8vxv8rssmk743ojnwacrr2e7c");
        fuzz_certificate(b"");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn token_parser_never_panics(data in proptest::collection::vec(any::<u8>(), 0..100)) {
            fuzz_token(&data);
        }

        #[test]
        fn csr_handling_never_panics_on_mutated_csrs(
            flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
            cut in any::<prop::sample::Index>(),
        ) {
            let mut der = valid_csr_der();
            for (at, byte) in flips {
                let i = at.index(der.len());
                der[i] ^= byte;
            }
            fuzz_csr(&der);
            let n = cut.index(der.len());
            fuzz_csr(&der[..n]);
        }

        #[test]
        fn identity_reader_never_panics_on_mutated_certificates(
            flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        ) {
            let ca = fuzz_ca().unwrap();
            let key = NodeKey::generate().unwrap();
            let issued = ca
                .issue_for_key(&key, "0123456789abcdefghijklmno", NodeRole::Manager)
                .unwrap();
            let mut der = issued.chain[0].to_vec();
            for (at, byte) in flips {
                let i = at.index(der.len());
                der[i] ^= byte;
            }
            fuzz_certificate(&der);
        }

        #[test]
        fn csr_and_certificate_readers_never_panic_on_noise(
            data in proptest::collection::vec(any::<u8>(), 0..600)
        ) {
            fuzz_csr(&data);
            fuzz_certificate(&data);
        }
    }
}
