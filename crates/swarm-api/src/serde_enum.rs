//! serde for enum-typed fields, which prost represents as `i32`: written as
//! the value's short name, read from a short name (or a known number).
//!
//! The build script attaches these functions to every enum field.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, SeqAccess, Visitor};
use serde::ser::SerializeSeq;
use serde::{Deserializer, Serializer};

use crate::EnumName;

pub(crate) fn serialize<E: EnumName, S: Serializer>(v: &i32, s: S) -> Result<S::Ok, S::Error> {
    match E::name_of(*v) {
        Some(name) => s.serialize_str(name),
        // An unknown value (from a newer peer) is kept as its number.
        None => s.serialize_i32(*v),
    }
}

pub(crate) fn deserialize<'de, E: EnumName, D: Deserializer<'de>>(d: D) -> Result<i32, D::Error> {
    d.deserialize_any(One::<E>(PhantomData))
}

pub(crate) fn serialize_vec<E: EnumName, S: Serializer>(
    v: &[i32],
    s: S,
) -> Result<S::Ok, S::Error> {
    let mut seq = s.serialize_seq(Some(v.len()))?;
    for value in v {
        match E::name_of(*value) {
            Some(name) => seq.serialize_element(name)?,
            None => seq.serialize_element(value)?,
        }
    }
    seq.end()
}

pub(crate) fn deserialize_vec<'de, E: EnumName, D: Deserializer<'de>>(
    d: D,
) -> Result<Vec<i32>, D::Error> {
    d.deserialize_seq(Many::<E>(PhantomData))
}

struct One<E>(PhantomData<E>);

impl<E: EnumName> One<E> {
    fn known<Er: de::Error>(v: i64) -> Result<i32, Er> {
        i32::try_from(v)
            .ok()
            .filter(|v| E::name_of(*v).is_some())
            .ok_or_else(|| {
                Er::custom(format!(
                    "unknown value {v}, expected one of: {}",
                    E::names().join(", ")
                ))
            })
    }
}

impl<'de, E: EnumName> Visitor<'de> for One<E> {
    type Value = i32;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "one of: {}", E::names().join(", "))
    }

    fn visit_str<Er: de::Error>(self, v: &str) -> Result<i32, Er> {
        E::parse_name(v).map(Into::into).map_err(Er::custom)
    }

    fn visit_i64<Er: de::Error>(self, v: i64) -> Result<i32, Er> {
        Self::known(v)
    }

    fn visit_u64<Er: de::Error>(self, v: u64) -> Result<i32, Er> {
        Self::known(i64::try_from(v).unwrap_or(i64::MAX))
    }
}

struct Many<E>(PhantomData<E>);

impl<'de, E: EnumName> Visitor<'de> for Many<E> {
    type Value = Vec<i32>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a list of: {}", E::names().join(", "))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<i32>, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(v) = seq.next_element::<Named<E>>()? {
            out.push(v.0);
        }
        Ok(out)
    }
}

struct Named<E>(i32, PhantomData<E>);

impl<'de, E: EnumName> serde::Deserialize<'de> for Named<E> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        deserialize::<E, D>(d).map(|v| Named(v, PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use crate::v1::{ListTasksRequest, NodeSpec, TaskState};

    #[test]
    fn enum_fields_are_names_in_json() {
        let spec = NodeSpec {
            availability: 2,
            desired_role: 1,
            ..Default::default()
        };
        let json = serde_json::to_value(&spec).unwrap();
        assert_eq!(json["availability"], "drain");
        assert_eq!(json["desired_role"], "manager");
        let back: NodeSpec = serde_json::from_value(json).unwrap();
        assert_eq!(back, spec);
    }

    #[test]
    fn repeated_enum_fields_round_trip() {
        let req = ListTasksRequest {
            desired_states: vec![TaskState::Running.into(), TaskState::Shutdown.into()],
            ..Default::default()
        };
        let json = serde_json::to_string(&req).unwrap();
        assert!(
            json.contains(r#""desired_states":["running","shutdown"]"#),
            "{json}"
        );
        let back: ListTasksRequest = serde_json::from_str(&json).unwrap();
        assert_eq!(back, req);
    }

    #[test]
    fn unknown_names_and_numbers_are_errors() {
        let err = serde_json::from_str::<NodeSpec>(r#"{"availability":"asleep"}"#).unwrap_err();
        assert!(
            err.to_string()
                .contains("expected one of: active, pause, drain"),
            "{err}"
        );
        assert!(serde_json::from_str::<NodeSpec>(r#"{"availability":7}"#).is_err());
        let ok: NodeSpec = serde_json::from_str(r#"{"availability":1}"#).unwrap();
        assert_eq!(ok.availability, 1);
    }
}
