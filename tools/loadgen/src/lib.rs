//! loadgen: an HTTP/1.1 load generator for PUT/GET blob servers (cairn, or anything that takes
//! `PUT /{key}` and `GET /{key}`, such as a WebDAV server). This root only names the modules;
//! `run` drives one run and returns its `Report`, so tests call it like the CLI does.

pub mod body;
pub mod cli;
pub mod client;
pub mod config;
pub mod cpu;
pub mod payload;
pub mod prefill;
pub mod progress;
pub mod report;
pub mod rng;
pub mod run;
pub mod schedule;
pub mod verify;
pub mod worker;

pub use config::{Config, Mix, SizeDist, Workload};
pub use report::{LatencyMs, Report};
pub use run::run;
