//! What the host offers, for node descriptions.

/// The host name (empty when it cannot be read).
pub fn hostname() -> String {
    nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// CPUs available to the agent, in units of 1e-9 CPUs.
pub fn nano_cpus() -> i64 {
    let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    i64::try_from(cpus)
        .unwrap_or(1)
        .saturating_mul(1_000_000_000)
}

/// Total memory in bytes, from `/proc/meminfo` (0 when unknown).
pub fn memory_bytes() -> i64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| parse_mem_total(&m))
        .unwrap_or(0)
}

fn parse_mem_total(meminfo: &str) -> Option<i64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: i64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_host() {
        assert_eq!(
            parse_mem_total("MemFree: 1 kB\nMemTotal:  2048 kB\n"),
            Some(2 << 20)
        );
        assert_eq!(parse_mem_total("garbage"), None);
        assert!(nano_cpus() >= 1_000_000_000);
        assert!(memory_bytes() > 0);
        assert!(!hostname().is_empty());
    }
}
