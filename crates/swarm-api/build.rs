//! Compiles the protobuf definitions with tonic-prost-build.
//!
//! Besides the usual codegen, this walks the descriptors to give every
//! message a serde representation a person can read and write:
//! enum fields (plain `i32` in prost) are written as their short lowercase
//! names (`"running"`, `"drain"`), and `bytes` fields as base64 strings.
//! It also emits, per enum, the table of short names that
//! `swarm_api::EnumName` is built on.

use std::fmt::Write as _;
use std::path::PathBuf;

use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{DescriptorProto, EnumDescriptorProto, FileDescriptorSet};

const PACKAGE: &str = "swarm.v1";

/// Messages whose derived `Debug` would print a secret; `swarm_api` implements
/// a redacting `Debug` for each.
const REDACTED: &[&str] = &[
    ".swarm.v1.SecretSpec",
    ".swarm.v1.ConfigSpec",
    ".swarm.v1.RootCa",
    ".swarm.v1.RootRotation",
    ".swarm.v1.CaConfig",
    ".swarm.v1.JoinTokens",
    ".swarm.v1.EncryptionKey",
    ".swarm.v1.Cluster",
    ".swarm.v1.IssueNodeCertificateRequest",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from("proto");
    let protos: Vec<PathBuf> = [
        "swarm/v1/types.proto",
        "swarm/v1/specs.proto",
        "swarm/v1/objects.proto",
        "swarm/v1/store.proto",
        "swarm/v1/control.proto",
        "swarm/v1/dispatcher.proto",
        "swarm/v1/ca.proto",
        "swarm/v1/raft.proto",
        "swarm/v1/logbroker.proto",
        "grpc/health/v1/health.proto",
    ]
    .iter()
    .map(|p| root.join(p))
    .collect();
    for p in &protos {
        println!("cargo:rerun-if-changed={}", p.display());
    }
    println!("cargo:rerun-if-changed=build.rs");

    let mut config = tonic_prost_build::Config::new();
    // A protoc given in PROTOC (e.g. Debian's protobuf-compiler) wins; else
    // the vendored one, so a fresh machine needs nothing installed.
    if std::env::var_os("PROTOC").is_none() {
        config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    }
    let fds = config.load_fds(&protos, &[&root])?;
    let plan = Plan::from_fds(&fds);

    let mut builder = tonic_prost_build::configure()
        .message_attribute(
            ".swarm.v1",
            "#[derive(serde::Serialize, serde::Deserialize)] #[serde(default)]",
        )
        .enum_attribute(
            ".swarm.v1",
            "#[derive(serde::Serialize, serde::Deserialize)] #[serde(rename_all = \"snake_case\")]",
        )
        .btree_map(".")
        .skip_debug(REDACTED.iter().copied());
    for (path, attr) in &plan.field_attributes {
        builder = builder.field_attribute(path, attr);
    }
    builder.compile_fds(fds.clone())?;

    let out = PathBuf::from(std::env::var("OUT_DIR")?).join("enum_names.rs");
    std::fs::write(out, plan.enum_tables)?;
    Ok(())
}

/// What the descriptor walk decided.
struct Plan {
    field_attributes: Vec<(String, String)>,
    enum_tables: String,
}

impl Plan {
    fn from_fds(fds: &FileDescriptorSet) -> Self {
        let mut plan = Plan {
            field_attributes: Vec::new(),
            enum_tables: String::new(),
        };
        for file in &fds.file {
            if file.package() != PACKAGE {
                continue;
            }
            let prefix = format!(".{PACKAGE}");
            for e in &file.enum_type {
                plan.enum_table(e);
            }
            for m in &file.message_type {
                plan.message(&prefix, m);
            }
        }
        plan
    }

    fn message(&mut self, parent: &str, m: &DescriptorProto) {
        let path = format!("{parent}.{}", m.name());
        if !m.enum_type.is_empty() {
            panic!(
                "{path}: nested enums are not supported by the serde mapping; declare enums at top level"
            );
        }
        for f in &m.field {
            let in_oneof = f.oneof_index.is_some() && !f.proto3_optional();
            let repeated = f.label() == Label::Repeated;
            let field_path = format!("{path}.{}", f.name());
            match f.r#type() {
                Type::Enum => {
                    if in_oneof {
                        panic!(
                            "{field_path}: enum fields inside a oneof are not supported by the serde mapping"
                        );
                    }
                    let rust = rust_enum_path(f.type_name());
                    let (ser, de) = if repeated {
                        ("serialize_vec", "deserialize_vec")
                    } else {
                        ("serialize", "deserialize")
                    };
                    self.field_attributes.push((
                        field_path,
                        format!(
                            "#[serde(serialize_with = \"crate::serde_enum::{ser}::<{rust}, _>\", \
                             deserialize_with = \"crate::serde_enum::{de}::<{rust}, _>\")]"
                        ),
                    ));
                }
                Type::Bytes => {
                    if in_oneof || repeated {
                        panic!(
                            "{field_path}: only singular bytes fields are supported by the serde mapping"
                        );
                    }
                    self.field_attributes.push((
                        field_path,
                        "#[serde(with = \"crate::serde_b64\")]".to_string(),
                    ));
                }
                _ => {}
            }
        }
        for nested in &m.nested_type {
            if nested
                .options
                .as_ref()
                .and_then(|o| o.map_entry)
                .unwrap_or(false)
            {
                // Map entries: their value types are never enums or bytes here.
                for f in &nested.field {
                    if matches!(f.r#type(), Type::Enum | Type::Bytes) {
                        panic!(
                            "{path}.{}: maps of enums or bytes are not supported",
                            nested.name()
                        );
                    }
                }
                continue;
            }
            self.message(&path, nested);
        }
    }

    fn enum_table(&mut self, e: &EnumDescriptorProto) {
        let name = e.name();
        let prefix = format!("{}_", screaming_snake(name));
        let mut rows = String::new();
        for v in &e.value {
            let short = v
                .name()
                .strip_prefix(&prefix)
                .unwrap_or_else(|| panic!("enum value {} must start with {prefix}", v.name()));
            let _ = write!(
                rows,
                "({}, \"{}\"), ",
                v.number(),
                short.to_ascii_lowercase()
            );
        }
        let _ = writeln!(
            self.enum_tables,
            "impl crate::EnumName for crate::v1::{name} {{\n    \
             const NAMES: &'static [(i32, &'static str)] = &[{rows}];\n}}\n\
             impl ::std::fmt::Display for crate::v1::{name} {{\n    \
             fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {{\n        \
             f.write_str(crate::EnumName::short_name(*self))\n    }}\n}}\n\
             impl ::std::str::FromStr for crate::v1::{name} {{\n    \
             type Err = crate::ParseEnumError;\n    \
             fn from_str(s: &str) -> ::std::result::Result<Self, Self::Err> {{\n        \
             <Self as crate::EnumName>::parse_name(s)\n    }}\n}}"
        );
    }
}

/// `.swarm.v1.TaskState` -> `crate::v1::TaskState`.
fn rust_enum_path(type_name: &str) -> String {
    let short = type_name
        .strip_prefix(&format!(".{PACKAGE}."))
        .unwrap_or_else(|| panic!("enum {type_name} is outside package {PACKAGE}"));
    if short.contains('.') {
        panic!("nested enum {type_name} is not supported by the serde mapping");
    }
    format!("crate::v1::{short}")
}

/// `TaskState` -> `TASK_STATE`.
fn screaming_snake(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}
