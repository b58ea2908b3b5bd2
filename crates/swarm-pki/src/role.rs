//! How a node's role is written in its certificate: the organizational
//! unit (OU) of the subject, as in SwarmKit.

use swarm_api::v1::NodeRole;

/// OU of a manager's certificate.
pub const MANAGER_OU: &str = "swarm-manager";
/// OU of a worker's certificate.
pub const WORKER_OU: &str = "swarm-worker";
/// DNS name (SAN) every manager certificate carries: clients connecting
/// to "any manager" verify the server against this name, so a worker's
/// certificate can never pass as a manager's.
pub const MANAGER_SERVER_NAME: &str = MANAGER_OU;
/// DNS name (SAN) every worker certificate carries.
pub const WORKER_SERVER_NAME: &str = WORKER_OU;

/// The OU written for `role`.
pub fn role_ou(role: NodeRole) -> &'static str {
    match role {
        NodeRole::Manager => MANAGER_OU,
        NodeRole::Worker => WORKER_OU,
    }
}

/// The role an OU stands for, `None` for any other text.
pub fn role_from_ou(ou: &str) -> Option<NodeRole> {
    match ou {
        MANAGER_OU => Some(NodeRole::Manager),
        WORKER_OU => Some(NodeRole::Worker),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ou_round_trips_and_refuses_others() {
        for role in [NodeRole::Manager, NodeRole::Worker] {
            assert_eq!(role_from_ou(role_ou(role)), Some(role));
        }
        assert_eq!(role_from_ou("swarm-Manager"), None);
        assert_eq!(role_from_ou(""), None);
    }
}
