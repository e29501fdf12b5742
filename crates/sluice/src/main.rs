//! `sluice`: the command line. `run` serves, `check` validates a config like `nginx -t`,
//! `doctor` explains the host's port limits.

mod cert_watch;
mod check;
mod check_tls;
mod control;
mod demo;
mod doctor;
mod host;
mod host_sampler;
mod kubernetes;
mod listeners;
mod logging;
mod overload;
mod reload;
mod reload_metrics;
mod run;
mod tls_load;
mod watch;
mod watching;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// jemalloc: its size classes keep the small long-lived allocations of idle
/// connections (tokio's 128-byte-aligned task and socket registration) packed, where
/// glibc malloc left about 0.7 KB of holes per idle connection (bench/RESULTS.md).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// sluice: a connection-pooling HTTP proxy.
///
/// Apps send plain HTTP to sluice (TCP or a Unix socket); sluice forwards it over a
/// warm pool of upstream connections (TLS, HTTP/1.1 keep-alive) shared by every client,
/// so thousands of short client connections become a few long upstream ones.
#[derive(Parser, Debug)]
#[command(name = "sluice", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve: bind the listeners and proxy until SIGTERM/SIGINT, then drain and exit 0.
    Run {
        /// The YAML config file (see README: config reference).
        #[arg(short, long, value_name = "FILE")]
        config: PathBuf,
        /// Also take routes and backends from the Kubernetes API (Ingresses of the
        /// `sluice` IngressClass and their Services), as `sources.kubernetes: {}` does.
        #[arg(long)]
        kubernetes: bool,
    },
    /// Validate a config file and exit: 0 if valid; otherwise print the file, the
    /// field and why, and exit 1.
    ///
    /// With `--diff OLD`, also print what a reload from OLD to this config would change
    /// (routes, backends, listeners added/removed/changed, and which upstream pools
    /// would survive), as a CI or GitOps pipeline would show before shipping it.
    Check {
        #[arg(short, long, value_name = "FILE")]
        config: PathBuf,
        /// The config running now (the one a reload would replace).
        #[arg(long, value_name = "OLD")]
        diff: Option<PathBuf>,
    },
    /// Show the point offline: an HTTPS origin with a certificate made at start,
    /// sluice in front of it, and a client opening a new connection per call (as PHP
    /// does). Prints latency straight to the origin and through sluice, and the
    /// connections the origin saw; then sluice keeps running until Ctrl-C.
    Demo {
        /// Calls made each way.
        #[arg(long, default_value_t = 200)]
        calls: usize,
        /// Stop this long after the figures instead of waiting for Ctrl-C (`5s`).
        #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
        exit_after: Option<std::time::Duration>,
    },
    /// Explain this host's connection limits: local ports, TIME_WAIT and
    /// ESTABLISHED per destination, the sysctls and cgroup limits that matter, the
    /// ceilings they set (new connections per second per destination), and what to
    /// change, most effective first. Reads /proc; changes nothing.
    Doctor {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        /// A destination to report on (host:port; repeat for more). Default: the
        /// ten holding the most local ports.
        #[arg(long, value_name = "HOST:PORT")]
        destination: Vec<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { config, diff } => check::run(&config, diff.as_deref()),
        Command::Run { config, kubernetes } => run::run(&config, kubernetes),
        Command::Doctor { json, destination } => doctor::run(json, &destination),
        Command::Demo { calls, exit_after } => demo::run(calls, exit_after),
    }
}
