//! Helpers shared by the store's integration tests.

#![allow(dead_code, unreachable_pub, reason = "each test file uses a part")]

/// Runs `f` to completion on a fresh current-thread runtime.
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(f)
}
