//! Fuzz target: see `swarm_pki::fuzzing::fuzz_certificate`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    swarm_pki::fuzzing::fuzz_certificate(data);
});
