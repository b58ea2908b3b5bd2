//! Records from swarm-api objects, as the agent receives them in its
//! assignments (names as SwarmKit writes them).

use std::net::IpAddr;

use swarm_api::v1;

use super::records::{NetworkRecord, ResolutionMode, ServiceRecord, TaskRecord};
use crate::error::{LbError, Result};

/// The network's record (`internal` from its spec).
pub fn network_record(net: &v1::Network) -> NetworkRecord {
    NetworkRecord {
        id: net.id.clone(),
        internal: net.spec.as_ref().is_some_and(|s| s.internal),
    }
}

/// The service's record on one network: its name, the aliases its task
/// template gives it on that network (`target` is the network id or
/// name), its resolution mode and its VIP there.
pub fn service_record(service: &v1::Service, network: &v1::Network) -> Result<ServiceRecord> {
    let spec = service
        .spec
        .as_ref()
        .ok_or_else(|| LbError::invalid("service", format!("{} has no spec", service.id)))?;
    let name = spec
        .annotations
        .as_ref()
        .map(|a| a.name.clone())
        .unwrap_or_default();
    let net_name = network
        .spec
        .as_ref()
        .and_then(|s| s.annotations.as_ref())
        .map(|a| a.name.as_str());
    let aliases = spec
        .task
        .iter()
        .flat_map(|t| t.networks.iter())
        .filter(|c| c.target == network.id || Some(c.target.as_str()) == net_name)
        .flat_map(|c| c.aliases.iter().cloned())
        .collect();
    let mode = spec
        .endpoint
        .as_ref()
        .map(|e| ResolutionMode::from_api(e.mode()))
        .unwrap_or_default();
    Ok(ServiceRecord {
        id: service.id.clone(),
        name,
        aliases,
        mode,
        vip: crate::ingress::vip_on(service, &network.id)?,
    })
}

/// SwarmKit's task name: its own name if set, else
/// `<service>.<slot>.<task id>` (the node id stands for the slot of a
/// global service's task).
pub fn task_name(task: &v1::Task) -> String {
    if let Some(n) = task
        .annotations
        .as_ref()
        .map(|a| a.name.as_str())
        .filter(|n| !n.is_empty())
    {
        return n.to_string();
    }
    let service = task
        .service_annotations
        .as_ref()
        .map(|a| a.name.as_str())
        .unwrap_or_default();
    let slot = if task.slot == 0 {
        task.node_id.clone()
    } else {
        task.slot.to_string()
    };
    format!("{service}.{slot}.{}", task.id)
}

/// The task's record on one network (its first address there, with the
/// attachment's aliases); `None` when the task is not attached to it.
pub fn task_record(task: &v1::Task, network_id: &str) -> Result<Option<TaskRecord>> {
    let Some(att) = task
        .networks
        .iter()
        .find(|a| a.network.as_ref().is_some_and(|n| n.id == network_id))
    else {
        return Ok(None);
    };
    let Some(first) = att.addresses.first() else {
        return Ok(None);
    };
    let addr: IpAddr = first
        .split('/')
        .next()
        .unwrap_or_default()
        .parse()
        .map_err(|_| LbError::invalid("task address", format!("{first:?} is not an address")))?;
    Ok(Some(TaskRecord {
        id: task.id.clone(),
        name: task_name(task),
        service_id: task.service_id.clone(),
        addr,
        aliases: att.aliases.clone(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn network() -> v1::Network {
        v1::Network {
            id: "n1".into(),
            spec: Some(v1::NetworkSpec {
                annotations: Some(v1::Annotations {
                    name: "backend".into(),
                    ..Default::default()
                }),
                internal: true,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn records_from_an_assignment() {
        let net = network();
        assert!(network_record(&net).internal);
        let svc = v1::Service {
            id: "s1".into(),
            spec: Some(v1::ServiceSpec {
                annotations: Some(v1::Annotations {
                    name: "web".into(),
                    ..Default::default()
                }),
                task: Some(v1::TaskSpec {
                    networks: vec![v1::NetworkAttachmentConfig {
                        target: "backend".into(),
                        aliases: vec!["www".into()],
                        addresses: vec![],
                    }],
                    ..Default::default()
                }),
                endpoint: Some(v1::EndpointSpec {
                    mode: v1::ResolutionMode::Dnsrr.into(),
                    ports: vec![],
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let r = service_record(&svc, &net).unwrap();
        assert_eq!(
            (r.name.as_str(), r.aliases.clone(), r.mode, r.vip),
            ("web", vec!["www".to_string()], ResolutionMode::Dnsrr, None)
        );

        let mut task = v1::Task {
            id: "t9".into(),
            service_id: "s1".into(),
            slot: 2,
            node_id: "node7".into(),
            service_annotations: Some(v1::Annotations {
                name: "web".into(),
                ..Default::default()
            }),
            networks: vec![v1::NetworkAttachment {
                network: Some(net.clone()),
                addresses: vec!["10.0.3.7/24".into()],
                aliases: vec![],
                driver_attachment_opts: Default::default(),
            }],
            ..Default::default()
        };
        let t = task_record(&task, "n1").unwrap().unwrap();
        assert_eq!(
            (t.name.as_str(), t.addr),
            ("web.2.t9", IpAddr::from([10, 0, 3, 7]))
        );
        assert!(task_record(&task, "other").unwrap().is_none());
        task.slot = 0;
        assert_eq!(task_name(&task), "web.node7.t9");
        task.networks[0].addresses = vec!["bogus".into()];
        assert!(task_record(&task, "n1").is_err());
    }
}
