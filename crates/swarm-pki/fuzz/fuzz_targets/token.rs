//! Fuzz target: see `swarm_pki::fuzzing::fuzz_token`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    swarm_pki::fuzzing::fuzz_token(data);
});
