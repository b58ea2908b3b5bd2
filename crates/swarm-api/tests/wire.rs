//! Every object survives the protobuf and JSON round trips unchanged.

#![allow(clippy::unwrap_used, reason = "a panic is how a test reports failure")]
use prost::Message;
use swarm_api::v1::service_spec::Mode;
use swarm_api::v1::*;

fn full_service() -> Service {
    Service {
        id: swarm_api::id::new_id(),
        meta: Some(Meta {
            version: 42,
            created_at: Some(Timestamp {
                seconds: 1_700_000_000,
                nanos: 5,
            }),
            updated_at: Some(Timestamp {
                seconds: 1_700_000_100,
                nanos: 0,
            }),
        }),
        spec: Some(ServiceSpec {
            annotations: Some(Annotations {
                name: "web".into(),
                labels: [("tier".to_string(), "front".to_string())].into(),
            }),
            task: Some(TaskSpec {
                container: Some(ContainerSpec {
                    image: "busybox".into(),
                    command: vec!["httpd".into(), "-f".into()],
                    env: vec!["A=1".into()],
                    stop_grace_period: Some(Duration::from_secs(10)),
                    healthcheck: Some(HealthConfig {
                        test: vec!["CMD-SHELL".into(), "true".into()],
                        retries: 3,
                        ..Default::default()
                    }),
                    secrets: vec![SecretReference {
                        secret_id: "s".into(),
                        secret_name: "pw".into(),
                        file: Some(FileTarget {
                            name: "pw".into(),
                            mode: 0o400,
                            ..Default::default()
                        }),
                    }],
                    ..Default::default()
                }),
                restart: Some(RestartPolicy {
                    condition: RestartCondition::OnFailure.into(),
                    delay: Some(Duration::from_secs(5)),
                    max_attempts: 3,
                    window: None,
                }),
                placement: Some(Placement {
                    constraints: vec!["node.role==worker".into()],
                    preferences: vec![PlacementPreference {
                        preference: Some(placement_preference::Preference::Spread(SpreadOver {
                            spread_descriptor: "node.labels.zone".into(),
                        })),
                    }],
                    max_replicas: 2,
                    platforms: vec![Platform {
                        architecture: "amd64".into(),
                        os: "linux".into(),
                    }],
                }),
                ..Default::default()
            }),
            mode: Some(Mode::Replicated(ReplicatedService { replicas: 6 })),
            update: Some(swarm_api::defaults::update_config(None)),
            endpoint: Some(EndpointSpec {
                mode: ResolutionMode::Vip.into(),
                ports: vec![PortConfig {
                    protocol: Protocol::Udp.into(),
                    target_port: 53,
                    published_port: 30053,
                    publish_mode: PublishMode::Host.into(),
                    ..Default::default()
                }],
            }),
            ..Default::default()
        }),
        spec_version: 3,
        update_status: Some(UpdateStatus {
            state: UpdateState::RollbackStarted.into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[test]
fn service_round_trips() {
    let svc = full_service();
    let bytes = svc.encode_to_vec();
    assert_eq!(Service::decode(bytes.as_slice()).unwrap(), svc);
    let json = serde_json::to_string_pretty(&svc).unwrap();
    assert!(json.contains("\"condition\": \"on_failure\""), "{json}");
    assert!(json.contains("\"state\": \"rollback_started\""), "{json}");
    assert!(json.contains("\"replicated\""), "{json}");
    let back: Service = serde_json::from_str(&json).unwrap();
    assert_eq!(back, svc);
}

#[test]
fn partial_json_fills_defaults() {
    let spec: ServiceSpec = serde_json::from_str(
        r#"{"annotations":{"name":"api"},"mode":{"global":{}},
            "task":{"container":{"command":["sleep","1"]}}}"#,
    )
    .unwrap();
    assert_eq!(spec.annotations.unwrap().name, "api");
    assert!(matches!(spec.mode, Some(Mode::Global(_))));
    assert!(spec.endpoint.is_none());
}

#[test]
fn garbage_never_panics_the_decoder() {
    // Arbitrary bytes decode to an error or to some message, never a panic.
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for len in 0..512 {
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect();
        let _ = Service::decode(bytes.as_slice());
        let _ = Task::decode(bytes.as_slice());
        let _ = StoreActionBatch::decode(bytes.as_slice());
    }
}

#[test]
fn task_states_serialize_by_name() {
    let t = Task {
        desired_state: TaskState::Running.into(),
        status: Some(TaskStatus {
            state: TaskState::Preparing.into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let v = serde_json::to_value(&t).unwrap();
    assert_eq!(v["desired_state"], "running");
    assert_eq!(v["status"]["state"], "preparing");
}
