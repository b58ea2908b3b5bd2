//! Keeping bridged frames out of iptables inside a network's namespace.
//!
//! With the kernel's `br_netfilter` module loaded (Docker loads it), every
//! frame a bridge forwards also goes through the iptables, ip6tables and
//! arptables hooks of the bridge's namespace, and a new namespace starts
//! with that switched on. A network's namespace holds only its bridge,
//! its VXLAN device and the outer ends of its endpoints, and no rule: the
//! hooks would only cost time on every frame (measured here: about 8% of
//! task-to-task throughput). They are switched off there. The host's own
//! settings, and the tasks' namespaces, are left alone.

use crate::error::{DriverError, Result};
use crate::netns::Netns;

/// The per-namespace switches, under `/proc/sys/net/bridge`.
pub(crate) const SWITCHES: [&str; 3] = [
    "/proc/sys/net/bridge/bridge-nf-call-iptables",
    "/proc/sys/net/bridge/bridge-nf-call-ip6tables",
    "/proc/sys/net/bridge/bridge-nf-call-arptables",
];

/// Switches the hooks off in `ns`. Nothing to do without `br_netfilter`
/// (the files are absent).
pub(crate) async fn switch_off(ns: &Netns) -> Result<()> {
    // /proc/sys/net is per namespace: written from a thread inside it.
    ns.run_async(|| {
        for path in SWITCHES {
            match std::fs::write(path, b"0") {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(DriverError::Io {
                        op: format!("writing 0 to {path}"),
                        source,
                    });
                }
            }
        }
        Ok(())
    })
    .await?
}
