//! Validation tables: one valid base spec per kind, and one mutation per
//! rule, each with the field the error must name.
#![allow(clippy::unwrap_used, reason = "a panic is how a test reports failure")]

use swarm_api::v1::service_spec::Mode;
use swarm_api::v1::*;
use swarm_api::validate::*;

fn service() -> ServiceSpec {
    ServiceSpec {
        annotations: Some(Annotations {
            name: "web".into(),
            ..Default::default()
        }),
        task: Some(TaskSpec {
            container: Some(ContainerSpec {
                image: "busybox".into(),
                command: vec!["httpd".into()],
                ..Default::default()
            }),
            ..Default::default()
        }),
        mode: Some(Mode::Replicated(ReplicatedService { replicas: 2 })),
        ..Default::default()
    }
}

fn container(s: &mut ServiceSpec) -> &mut ContainerSpec {
    s.task.as_mut().unwrap().container.as_mut().unwrap()
}

fn task(s: &mut ServiceSpec) -> &mut TaskSpec {
    s.task.as_mut().unwrap()
}

fn port(target: u32, published: u32, mode: PublishMode) -> PortConfig {
    PortConfig {
        target_port: target,
        published_port: published,
        publish_mode: mode.into(),
        ..Default::default()
    }
}

type Mutation = fn(&mut ServiceSpec);

#[test]
fn service_spec_table() {
    assert_eq!(validate_service_spec(&service()), Ok(()));
    let table: &[(&str, Mutation, Option<&str>)] = &[
        (
            "valid global",
            |s| s.mode = Some(Mode::Global(GlobalService {})),
            None,
        ),
        (
            "no annotations",
            |s| s.annotations = None,
            Some("spec.annotations.name"),
        ),
        (
            "bad name",
            |s| s.annotations.as_mut().unwrap().name = "we b".into(),
            Some("spec.annotations.name"),
        ),
        (
            "empty label key",
            |s| {
                s.annotations
                    .as_mut()
                    .unwrap()
                    .labels
                    .insert(" ".into(), "x".into());
            },
            Some("spec.annotations.labels"),
        ),
        ("no task", |s| s.task = None, Some("spec.task")),
        (
            "no container",
            |s| task(s).container = None,
            Some("spec.task.container"),
        ),
        (
            "no image nor command",
            |s| {
                let c = container(s);
                c.image.clear();
                c.command.clear();
            },
            Some("spec.task.container"),
        ),
        ("command only", |s| container(s).image.clear(), None),
        (
            "bad env",
            |s| container(s).env = vec!["=x".into()],
            Some("spec.task.container.env[0]"),
        ),
        (
            "relative mount target",
            |s| {
                container(s).mounts = vec![Mount {
                    target: "data".into(),
                    source: "/d".into(),
                    ..Default::default()
                }]
            },
            Some("spec.task.container.mounts[0].target"),
        ),
        (
            "relative bind source",
            |s| {
                container(s).mounts = vec![Mount {
                    target: "/data".into(),
                    source: "d".into(),
                    ..Default::default()
                }]
            },
            Some("spec.task.container.mounts[0].source"),
        ),
        (
            "duplicate mount target",
            |s| {
                let m = Mount {
                    target: "/d".into(),
                    r#type: MountType::Tmpfs.into(),
                    ..Default::default()
                };
                container(s).mounts = vec![m.clone(), m];
            },
            Some("spec.task.container.mounts[1].target"),
        ),
        (
            "bad stop signal",
            |s| container(s).stop_signal = "sigterm!".into(),
            Some("spec.task.container.stop_signal"),
        ),
        (
            "numeric stop signal",
            |s| container(s).stop_signal = "15".into(),
            None,
        ),
        (
            "negative grace",
            |s| {
                container(s).stop_grace_period = Some(Duration {
                    seconds: -1,
                    nanos: 0,
                })
            },
            Some("spec.task.container.stop_grace_period"),
        ),
        (
            "bad healthcheck test",
            |s| {
                container(s).healthcheck = Some(HealthConfig {
                    test: vec!["RUN".into()],
                    ..Default::default()
                })
            },
            Some("spec.task.container.healthcheck.test[0]"),
        ),
        (
            "healthcheck CMD without command",
            |s| {
                container(s).healthcheck = Some(HealthConfig {
                    test: vec!["CMD".into()],
                    ..Default::default()
                })
            },
            Some("spec.task.container.healthcheck.test"),
        ),
        (
            "negative retries",
            |s| {
                container(s).healthcheck = Some(HealthConfig {
                    test: vec!["CMD".into(), "true".into()],
                    retries: -1,
                    ..Default::default()
                })
            },
            Some("spec.task.container.healthcheck.retries"),
        ),
        (
            "sub-ms interval",
            |s| {
                container(s).healthcheck = Some(HealthConfig {
                    interval: Some(Duration {
                        seconds: 0,
                        nanos: 10,
                    }),
                    ..Default::default()
                })
            },
            Some("spec.task.container.healthcheck.interval"),
        ),
        (
            "secret without id",
            |s| container(s).secrets = vec![SecretReference::default()],
            Some("spec.task.container.secrets[0]"),
        ),
        (
            "secret escaping",
            |s| {
                container(s).secrets = vec![SecretReference {
                    secret_name: "a".into(),
                    file: Some(FileTarget {
                        name: "../etc/passwd".into(),
                        ..Default::default()
                    }),
                    ..Default::default()
                }]
            },
            Some("spec.task.container.secrets[0].file.name"),
        ),
        (
            "negative cpu",
            |s| {
                task(s).resources = Some(ResourceRequirements {
                    reservations: Some(Resources {
                        nano_cpus: -1,
                        ..Default::default()
                    }),
                    ..Default::default()
                })
            },
            Some("spec.task.resources.reservations.nano_cpus"),
        ),
        (
            "negative memory limit",
            |s| {
                task(s).resources = Some(ResourceRequirements {
                    limits: Some(Resources {
                        memory_bytes: -5,
                        ..Default::default()
                    }),
                    ..Default::default()
                })
            },
            Some("spec.task.resources.limits.memory_bytes"),
        ),
        (
            "reservation above limit",
            |s| {
                task(s).resources = Some(ResourceRequirements {
                    limits: Some(Resources {
                        nano_cpus: 1,
                        ..Default::default()
                    }),
                    reservations: Some(Resources {
                        nano_cpus: 2,
                        ..Default::default()
                    }),
                })
            },
            Some("spec.task.resources.reservations.nano_cpus"),
        ),
        (
            "negative generic",
            |s| {
                task(s).resources = Some(ResourceRequirements {
                    reservations: Some(Resources {
                        generic: vec![GenericResource {
                            resource: Some(generic_resource::Resource::Discrete(
                                DiscreteGenericResource {
                                    kind: "gpu".into(),
                                    value: -1,
                                },
                            )),
                        }],
                        ..Default::default()
                    }),
                    ..Default::default()
                })
            },
            Some("spec.task.resources.reservations.generic[0]"),
        ),
        (
            "unknown restart condition",
            |s| {
                task(s).restart = Some(RestartPolicy {
                    condition: 9,
                    ..Default::default()
                })
            },
            Some("spec.task.restart.condition"),
        ),
        (
            "negative restart delay",
            |s| {
                task(s).restart = Some(RestartPolicy {
                    delay: Some(Duration {
                        seconds: -5,
                        nanos: 0,
                    }),
                    ..Default::default()
                })
            },
            Some("spec.task.restart.delay"),
        ),
        (
            "constraint without operator",
            |s| {
                task(s).placement = Some(Placement {
                    constraints: vec!["node.role=manager".into()],
                    ..Default::default()
                })
            },
            Some("spec.task.placement.constraints[0]"),
        ),
        (
            "bad spread",
            |s| {
                task(s).placement = Some(Placement {
                    preferences: vec![PlacementPreference {
                        preference: Some(placement_preference::Preference::Spread(SpreadOver {
                            spread_descriptor: "node.id".into(),
                        })),
                    }],
                    ..Default::default()
                })
            },
            Some("spec.task.placement.preferences[0].spread.spread_descriptor"),
        ),
        (
            "good spread",
            |s| {
                task(s).placement = Some(Placement {
                    preferences: vec![PlacementPreference {
                        preference: Some(placement_preference::Preference::Spread(SpreadOver {
                            spread_descriptor: "node.labels.zone".into(),
                        })),
                    }],
                    ..Default::default()
                })
            },
            None,
        ),
        (
            "network twice",
            |s| {
                task(s).networks = vec![
                    NetworkAttachmentConfig {
                        target: "net".into(),
                        ..Default::default()
                    },
                    NetworkAttachmentConfig {
                        target: "NET".into(),
                        ..Default::default()
                    },
                ]
            },
            Some("spec.task.networks[1].target"),
        ),
        ("no mode", |s| s.mode = None, Some("spec.mode")),
        (
            "too many replicas",
            |s| {
                s.mode = Some(Mode::Replicated(ReplicatedService {
                    replicas: 1_000_001,
                }))
            },
            Some("spec.mode.replicated.replicas"),
        ),
        (
            "job with update config",
            |s| {
                s.mode = Some(Mode::GlobalJob(GlobalJob {}));
                s.update = Some(UpdateConfig::default());
            },
            Some("spec.update"),
        ),
        (
            "failure ratio above 1",
            |s| {
                s.update = Some(UpdateConfig {
                    max_failure_ratio: 1.5,
                    ..Default::default()
                })
            },
            Some("spec.update.max_failure_ratio"),
        ),
        (
            "failure ratio NaN",
            |s| {
                s.update = Some(UpdateConfig {
                    max_failure_ratio: f32::NAN,
                    ..Default::default()
                })
            },
            Some("spec.update.max_failure_ratio"),
        ),
        (
            "unknown failure action",
            |s| {
                s.rollback = Some(UpdateConfig {
                    failure_action: 7,
                    ..Default::default()
                })
            },
            Some("spec.rollback.failure_action"),
        ),
        (
            "negative monitor",
            |s| {
                s.update = Some(UpdateConfig {
                    monitor: Some(Duration {
                        seconds: -1,
                        nanos: 0,
                    }),
                    ..Default::default()
                })
            },
            Some("spec.update.monitor"),
        ),
        (
            "target port 0",
            |s| {
                s.endpoint = Some(EndpointSpec {
                    ports: vec![port(0, 80, PublishMode::Ingress)],
                    ..Default::default()
                })
            },
            Some("spec.endpoint.ports[0].target_port"),
        ),
        (
            "target port too big",
            |s| {
                s.endpoint = Some(EndpointSpec {
                    ports: vec![port(70000, 80, PublishMode::Ingress)],
                    ..Default::default()
                })
            },
            Some("spec.endpoint.ports[0].target_port"),
        ),
        (
            "published port too big",
            |s| {
                s.endpoint = Some(EndpointSpec {
                    ports: vec![port(80, 65536, PublishMode::Ingress)],
                    ..Default::default()
                })
            },
            Some("spec.endpoint.ports[0].published_port"),
        ),
        (
            "published twice",
            |s| {
                s.endpoint = Some(EndpointSpec {
                    ports: vec![
                        port(80, 8080, PublishMode::Ingress),
                        port(81, 8080, PublishMode::Host),
                    ],
                    ..Default::default()
                })
            },
            Some("spec.endpoint.ports[1].published_port"),
        ),
        (
            "same port tcp and udp",
            |s| {
                s.endpoint = Some(EndpointSpec {
                    ports: vec![
                        port(53, 53, PublishMode::Ingress),
                        PortConfig {
                            protocol: Protocol::Udp.into(),
                            ..port(53, 53, PublishMode::Ingress)
                        },
                    ],
                    ..Default::default()
                })
            },
            None,
        ),
        (
            "two auto ports",
            |s| {
                s.endpoint = Some(EndpointSpec {
                    ports: vec![
                        port(80, 0, PublishMode::Ingress),
                        port(81, 0, PublishMode::Ingress),
                    ],
                    ..Default::default()
                })
            },
            None,
        ),
        (
            "dnsrr with ingress",
            |s| {
                s.endpoint = Some(EndpointSpec {
                    mode: ResolutionMode::Dnsrr.into(),
                    ports: vec![port(80, 8080, PublishMode::Ingress)],
                })
            },
            Some("spec.endpoint.ports[0]"),
        ),
        (
            "dnsrr with host",
            |s| {
                s.endpoint = Some(EndpointSpec {
                    mode: ResolutionMode::Dnsrr.into(),
                    ports: vec![port(80, 8080, PublishMode::Host)],
                })
            },
            None,
        ),
        (
            "unknown protocol",
            |s| {
                s.endpoint = Some(EndpointSpec {
                    ports: vec![PortConfig {
                        protocol: 42,
                        ..port(80, 0, PublishMode::Ingress)
                    }],
                    ..Default::default()
                })
            },
            Some("spec.endpoint.ports[0].protocol"),
        ),
    ];
    for (name, mutate, field) in table {
        let mut spec = service();
        mutate(&mut spec);
        let got = validate_service_spec(&spec);
        match (field, got) {
            (None, Ok(())) => {}
            (Some(f), Err(e)) => assert_eq!(&e.field, f, "{name}: {e}"),
            (want, got) => panic!("{name}: wanted error on {want:?}, got {got:?}"),
        }
    }
}

fn network() -> NetworkSpec {
    NetworkSpec {
        annotations: Some(Annotations {
            name: "backend".into(),
            ..Default::default()
        }),
        driver_config: Some(Driver {
            name: "overlay".into(),
            ..Default::default()
        }),
        ipam: Some(IpamOptions {
            configs: vec![IpamConfig {
                subnet: "10.1.0.0/24".into(),
                gateway: "10.1.0.1".into(),
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn ipam(s: &mut NetworkSpec) -> &mut IpamConfig {
    &mut s.ipam.as_mut().unwrap().configs[0]
}

type NetMutation = fn(&mut NetworkSpec);

#[test]
fn network_spec_table() {
    assert_eq!(validate_network_spec(&network()), Ok(()));
    let table: &[(&str, NetMutation, Option<&str>)] = &[
        ("no ipam", |s| s.ipam = None, None),
        (
            "bad name",
            |s| s.annotations.as_mut().unwrap().name = "-x".into(),
            Some("spec.annotations.name"),
        ),
        (
            "bad driver",
            |s| s.driver_config.as_mut().unwrap().name = "over lay".into(),
            Some("spec.driver_config.name"),
        ),
        (
            "ingress internal",
            |s| {
                s.ingress = true;
                s.internal = true;
            },
            Some("spec.internal"),
        ),
        (
            "ingress attachable",
            |s| {
                s.ingress = true;
                s.attachable = true;
            },
            Some("spec.attachable"),
        ),
        (
            "not a cidr",
            |s| ipam(s).subnet = "10.1.0.0".into(),
            Some("spec.ipam.configs[0].subnet"),
        ),
        (
            "host bits",
            |s| ipam(s).subnet = "10.1.0.5/24".into(),
            Some("spec.ipam.configs[0].subnet"),
        ),
        (
            "too small",
            |s| {
                ipam(s).subnet = "10.1.0.0/31".into();
                ipam(s).gateway.clear();
            },
            Some("spec.ipam.configs[0].subnet"),
        ),
        (
            "family mismatch",
            |s| ipam(s).family = AddressFamily::Ipv6.into(),
            Some("spec.ipam.configs[0].subnet"),
        ),
        (
            "ipv6 without flag",
            |s| {
                ipam(s).subnet = "fd00::/64".into();
                ipam(s).gateway.clear();
            },
            Some("spec.ipam.configs[0].subnet"),
        ),
        (
            "ipv6 with flag",
            |s| {
                s.ipv6_enabled = true;
                ipam(s).subnet = "fd00::/64".into();
                ipam(s).gateway = "fd00::1".into();
            },
            None,
        ),
        (
            "overlapping subnets",
            |s| {
                let c = IpamConfig {
                    subnet: "10.1.0.128/25".into(),
                    ..Default::default()
                };
                s.ipam.as_mut().unwrap().configs.push(c);
            },
            Some("spec.ipam.configs[1].subnet"),
        ),
        (
            "gateway outside",
            |s| ipam(s).gateway = "10.2.0.1".into(),
            Some("spec.ipam.configs[0].gateway"),
        ),
        (
            "gateway broadcast",
            |s| ipam(s).gateway = "10.1.0.255".into(),
            Some("spec.ipam.configs[0].gateway"),
        ),
        (
            "gateway not ip",
            |s| ipam(s).gateway = "gw".into(),
            Some("spec.ipam.configs[0].gateway"),
        ),
        (
            "range outside",
            |s| ipam(s).range = "10.2.0.0/26".into(),
            Some("spec.ipam.configs[0].range"),
        ),
        (
            "range inside",
            |s| ipam(s).range = "10.1.0.64/26".into(),
            None,
        ),
        (
            "reserved outside",
            |s| {
                ipam(s).reserved.insert("x".into(), "192.168.0.1".into());
            },
            Some("spec.ipam.configs[0].reserved[x]"),
        ),
    ];
    for (name, mutate, field) in table {
        let mut spec = network();
        mutate(&mut spec);
        match (field, validate_network_spec(&spec)) {
            (None, Ok(())) => {}
            (Some(f), Err(e)) => assert_eq!(&e.field, f, "{name}: {e}"),
            (want, got) => panic!("{name}: wanted error on {want:?}, got {got:?}"),
        }
    }
}

#[test]
fn node_cluster_secret_config_tables() {
    assert!(validate_node_spec(&NodeSpec::default()).is_ok());
    assert_eq!(
        validate_node_spec(&NodeSpec {
            availability: 5,
            ..Default::default()
        })
        .unwrap_err()
        .field,
        "spec.availability"
    );
    assert_eq!(
        validate_node_spec(&NodeSpec {
            desired_role: 3,
            ..Default::default()
        })
        .unwrap_err()
        .field,
        "spec.desired_role"
    );

    assert!(validate_cluster_spec(&ClusterSpec::default()).is_ok());
    let short = ClusterSpec {
        ca_config: Some(CaConfig {
            node_cert_expiry: Some(Duration::from_secs(59 * 60)),
            ..Default::default()
        }),
        ..Default::default()
    };
    assert_eq!(
        validate_cluster_spec(&short).unwrap_err().field,
        "spec.ca_config.node_cert_expiry"
    );
    let hour = ClusterSpec {
        ca_config: Some(CaConfig {
            node_cert_expiry: Some(Duration::from_secs(3600)),
            ..Default::default()
        }),
        ..Default::default()
    };
    assert!(validate_cluster_spec(&hour).is_ok());
    let ticks = ClusterSpec {
        raft: Some(RaftConfig {
            election_tick: 2,
            heartbeat_tick: 2,
            ..Default::default()
        }),
        ..Default::default()
    };
    assert_eq!(
        validate_cluster_spec(&ticks).unwrap_err().field,
        "spec.raft.election_tick"
    );
    let half_ca = ClusterSpec {
        ca_config: Some(CaConfig {
            signing_ca_cert: b"pem".to_vec(),
            ..Default::default()
        }),
        ..Default::default()
    };
    assert_eq!(
        validate_cluster_spec(&half_ca).unwrap_err().field,
        "spec.ca_config.signing_ca_key"
    );
    let hb = ClusterSpec {
        dispatcher: Some(DispatcherConfig {
            heartbeat_period: Some(Duration {
                seconds: -1,
                nanos: 0,
            }),
        }),
        ..Default::default()
    };
    assert_eq!(
        validate_cluster_spec(&hb).unwrap_err().field,
        "spec.dispatcher.heartbeat_period"
    );

    let named = |name: &str| {
        Some(Annotations {
            name: name.into(),
            ..Default::default()
        })
    };
    assert!(
        validate_secret_spec(&SecretSpec {
            annotations: named("pw"),
            data: b"x".to_vec(),
            driver: None
        })
        .is_ok()
    );
    assert_eq!(
        validate_secret_spec(&SecretSpec {
            annotations: named("pw"),
            data: vec![],
            driver: None
        })
        .unwrap_err()
        .field,
        "spec.data"
    );
    assert_eq!(
        validate_secret_spec(&SecretSpec {
            annotations: named("pw"),
            data: vec![0; 500 * 1024 + 1],
            driver: None
        })
        .unwrap_err()
        .field,
        "spec.data"
    );
    assert_eq!(
        validate_secret_spec(&SecretSpec {
            annotations: named(""),
            data: b"x".to_vec(),
            driver: None
        })
        .unwrap_err()
        .field,
        "spec.annotations.name"
    );
    assert!(
        validate_config_spec(&ConfigSpec {
            annotations: named("cfg"),
            data: vec![]
        })
        .is_ok()
    );
    assert_eq!(
        validate_config_spec(&ConfigSpec {
            annotations: named("cfg"),
            data: vec![0; 1000 * 1024 + 1]
        })
        .unwrap_err()
        .field,
        "spec.data"
    );
}
