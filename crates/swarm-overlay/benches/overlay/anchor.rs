//! The data-plane anchor, built in the same run: two tasks joined by the
//! kernel's VXLAN as a shell script of `ip` commands sets it up (bridge and
//! VXLAN device in each host's namespace, static FDB and neighbour
//! entries, no learning, MTU 1450), over an underlay of the same shape as
//! the lab's (hosts on a switch bridge). Everything is in namespaces of
//! its own, removed on drop.

use std::process::Command;

/// The anchor's namespaces and the task addresses.
pub(crate) struct KernelVxlan {
    names: Vec<String>,
    /// Namespace of the client task.
    pub(crate) client: String,
    /// Namespace of the server task.
    pub(crate) server: String,
    /// The server task's address.
    pub(crate) server_ip: std::net::IpAddr,
}

fn sh(script: &str) {
    let out = Command::new("sh").arg("-ec").arg(script).output().unwrap();
    assert!(
        out.status.success(),
        "anchor setup failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl KernelVxlan {
    /// Builds it, on VNI 4097 and addresses of its own (198.19.0.0/24
    /// underlay, 10.92.0.0/24 overlay).
    pub(crate) fn build() -> KernelVxlan {
        let p = format!("ova{}", std::process::id());
        let (sw, h1, h2, t1, t2) = (
            format!("{p}-sw"),
            format!("{p}-h1"),
            format!("{p}-h2"),
            format!("{p}-t1"),
            format!("{p}-t2"),
        );
        let names = vec![sw.clone(), h1.clone(), h2.clone(), t1.clone(), t2.clone()];
        let anchor = KernelVxlan {
            names,
            client: t1.clone(),
            server: t2.clone(),
            server_ip: "10.92.0.2".parse().unwrap(),
        };
        let mut script = String::new();
        for n in &anchor.names {
            script += &format!("ip netns add {n}\nip -n {n} link set lo up\n");
        }
        script += &format!("ip -n {sw} link add ul0 type bridge\nip -n {sw} link set ul0 up\n");
        for (i, (h, t)) in [(&h1, &t1), (&h2, &t2)].into_iter().enumerate() {
            let i = i + 1;
            script += &format!(
                "ip -n {sw} link add p{i} type veth peer name eth0 netns {h}
ip -n {sw} link set p{i} master ul0 up
ip -n {h} addr add 198.19.0.{i}/24 dev eth0
ip -n {h} link set eth0 up
ip -n {h} link add br0 type bridge
ip -n {h} link set br0 up
ip -n {h} link add vx0 type vxlan id 4097 local 198.19.0.{i} dstport 4789 nolearning noudpcsum
ip -n {h} link set vx0 mtu 1450 master br0 up
ip -n {h} link add ve0 mtu 1450 type veth peer name eth0 netns {t}
ip -n {h} link set ve0 master br0 up
ip -n {t} link set eth0 address 02:42:0a:5c:00:0{i}
ip -n {t} addr add 10.92.0.{i}/24 dev eth0
ip -n {t} link set eth0 up
"
            );
        }
        script += &format!(
            "bridge -n {h1} fdb add 02:42:0a:5c:00:02 dev vx0 dst 198.19.0.2 self permanent
bridge -n {h2} fdb add 02:42:0a:5c:00:01 dev vx0 dst 198.19.0.1 self permanent
ip -n {t1} neigh add 10.92.0.2 lladdr 02:42:0a:5c:00:02 dev eth0 nud permanent
ip -n {t2} neigh add 10.92.0.1 lladdr 02:42:0a:5c:00:01 dev eth0 nud permanent
"
        );
        sh(&script);
        anchor
    }
}

impl Drop for KernelVxlan {
    fn drop(&mut self) {
        for n in &self.names {
            let _ = Command::new("ip").args(["netns", "del", n]).output();
        }
    }
}
