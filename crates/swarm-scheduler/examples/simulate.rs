//! Replays a workload file against one or more placement policies and
//! prints their placement quality side by side.
//!
//! ```text
//! cargo run --release -p swarm-scheduler --example simulate -- \
//!     crates/swarm-scheduler/examples/workloads/zones.jsonl spread binpack
//! ```
//!
//! Policies: `spread` (SwarmKit's default) and `binpack`; default: both.

use std::process::ExitCode;

use swarm_scheduler::sim;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(path) = args.first() else {
        eprintln!(
            "usage: simulate <workload.jsonl> [policy...]   (policies: {})",
            sim::POLICIES.join(", ")
        );
        return ExitCode::from(2);
    };
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("cannot read {path}: {e}");
            return ExitCode::from(1);
        }
    };
    let workload = match sim::parse_workload(&text) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("{path}: {e}");
            return ExitCode::from(1);
        }
    };
    let policies: Vec<&str> = if args.len() > 1 {
        args[1..].iter().map(String::as_str).collect()
    } else {
        sim::POLICIES.to_vec()
    };
    match sim::compare(&workload, &policies) {
        Ok(reports) => {
            #[allow(clippy::print_stdout, reason = "the report is the program's output")]
            {
                println!("workload: {path} ({} events)\n", workload.len());
                print!("{}", sim::render(&reports));
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(2)
        }
    }
}
