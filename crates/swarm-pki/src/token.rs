//! Join tokens in SwarmKit's format: `SWMTKN-1-<digest>-<secret>`.
//!
//! - `digest`: the SHA-256 of the root CA certificate (DER), written as a
//!   50-character base-36 number. A joining node uses it to check the root
//!   a manager serves before it sends anything else.
//! - `secret`: 16 random bytes written as a 25-character base-36 number.
//!   It is what authorizes the join, and is compared in constant time.
//!
//! Parsing is strict and total: any malformed token is a [`TokenError`].

use std::fmt;
use std::str::FromStr;

use rand::{CryptoRng, RngCore};
use swarm_api::v1::NodeRole;

use crate::base36;

/// Prefix of every join token.
pub const TOKEN_PREFIX: &str = "SWMTKN";
/// The only token format version.
pub const TOKEN_VERSION: &str = "1";
/// Length of the digest part.
pub const DIGEST_LEN: usize = 50;
/// Length of the secret part.
pub const SECRET_LEN: usize = 25;
/// Length of a whole token.
pub const TOKEN_LEN: usize =
    TOKEN_PREFIX.len() + 1 + TOKEN_VERSION.len() + 1 + DIGEST_LEN + 1 + SECRET_LEN;

/// Why a text is not a join token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// The text does not have the token's length.
    #[error("a join token has {TOKEN_LEN} characters, this one has {0}")]
    Length(usize),
    /// The text does not start with `SWMTKN-`.
    #[error("a join token starts with `{TOKEN_PREFIX}-`")]
    Prefix,
    /// An unknown format version.
    #[error("unsupported join token version (only `{TOKEN_VERSION}` exists)")]
    Version,
    /// The parts are not separated by `-` where they should be.
    #[error("malformed join token: expected `{TOKEN_PREFIX}-1-<50 chars>-<25 chars>`")]
    Layout,
    /// The digest is not a 50-digit lowercase base-36 number of 256 bits.
    #[error("the root CA digest of the join token is not valid base 36")]
    Digest,
    /// The secret is not a 25-digit lowercase base-36 number of 128 bits.
    #[error("the secret of the join token is not valid base 36")]
    Secret,
}

/// A parsed join token. Its `Debug` and `Display` never show the secret in
/// logs: `Debug` redacts it, and `Display` is the full token (what a user
/// copies), so only format it where the token is meant to be shown.
#[derive(Clone, PartialEq, Eq)]
pub struct JoinToken {
    digest: [u8; 32],
    secret: [u8; 16],
}

impl JoinToken {
    /// A new token for the root CA whose certificate has `root_digest`
    /// (SHA-256 of its DER), with a random secret from `rng`.
    pub fn generate<R: RngCore + CryptoRng + ?Sized>(root_digest: [u8; 32], rng: &mut R) -> Self {
        let mut secret = [0u8; 16];
        rng.fill_bytes(&mut secret);
        JoinToken {
            digest: root_digest,
            secret,
        }
    }

    /// The token from its parts.
    pub fn from_parts(root_digest: [u8; 32], secret: [u8; 16]) -> Self {
        JoinToken {
            digest: root_digest,
            secret,
        }
    }

    /// Parses a token. Total: every input gives a token or a typed error.
    pub fn parse(text: &str) -> Result<Self, TokenError> {
        if text.len() != TOKEN_LEN {
            return Err(TokenError::Length(text.len()));
        }
        // The length is right; check the layout byte-wise so that no slice
        // can fall inside a multi-byte character.
        let bytes = text.as_bytes();
        if !bytes.is_ascii() {
            return Err(TokenError::Layout);
        }
        let prefix_end = TOKEN_PREFIX.len();
        if &bytes[..prefix_end] != TOKEN_PREFIX.as_bytes() || bytes[prefix_end] != b'-' {
            return Err(TokenError::Prefix);
        }
        let version_start = prefix_end + 1;
        let version_end = version_start + TOKEN_VERSION.len();
        if &bytes[version_start..version_end] != TOKEN_VERSION.as_bytes() {
            return Err(TokenError::Version);
        }
        let digest_start = version_end + 1;
        let digest_end = digest_start + DIGEST_LEN;
        if bytes[version_end] != b'-' || bytes[digest_end] != b'-' {
            return Err(TokenError::Layout);
        }
        // All ASCII, so these are character boundaries.
        let digest_text = &text[digest_start..digest_end];
        let secret_text = &text[digest_end + 1..];
        let digest = base36::decode::<32>(digest_text).ok_or(TokenError::Digest)?;
        let secret = base36::decode::<16>(secret_text).ok_or(TokenError::Secret)?;
        Ok(JoinToken { digest, secret })
    }

    /// SHA-256 of the root CA certificate this token trusts.
    pub fn root_digest(&self) -> &[u8; 32] {
        &self.digest
    }

    /// The same secret bound to another root (after a root rotation).
    pub fn with_root_digest(&self, root_digest: [u8; 32]) -> Self {
        JoinToken {
            digest: root_digest,
            secret: self.secret,
        }
    }

    /// True when `other` has the same digest and secret. Constant time in
    /// the secret: how many bytes match does not change the time taken.
    pub fn ct_eq(&self, other: &JoinToken) -> bool {
        let digest_eq = ct_eq_bytes(&self.digest, &other.digest);
        let secret_eq = ct_eq_bytes(&self.secret, &other.secret);
        digest_eq & secret_eq
    }
}

/// Constant-time equality of two equal-length byte strings.
pub(crate) fn ct_eq_bytes(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut diff = 0u8;
    for (x, y) in a.iter().zip(b) {
        diff |= x ^ y;
    }
    std::hint::black_box(diff) == 0
}

impl fmt::Display for JoinToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // 32 bytes always fit in 50 digits and 16 bytes in 25 digits.
        let digest = base36::encode(&self.digest, DIGEST_LEN).unwrap_or_default();
        let secret = base36::encode(&self.secret, SECRET_LEN).unwrap_or_default();
        write!(f, "{TOKEN_PREFIX}-{TOKEN_VERSION}-{digest}-{secret}")
    }
}

impl fmt::Debug for JoinToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digest = base36::encode(&self.digest, DIGEST_LEN).unwrap_or_default();
        write!(
            f,
            "JoinToken({TOKEN_PREFIX}-{TOKEN_VERSION}-{digest}-<redacted>)"
        )
    }
}

impl FromStr for JoinToken {
    type Err = TokenError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JoinToken::parse(s)
    }
}

/// The cluster's two join tokens, each rotatable on its own.
#[derive(Clone, PartialEq, Eq)]
pub struct JoinTokens {
    /// Token that makes a node a worker.
    pub worker: JoinToken,
    /// Token that makes a node a manager.
    pub manager: JoinToken,
}

impl fmt::Debug for JoinTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinTokens")
            .field("worker", &self.worker)
            .field("manager", &self.manager)
            .finish()
    }
}

impl JoinTokens {
    /// Two new tokens for the root with `root_digest`.
    pub fn generate<R: RngCore + CryptoRng + ?Sized>(root_digest: [u8; 32], rng: &mut R) -> Self {
        JoinTokens {
            worker: JoinToken::generate(root_digest, rng),
            manager: JoinToken::generate(root_digest, rng),
        }
    }

    /// Parses the tokens as stored in the cluster object.
    pub fn from_proto(tokens: &swarm_api::v1::JoinTokens) -> Result<Self, TokenError> {
        Ok(JoinTokens {
            worker: JoinToken::parse(&tokens.worker)?,
            manager: JoinToken::parse(&tokens.manager)?,
        })
    }

    /// The tokens as stored in the cluster object.
    pub fn to_proto(&self) -> swarm_api::v1::JoinTokens {
        swarm_api::v1::JoinTokens {
            worker: self.worker.to_string(),
            manager: self.manager.to_string(),
        }
    }

    /// Replaces the worker token: the old one stops working.
    pub fn rotate_worker<R: RngCore + CryptoRng + ?Sized>(&mut self, rng: &mut R) {
        self.worker = JoinToken::generate(self.worker.digest, rng);
    }

    /// Replaces the manager token: the old one stops working.
    pub fn rotate_manager<R: RngCore + CryptoRng + ?Sized>(&mut self, rng: &mut R) {
        self.manager = JoinToken::generate(self.manager.digest, rng);
    }

    /// Both tokens, same secrets, bound to a new root (the end of a root
    /// rotation).
    pub fn with_root_digest(&self, root_digest: [u8; 32]) -> Self {
        JoinTokens {
            worker: self.worker.with_root_digest(root_digest),
            manager: self.manager.with_root_digest(root_digest),
        }
    }

    /// The role `presented` grants, or `None` when it matches neither
    /// token. Both comparisons always run, in constant time.
    pub fn role_for(&self, presented: &JoinToken) -> Option<NodeRole> {
        let is_worker = self.worker.ct_eq(presented);
        let is_manager = self.manager.ct_eq(presented);
        match (is_manager, is_worker) {
            (true, _) => Some(NodeRole::Manager),
            (false, true) => Some(NodeRole::Worker),
            (false, false) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn token() -> JoinToken {
        JoinToken::generate([7u8; 32], &mut StdRng::seed_from_u64(1))
    }

    #[test]
    fn format_is_swarmkit_shaped_and_round_trips() {
        let t = token();
        let text = t.to_string();
        assert_eq!(text.len(), TOKEN_LEN);
        let parts: Vec<&str> = text.split('-').collect();
        assert_eq!(parts.len(), 4);
        assert_eq!(parts[0], "SWMTKN");
        assert_eq!(parts[1], "1");
        assert_eq!(parts[2].len(), 50);
        assert_eq!(parts[3].len(), 25);
        assert_eq!(JoinToken::parse(&text).unwrap(), t);
    }

    #[test]
    fn parses_a_token_written_by_swarmkit() {
        // The example token of Docker's swarm tutorial.
        let text =
            "SWMTKN-1-49nj1cmql0jkz5s954yi3oex3nedyz0fb0xx14ie39trti4wxv-8vxv8rssmk743ojnwacrr2e7c";
        let t = JoinToken::parse(text).unwrap();
        assert_eq!(t.to_string(), text);
    }

    #[test]
    fn malformed_tokens_are_typed_errors() {
        let good = token().to_string();
        let cases: Vec<(String, TokenError)> = vec![
            (String::new(), TokenError::Length(0)),
            (format!("{good}x"), TokenError::Length(TOKEN_LEN + 1)),
            (good.replacen("SWMTKN", "SWMTKX", 1), TokenError::Prefix),
            (
                good.replacen("SWMTKN-1", "SWMTKN-2", 1),
                TokenError::Version,
            ),
            (
                format!("{}_{}", &good[..59], &good[60..]),
                TokenError::Layout,
            ),
            (
                format!("{}A{}", &good[..9], &good[10..]),
                TokenError::Digest,
            ),
            (format!("{}Z", &good[..TOKEN_LEN - 1]), TokenError::Secret),
            // 25 'z' overflow 128 bits.
            (
                format!("{}{}", &good[..60], "z".repeat(25)),
                TokenError::Secret,
            ),
            (
                format!("{}{}", &good[..9], "z".repeat(50)) + &good[59..],
                TokenError::Digest,
            ),
        ];
        for (text, want) in cases {
            assert_eq!(JoinToken::parse(&text), Err(want), "{text}");
        }
        // Multi-byte characters at the right length do not panic.
        let weird = "é".repeat(TOKEN_LEN / 2) + "x";
        assert!(JoinToken::parse(&weird).is_err());
    }

    #[test]
    fn debug_redacts_the_secret() {
        let t = token();
        let text = t.to_string();
        let secret = &text[60..];
        assert!(!format!("{t:?}").contains(secret));
        let tokens = JoinTokens::generate([1; 32], &mut StdRng::seed_from_u64(2));
        assert!(!format!("{tokens:?}").contains(&tokens.worker.to_string()[60..]));
    }

    #[test]
    fn roles_come_only_from_the_matching_token_and_rotation_revokes() {
        let mut rng = StdRng::seed_from_u64(3);
        let mut tokens = JoinTokens::generate([9; 32], &mut rng);
        let worker = tokens.worker.clone();
        let manager = tokens.manager.clone();
        assert_eq!(tokens.role_for(&worker), Some(NodeRole::Worker));
        assert_eq!(tokens.role_for(&manager), Some(NodeRole::Manager));
        // Same secret, other root: refused.
        assert_eq!(tokens.role_for(&worker.with_root_digest([8; 32])), None);
        tokens.rotate_worker(&mut rng);
        assert_eq!(tokens.role_for(&worker), None);
        assert_eq!(tokens.role_for(&manager), Some(NodeRole::Manager));
        tokens.rotate_manager(&mut rng);
        assert_eq!(tokens.role_for(&manager), None);
        let proto = tokens.to_proto();
        assert_eq!(JoinTokens::from_proto(&proto).unwrap(), tokens);
    }

    proptest! {
        #[test]
        fn parse_is_total(text in ".{0,120}") {
            let _ = JoinToken::parse(&text);
        }

        #[test]
        fn parse_is_total_near_the_right_shape(
            digest in "[0-9a-zA-Z_-]{50}", secret in "[0-9a-zA-Z_-]{25}"
        ) {
            let text = format!("SWMTKN-1-{digest}-{secret}");
            if let Ok(t) = JoinToken::parse(&text) {
                prop_assert_eq!(t.to_string(), text);
            }
        }
    }
}
