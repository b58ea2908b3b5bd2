//! serde for `bytes` fields: standard base64 strings in JSON.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Deserializer, Serializer};

pub(crate) fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&STANDARD.encode(v))
}

pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
    let text = String::deserialize(d)?;
    STANDARD
        .decode(text.as_bytes())
        .map_err(|e| serde::de::Error::custom(format!("invalid base64: {e}")))
}

#[cfg(test)]
mod tests {
    use crate::v1::ConfigSpec;

    #[test]
    fn bytes_are_base64() {
        let spec = ConfigSpec {
            data: b"hello".to_vec(),
            ..Default::default()
        };
        let json = serde_json::to_value(&spec).unwrap();
        assert_eq!(json["data"], "aGVsbG8=");
        let back: ConfigSpec = serde_json::from_value(json).unwrap();
        assert_eq!(back.data, b"hello");
        assert!(serde_json::from_str::<ConfigSpec>(r#"{"data":"***"}"#).is_err());
    }
}
