//! Byte-exact encodings, assembled by hand from linux/ip_vs.h and
//! linux/genetlink.h (little-endian hosts: netlink integers are host order,
//! ports and addresses network order).

use std::net::IpAddr;

use super::msg::{self, Cmd, Dest, SvcKey};

const FAMILY: u16 = 0x1d;

fn tcp_svc() -> SvcKey {
    SvcKey::Addr {
        protocol: 6,
        vip: IpAddr::from([10, 0, 0, 5]),
        port: 80,
    }
}

#[cfg(target_endian = "little")]
#[test]
fn get_family_request() {
    let got = msg::get_family("IPVS").finish(1);
    let want: Vec<u8> = [
        &[32, 0, 0, 0, 0x10, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0][..], // nlmsghdr: len 32, GENL_ID_CTRL, REQUEST, seq 1
        &[3, 1, 0, 0],                                             // CTRL_CMD_GETFAMILY, version 1
        &[9, 0, 2, 0, b'I', b'P', b'V', b'S', 0, 0, 0, 0], // CTRL_ATTR_FAMILY_NAME "IPVS\0" + pad
    ]
    .concat();
    assert_eq!(got, want);
}

#[cfg(target_endian = "little")]
#[test]
fn new_service_tcp_vip_port_round_robin() {
    let got = msg::service(FAMILY, Cmd::NewService, tcp_svc()).finish(7);
    let want: Vec<u8> = [
        &[92, 0, 0, 0, 0x1d, 0, 5, 0, 7, 0, 0, 0, 0, 0, 0, 0][..], // len 92, family, REQUEST|ACK, seq 7
        &[1, 1, 0, 0],                   // IPVS_CMD_NEW_SERVICE, version 1
        &[72, 0, 1, 0x80],               // IPVS_CMD_ATTR_SERVICE (nested)
        &[6, 0, 1, 0, 2, 0, 0, 0],       // AF = AF_INET
        &[6, 0, 2, 0, 6, 0, 0, 0],       // PROTOCOL = TCP
        &[8, 0, 3, 0, 10, 0, 0, 5],      // ADDR = 10.0.0.5
        &[6, 0, 4, 0, 0, 80, 0, 0],      // PORT = 80 (network order)
        &[7, 0, 6, 0, b'r', b'r', 0, 0], // SCHED_NAME = "rr"
        &[12, 0, 7, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff], // FLAGS {flags 0, mask ~0}
        &[8, 0, 8, 0, 0, 0, 0, 0],       // TIMEOUT = 0
        &[8, 0, 9, 0, 0xff, 0xff, 0xff, 0xff], // NETMASK = /32
    ]
    .concat();
    assert_eq!(got, want);
}

#[cfg(target_endian = "little")]
#[test]
fn new_dest_masquerade_weight() {
    let d = Dest {
        addr: IpAddr::from([10, 0, 1, 2]),
        port: 8080,
        weight: 3,
    };
    let got = msg::dest(FAMILY, Cmd::NewDest, tcp_svc(), d).finish(2);
    let want: Vec<u8> = [
        &[116, 0, 0, 0, 0x1d, 0, 5, 0, 2, 0, 0, 0, 0, 0, 0, 0][..], // len 116
        &[5, 1, 0, 0],                                              // IPVS_CMD_NEW_DEST
        &[36, 0, 1, 0x80],                                          // SERVICE (key only)
        &[6, 0, 1, 0, 2, 0, 0, 0],
        &[6, 0, 2, 0, 6, 0, 0, 0],
        &[8, 0, 3, 0, 10, 0, 0, 5],
        &[6, 0, 4, 0, 0, 80, 0, 0],
        &[60, 0, 2, 0x80],               // IPVS_CMD_ATTR_DEST (nested)
        &[8, 0, 1, 0, 10, 0, 1, 2],      // ADDR
        &[6, 0, 2, 0, 0x1f, 0x90, 0, 0], // PORT 8080
        &[8, 0, 3, 0, 0, 0, 0, 0],       // FWD_METHOD = MASQ
        &[8, 0, 4, 0, 3, 0, 0, 0],       // WEIGHT = 3
        &[8, 0, 5, 0, 0, 0, 0, 0],       // U_THRESH
        &[8, 0, 6, 0, 0, 0, 0, 0],       // L_THRESH
        &[6, 0, 11, 0, 2, 0, 0, 0],      // ADDR_FAMILY = AF_INET
    ]
    .concat();
    assert_eq!(got, want);
}

#[cfg(target_endian = "little")]
#[test]
fn fwmark_service_and_delete() {
    let got = msg::service(
        FAMILY,
        Cmd::DelService,
        SvcKey::Fwmark {
            mark: 0x101,
            v6: false,
        },
    )
    .finish(3);
    let want: Vec<u8> = [
        &[40, 0, 0, 0, 0x1d, 0, 5, 0, 3, 0, 0, 0, 0, 0, 0, 0][..],
        &[3, 1, 0, 0],                // IPVS_CMD_DEL_SERVICE
        &[20, 0, 1, 0x80],            // SERVICE
        &[6, 0, 1, 0, 2, 0, 0, 0],    // AF_INET
        &[8, 0, 5, 0, 0x01, 1, 0, 0], // FWMARK = 0x101
    ]
    .concat();
    assert_eq!(got, want);
}

#[test]
fn parses_what_it_encodes() {
    for key in [
        tcp_svc(),
        SvcKey::Fwmark { mark: 9, v6: true },
        SvcKey::Addr {
            protocol: 17,
            vip: "fd00::5".parse().unwrap(),
            port: 53,
        },
    ] {
        let m = msg::service(FAMILY, Cmd::NewService, key).finish(1);
        assert_eq!(msg::parse_service(&m[16..]).unwrap(), Some(key));
    }
    // truncated and garbage payloads are errors, not panics
    let m = msg::service(FAMILY, Cmd::NewService, tcp_svc()).finish(1);
    for cut in 16..m.len() {
        let _ = msg::parse_service(&m[16..cut]);
    }
}

#[test]
fn published_ports_and_portless_vips_are_refused() {
    use crate::model::*;
    let mut s = ServiceState::new(ServiceSpec::vip("a", IpAddr::from([10, 0, 0, 5])));
    assert!(super::check_state(&s).is_err());
    s.spec.ports.push(PortSpec {
        protocol: Protocol::Tcp,
        target_port: 80,
        published: None,
    });
    assert!(super::check_state(&s).is_ok());
    s.spec.ports[0].published = Some(Published {
        port: 30080,
        mode: PublishMode::Ingress,
    });
    assert!(super::check_state(&s).is_err());
}
