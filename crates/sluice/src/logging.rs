//! Logs: events on stderr; the access log (target `access`) and forward listeners'
//! policy audit log (target `audit`, on when a listener asks for it) on stdout; all
//! in the configured format (text or JSON lines).

use sluice_config::{Log, LogFormat};
use std::io::IsTerminal;
use tracing_subscriber::filter::{filter_fn, EnvFilter, LevelFilter};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

/// Checks that a level/filter string parses.
pub fn check_level(level: &str) -> Result<(), String> {
    EnvFilter::try_new(level)
        .map(|_| ())
        .map_err(|e| format!("invalid log level {level:?}: {e}"))
}

/// Installs the global subscriber. `RUST_LOG`, if set, overrides `log.level`.
pub fn init(log: &Log) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&log.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let events = filter_fn(|m| m.target() != "access" && m.target() != "audit");
    // The access and audit logs are INFO: saying so bounds the subscriber's level hint,
    // which also becomes the `log` crate's max level. Without a hint it is TRACE, and
    // every `log::trace!` in mio builds a record per socket event to be filtered out.
    let access_level = LevelFilter::INFO;
    let stdout_only = filter_fn(|m| m.target() == "access" || m.target() == "audit")
        .with_max_level_hint(access_level);
    let access_on = log.access_log;
    let (ev, ac) = match log.format {
        LogFormat::Json => (
            tracing_subscriber::fmt::layer()
                .json()
                .flatten_event(false)
                .with_writer(std::io::stderr)
                .boxed(),
            tracing_subscriber::fmt::layer()
                .json()
                .with_writer(std::io::stdout)
                .boxed(),
        ),
        LogFormat::Text => (
            tracing_subscriber::fmt::layer()
                .with_ansi(std::io::stderr().is_terminal())
                .with_writer(std::io::stderr)
                .boxed(),
            tracing_subscriber::fmt::layer()
                .with_ansi(std::io::stdout().is_terminal())
                .with_target(false)
                .with_writer(std::io::stdout)
                .boxed(),
        ),
    };
    let _ = tracing_subscriber::registry()
        .with(ev.with_filter(events).with_filter(filter))
        .with(
            ac.with_filter(
                filter_fn(move |m| (access_on && m.target() == "access") || m.target() == "audit")
                    .with_max_level_hint(access_level),
            )
            .with_filter(stdout_only),
        )
        .try_init();
}
