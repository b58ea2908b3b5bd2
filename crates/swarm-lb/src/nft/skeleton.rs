//! The fixed part of the nftables table: maps, sets, chains and rules,
//! written once per namespace. Services only ever change map elements.

use std::fmt::Write as _;

/// Version marker: an empty chain whose name says which skeleton (and
/// slot count) a table was built with, so a restart keeps a table whose
/// layout matches and rebuilds one that does not.
pub(crate) fn marker(slots: u32) -> String {
    format!("swarm-lb-v1-slots-{slots}")
}

/// The `nft -f` script that (re)creates the table.
///
/// - `vip`: `VIP . slot -> backend`: every TCP/UDP/SCTP port of a VIP is
///   forwarded to the same port of the backend picked by
///   `numgen inc mod slots` (round-robin over the slot table).
/// - `published`: `proto . port . slot -> backend . target port` for ports
///   published on the node's own addresses.
/// - `mesh`: published ports whose connections are source-NATed
///   (routing mesh); the mark bit set on them is matched in postrouting.
///
/// Output (local processes) and prerouting (forwarded traffic, the
/// routing mesh) share the lookups; everything is O(1) in the number of
/// services (hash lookups), and no rule refers to a service.
pub(crate) fn script(family: &str, table: &str, slots: u32, mark: u32, exists: bool) -> String {
    let mut s = String::new();
    if exists {
        let _ = writeln!(s, "delete table {family} {table}");
    }
    let (daddr, lo) = if family == "ip6" {
        ("ip6 daddr", "::1")
    } else {
        ("ip daddr", "127.0.0.0/8")
    };
    let ng = format!("numgen inc mod {slots}");
    let l4 = "meta l4proto { tcp, udp, sctp }";
    let publ = format!(
        "fib daddr type local {daddr} != {lo} {l4} meta l4proto . th dport @mesh ct mark set ct mark | {mark:#x}\n\
         \t\tfib daddr type local {daddr} != {lo} {l4} dnat {family} to meta l4proto . th dport . {ng} map @published"
    );
    let vip = format!("{l4} dnat {family} to {daddr} . {ng} map @vip");
    let _ = write!(
        s,
        "table {family} {table} {{
\tmap vip {{ typeof {daddr} . {ng} : {daddr}; }}
\tmap published {{ typeof meta l4proto . th dport . {ng} : {daddr} . th dport; }}
\tset mesh {{ typeof meta l4proto . th dport; }}
\tchain {marker} {{ }}
\tchain output {{
\t\ttype nat hook output priority -100; policy accept;
\t\t{vip}
\t\t{publ}
\t}}
\tchain prerouting {{
\t\ttype nat hook prerouting priority -100; policy accept;
\t\t{vip}
\t\t{publ}
\t}}
\tchain postrouting {{
\t\ttype nat hook postrouting priority 100; policy accept;
\t\tct mark & {mark:#x} == {mark:#x} masquerade
\t}}
}}
",
        marker = marker(slots),
    );
    s
}
