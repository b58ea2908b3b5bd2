//! `swarmctl`: the command line, and the pieces its commands are made of.
//!
//! [`cli`] defines the arguments, [`commands`] runs them against a manager
//! reached through [`connect`]; the pure parts ([`flags`],
//! [`service_opts`], [`render`], [`progress`], [`compose`], [`stack`]) are
//! tested without a cluster.

pub mod cli;
pub mod commands;
pub mod compose;
pub mod connect;
pub mod flags;
pub mod progress;
pub mod render;
pub mod service_opts;
pub mod stack;
pub mod status;
