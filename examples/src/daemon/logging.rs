//! Logs through `tracing`, filtered by `RUST_LOG` (default
//! `info,openraft=warn`: openraft narrates every election at info).

use tracing_subscriber::EnvFilter;

/// Installs a formatting subscriber on standard error. Calling it twice
/// is harmless (the second call does nothing).
pub fn init() {
    use std::io::IsTerminal;
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,openraft=warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}
