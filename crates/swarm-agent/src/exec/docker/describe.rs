//! The node as the engine describes it: CPUs, memory, labels, plugins.

use bollard::models::SystemInfo;
use swarm_api::v1::{EngineDescription, NodeDescription, Platform, PluginDescription, Resources};

/// The node description from the engine's `/info`. Anything the engine
/// leaves out falls back to what the host says.
pub(super) fn node_description(info: &SystemInfo) -> NodeDescription {
    let nano_cpus = info
        .ncpu
        .filter(|n| *n > 0)
        .map_or_else(crate::node::nano_cpus, |n| n.saturating_mul(1_000_000_000));
    let memory_bytes = info
        .mem_total
        .filter(|m| *m > 0)
        .unwrap_or_else(crate::node::memory_bytes);
    let labels = info
        .labels
        .iter()
        .flatten()
        .map(|l| match l.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (l.clone(), String::new()),
        })
        .collect();
    let mut plugins = Vec::new();
    if let Some(p) = &info.plugins {
        for (kind, names) in [
            ("Volume", &p.volume),
            ("Network", &p.network),
            ("Authorization", &p.authorization),
            ("Log", &p.log),
        ] {
            for name in names.iter().flatten() {
                plugins.push(PluginDescription {
                    r#type: kind.to_string(),
                    name: name.clone(),
                });
            }
        }
    }
    let text = |v: &Option<String>, fallback: &str| {
        v.clone()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| fallback.to_string())
    };
    NodeDescription {
        hostname: text(&info.name, &crate::node::hostname()),
        platform: Some(Platform {
            architecture: text(&info.architecture, std::env::consts::ARCH),
            os: text(&info.os_type, std::env::consts::OS),
        }),
        resources: Some(Resources {
            nano_cpus,
            memory_bytes,
            generic: Vec::new(),
        }),
        engine: Some(EngineDescription {
            engine_version: text(&info.server_version, "unknown"),
            labels,
            plugins,
        }),
        executor: super::EXECUTOR_NAME.to_string(),
        data_path_addr: String::new(),
    }
}

#[cfg(test)]
mod tests {
    use bollard::models::PluginsInfo;

    use super::*;

    #[test]
    fn maps_the_engine_info() {
        let info = SystemInfo {
            name: Some("node-a".into()),
            ncpu: Some(4),
            mem_total: Some(8 << 30),
            architecture: Some("x86_64".into()),
            os_type: Some("linux".into()),
            server_version: Some("20.10.24".into()),
            labels: Some(vec!["zone=a".into(), "ssd".into()]),
            plugins: Some(PluginsInfo {
                volume: Some(vec!["local".into()]),
                network: Some(vec!["bridge".into(), "null".into()]),
                authorization: None,
                log: Some(vec!["json-file".into()]),
            }),
            ..Default::default()
        };
        let d = node_description(&info);
        assert_eq!(d.hostname, "node-a");
        assert_eq!(d.executor, "docker");
        let r = d.resources.unwrap();
        assert_eq!((r.nano_cpus, r.memory_bytes), (4_000_000_000, 8 << 30));
        let e = d.engine.unwrap();
        assert_eq!(e.engine_version, "20.10.24");
        assert_eq!(e.labels.get("zone").map(String::as_str), Some("a"));
        assert_eq!(e.labels.get("ssd").map(String::as_str), Some(""));
        let plugins: Vec<(String, String)> =
            e.plugins.into_iter().map(|p| (p.r#type, p.name)).collect();
        assert_eq!(
            plugins,
            [
                ("Volume".into(), "local".into()),
                ("Network".into(), "bridge".into()),
                ("Network".into(), "null".into()),
                ("Log".into(), "json-file".into()),
            ]
        );
    }

    #[test]
    fn falls_back_to_the_host() {
        let d = node_description(&SystemInfo::default());
        assert!(d.resources.unwrap().nano_cpus >= 1_000_000_000);
        assert!(!d.platform.unwrap().os.is_empty());
    }
}
