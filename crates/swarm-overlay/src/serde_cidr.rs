//! Serde for `swarm_api::net::Cidr` as its CIDR text.

use serde::{Deserialize, Deserializer, Serializer};
use swarm_api::net::Cidr;

pub(crate) fn serialize<S: Serializer>(c: &Cidr, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(c)
}

pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Cidr, D::Error> {
    let s = String::deserialize(d)?;
    s.parse().map_err(serde::de::Error::custom)
}

/// The same for `Option<Cidr>`.
pub(crate) mod option {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(c: &Option<Cidr>, s: S) -> Result<S::Ok, S::Error> {
        match c {
            Some(c) => s.collect_str(c),
            None => s.serialize_none(),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Cidr>, D::Error> {
        let s = Option::<String>::deserialize(d)?;
        s.map(|s| s.parse().map_err(serde::de::Error::custom))
            .transpose()
    }
}
