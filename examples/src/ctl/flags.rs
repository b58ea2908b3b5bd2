//! Parsing the small value syntaxes of docker-style flags: `--publish`,
//! `--mode`, `--secret`, CPU and memory amounts, `KEY=VALUE` pairs.
//!
//! Pure functions from text to protocol values, with errors that quote
//! what was given and say what was expected.

use std::collections::BTreeMap;
use std::time::SystemTime;

use swarm_api::EnumName;
use swarm_api::v1::service_spec::Mode;
use swarm_api::v1::{
    ConfigReference, FileTarget, GlobalJob, GlobalService, PortConfig, Protocol, PublishMode,
    ReplicatedJob, ReplicatedService, SecretReference,
};

/// A flag value that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {flag} {given:?}: {reason}")]
pub struct FlagError {
    /// The flag, e.g. `--publish`.
    pub flag: &'static str,
    /// What was given.
    pub given: String,
    /// Why it is refused.
    pub reason: String,
}

fn err(flag: &'static str, given: &str, reason: impl Into<String>) -> FlagError {
    FlagError {
        flag,
        given: given.to_string(),
        reason: reason.into(),
    }
}

/// Splits `KEY=VALUE` (the value may be empty or contain `=`).
pub fn key_value(flag: &'static str, s: &str) -> Result<(String, String), FlagError> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(err(flag, s, "expected KEY=VALUE")),
    }
}

/// Labels from `KEY=VALUE` or `KEY` (empty value) items.
pub fn labels(flag: &'static str, items: &[String]) -> Result<BTreeMap<String, String>, FlagError> {
    items
        .iter()
        .map(|s| {
            if s.contains('=') {
                key_value(flag, s)
            } else if s.is_empty() {
                Err(err(flag, s, "expected KEY=VALUE"))
            } else {
                Ok((s.clone(), String::new()))
            }
        })
        .collect()
}

/// The service mode from `--mode` and its count flags. `replicas` defaults
/// to 1 (replicated); for `replicated-job`, `replicas` is the number of
/// completions and `max_concurrent` defaults to it.
pub fn mode(
    name: &str,
    replicas: Option<u64>,
    max_concurrent: Option<u64>,
) -> Result<Mode, FlagError> {
    let global_with_count = || {
        err(
            "--mode",
            name,
            "--replicas and --max-concurrent apply only to replicated modes",
        )
    };
    match name.replace('_', "-").to_ascii_lowercase().as_str() {
        "replicated" => Ok(Mode::Replicated(ReplicatedService {
            replicas: replicas.unwrap_or(1),
        })),
        "global" if replicas.is_none() && max_concurrent.is_none() => {
            Ok(Mode::Global(GlobalService {}))
        }
        "replicated-job" => {
            let total = replicas.unwrap_or(1);
            Ok(Mode::ReplicatedJob(ReplicatedJob {
                max_concurrent: max_concurrent.unwrap_or(total),
                total_completions: total,
            }))
        }
        "global-job" if replicas.is_none() && max_concurrent.is_none() => {
            Ok(Mode::GlobalJob(GlobalJob {}))
        }
        "global" | "global-job" => Err(global_with_count()),
        _ => Err(err(
            "--mode",
            name,
            "expected replicated, global, replicated-job or global-job",
        )),
    }
}

/// The short name of a service mode, as `service ls` prints it.
pub fn mode_name(mode: Option<&Mode>) -> &'static str {
    match mode {
        Some(Mode::Replicated(_)) | None => "replicated",
        Some(Mode::Global(_)) => "global",
        Some(Mode::ReplicatedJob(_)) => "replicated job",
        Some(Mode::GlobalJob(_)) => "global job",
    }
}

fn port_number(flag: &'static str, whole: &str, s: &str) -> Result<u32, FlagError> {
    match s.parse::<u16>() {
        Ok(p) if p != 0 => Ok(u32::from(p)),
        _ => Err(err(flag, whole, format!("{s:?} is not a port (1-65535)"))),
    }
}

/// A published port: `TARGET`, `PUBLISHED:TARGET`, either with `/tcp`,
/// `/udp` or `/sctp`, or the long form
/// `published=8080,target=80,protocol=udp,mode=host`.
pub fn publish(s: &str) -> Result<PortConfig, FlagError> {
    const F: &str = "--publish";
    let mut port = PortConfig::default();
    if s.contains('=') {
        for part in s.split(',') {
            let (k, v) = key_value(F, part)?;
            match k.as_str() {
                "published" => port.published_port = port_number(F, s, &v)?,
                "target" => port.target_port = port_number(F, s, &v)?,
                "protocol" => {
                    port.set_protocol(
                        Protocol::parse_name(&v).map_err(|e| err(F, s, e.to_string()))?,
                    );
                }
                "mode" => {
                    port.set_publish_mode(
                        PublishMode::parse_name(&v).map_err(|e| err(F, s, e.to_string()))?,
                    );
                }
                "name" => port.name = v,
                other => return Err(err(F, s, format!("unknown field {other:?}"))),
            }
        }
        if port.target_port == 0 {
            return Err(err(F, s, "target= is required"));
        }
        return Ok(port);
    }
    let (ports, proto) = match s.split_once('/') {
        Some((p, proto)) => (p, Some(proto)),
        None => (s, None),
    };
    if let Some(proto) = proto {
        port.set_protocol(Protocol::parse_name(proto).map_err(|e| err(F, s, e.to_string()))?);
    }
    match ports.split_once(':') {
        Some((published, target)) => {
            port.published_port = port_number(F, s, published)?;
            port.target_port = port_number(F, s, target)?;
        }
        None => port.target_port = port_number(F, s, ports)?,
    }
    Ok(port)
}

/// A port as `service ls` prints it: `*:8080->80/tcp`.
pub fn port_text(p: &PortConfig) -> String {
    let published = if p.published_port == 0 {
        String::new()
    } else {
        p.published_port.to_string()
    };
    let host = if p.publish_mode() == PublishMode::Host {
        " (host)"
    } else {
        ""
    };
    format!(
        "*:{published}->{}/{}{host}",
        p.target_port,
        p.protocol().short_name()
    )
}

/// Fields of a `--secret`/`--config` long form.
fn file_reference(flag: &'static str, s: &str) -> Result<(String, FileTarget), FlagError> {
    let mut source = String::new();
    let mut file = FileTarget::default();
    if !s.contains('=') {
        file.name = s.to_string();
        return Ok((s.to_string(), file));
    }
    for part in s.split(',') {
        let (k, v) = key_value(flag, part)?;
        match k.as_str() {
            "source" | "src" => source = v,
            "target" => file.name = v,
            "uid" => file.uid = v,
            "gid" => file.gid = v,
            "mode" => {
                file.mode = u32::from_str_radix(v.trim_start_matches("0o"), 8)
                    .map_err(|_| err(flag, s, format!("mode {v:?} is not octal")))?;
            }
            other => return Err(err(flag, s, format!("unknown field {other:?}"))),
        }
    }
    if source.is_empty() {
        return Err(err(flag, s, "source= is required"));
    }
    if file.name.is_empty() {
        file.name.clone_from(&source);
    }
    Ok((source, file))
}

/// A secret reference: `NAME` or `source=NAME,target=FILE,mode=0400`.
pub fn secret(s: &str) -> Result<SecretReference, FlagError> {
    let (name, file) = file_reference("--secret", s)?;
    Ok(SecretReference {
        secret_id: String::new(),
        secret_name: name,
        file: Some(file),
    })
}

/// A config reference: `NAME` or `source=NAME,target=/etc/app.conf`.
pub fn config(s: &str) -> Result<ConfigReference, FlagError> {
    let (name, file) = file_reference("--config", s)?;
    Ok(ConfigReference {
        config_id: String::new(),
        config_name: name,
        file: Some(file),
    })
}

/// CPUs as a decimal number (`0.5`, `2`) into nano-CPUs.
pub fn nano_cpus(flag: &'static str, s: &str) -> Result<i64, FlagError> {
    let v: f64 = s
        .parse()
        .map_err(|_| err(flag, s, "expected a number of CPUs, e.g. 0.5"))?;
    if !v.is_finite() || !(0.0..=1e6).contains(&v) {
        return Err(err(flag, s, "out of range"));
    }
    // Bounded above, so the product fits an i64.
    #[allow(clippy::cast_possible_truncation, reason = "bounded to 1e15 above")]
    Ok((v * 1e9).round() as i64)
}

/// Memory as bytes with an optional unit: `512`, `64k`, `512M`, `1g`,
/// `2GiB` (units are binary, as docker's).
pub fn memory_bytes(flag: &'static str, s: &str) -> Result<i64, FlagError> {
    let t = s.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(digits);
    let n: i64 = num
        .parse()
        .map_err(|_| err(flag, s, "expected a size, e.g. 512M"))?;
    let shift = match unit
        .to_ascii_lowercase()
        .trim_end_matches("ib")
        .trim_end_matches('b')
    {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        _ => return Err(err(flag, s, "unknown unit (use b, k, m, g or t)")),
    };
    n.checked_mul(1i64 << shift)
        .ok_or_else(|| err(flag, s, "too large"))
}

/// A duration such as `10s`, `1m30s`, `500ms`.
pub fn duration(flag: &'static str, s: &str) -> Result<std::time::Duration, FlagError> {
    humantime::parse_duration(s).map_err(|e| err(flag, s, e.to_string()))
}

/// A point in time given as RFC 3339 (`2026-11-21T10:00:00Z`) or as a
/// duration back from `now` (`10m`, `1h30m`), as `docker logs --since`.
pub fn since(flag: &'static str, s: &str, now: SystemTime) -> Result<SystemTime, FlagError> {
    if let Ok(t) = humantime::parse_rfc3339_weak(s) {
        return Ok(t);
    }
    let back = humantime::parse_duration(s).map_err(|_| {
        err(
            flag,
            s,
            "expected a time (2026-11-21T10:00:00Z) or a duration (10m, 1h30m)".to_string(),
        )
    })?;
    now.checked_sub(back)
        .ok_or_else(|| err(flag, s, "too far back".to_string()))
}

/// An enum flag by its short name (`on-failure`, `rollback`, `drain`).
pub fn enum_value<E: EnumName>(flag: &'static str, s: &str) -> Result<E, FlagError> {
    E::parse_name(s).map_err(|e| err(flag, s, e.to_string()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn publish_forms() {
        let cases: &[(&str, u32, u32, Protocol, PublishMode)] = &[
            ("8080:80", 8080, 80, Protocol::Tcp, PublishMode::Ingress),
            ("80", 0, 80, Protocol::Tcp, PublishMode::Ingress),
            ("53:53/udp", 53, 53, Protocol::Udp, PublishMode::Ingress),
            (
                "published=8080,target=80,mode=host",
                8080,
                80,
                Protocol::Tcp,
                PublishMode::Host,
            ),
        ];
        for (text, published, target, proto, mode) in cases {
            let p = publish(text).unwrap();
            assert_eq!(
                (
                    p.published_port,
                    p.target_port,
                    p.protocol(),
                    p.publish_mode()
                ),
                (*published, *target, *proto, *mode),
                "{text}"
            );
        }
        for bad in ["", "x:80", "8080:0", "8080:80/icmp", "published=1", "99999"] {
            assert!(publish(bad).is_err(), "{bad} should be refused");
        }
        assert_eq!(port_text(&publish("8080:80").unwrap()), "*:8080->80/tcp");
    }

    #[test]
    fn modes() {
        assert_eq!(
            mode("replicated", Some(3), None).unwrap(),
            Mode::Replicated(ReplicatedService { replicas: 3 })
        );
        assert_eq!(
            mode("replicated-job", Some(4), None).unwrap(),
            Mode::ReplicatedJob(ReplicatedJob {
                max_concurrent: 4,
                total_completions: 4
            })
        );
        assert_eq!(
            mode("global", None, None).unwrap(),
            Mode::Global(GlobalService {})
        );
        assert!(mode("global", Some(2), None).is_err());
        assert!(mode("sideways", None, None).is_err());
    }

    #[test]
    fn sizes_and_cpus() {
        assert_eq!(memory_bytes("--limit-memory", "512M").unwrap(), 512 << 20);
        assert_eq!(memory_bytes("--limit-memory", "1GiB").unwrap(), 1 << 30);
        assert_eq!(memory_bytes("--limit-memory", "100").unwrap(), 100);
        assert!(memory_bytes("--limit-memory", "12q").is_err());
        assert_eq!(nano_cpus("--limit-cpu", "0.5").unwrap(), 500_000_000);
        assert!(nano_cpus("--limit-cpu", "-1").is_err());
    }

    #[test]
    fn secrets_and_labels() {
        let s = secret("source=db,target=password,mode=0400").unwrap();
        assert_eq!(s.secret_name, "db");
        let f = s.file.unwrap();
        assert_eq!((f.name.as_str(), f.mode), ("password", 0o400));
        assert_eq!(secret("db").unwrap().file.unwrap().name, "db");
        let l = labels("--label", &["a=b".into(), "c".into()]).unwrap();
        assert_eq!(l.get("a").unwrap(), "b");
        assert_eq!(l.get("c").unwrap(), "");
        assert!(key_value("--env", "=x").is_err());
    }

    #[test]
    fn since_takes_a_time_or_a_duration_back() {
        let now = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_800_000_000);
        assert_eq!(
            since("--since", "10m", now).unwrap(),
            now - std::time::Duration::from_secs(600)
        );
        assert_eq!(since("--since", "2027-01-15T08:00:00Z", now).unwrap(), now);
        let e = since("--since", "yesterday-ish", now).unwrap_err();
        assert!(e.to_string().contains("--since"), "{e}");
    }
}
