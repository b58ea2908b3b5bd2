//! `network ls`.

use swarm_api::v1::Network;

use super::short_id;
use crate::table::Table;

/// The network's name.
pub fn network_name(n: &Network) -> &str {
    n.spec
        .as_ref()
        .and_then(|s| s.annotations.as_ref())
        .map_or("", |a| a.name.as_str())
}

/// `network ls`: NETWORK ID NAME DRIVER SCOPE SUBNET.
pub fn network_table(networks: &[Network]) -> String {
    let mut t = Table::new(["NETWORK ID", "NAME", "DRIVER", "SCOPE", "SUBNET"]);
    let mut sorted: Vec<&Network> = networks.iter().collect();
    sorted.sort_by(|a, b| network_name(a).cmp(network_name(b)));
    for n in sorted {
        let driver = n
            .spec
            .as_ref()
            .and_then(|s| s.driver_config.as_ref())
            .map(|d| d.name.clone())
            .filter(|d| !d.is_empty())
            .unwrap_or_else(|| "overlay".into());
        let subnets: Vec<String> = n
            .ipam
            .iter()
            .flat_map(|i| &i.configs)
            .map(|c| c.subnet.clone())
            .collect();
        t.row([
            short_id(&n.id).to_string(),
            network_name(n).to_string(),
            driver,
            "swarm".to_string(),
            subnets.join(","),
        ]);
    }
    t.render()
}
