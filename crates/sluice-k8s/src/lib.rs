//! sluice's Kubernetes config source: Ingresses (of sluice's IngressClass) and the
//! Services they name become routes and backends, merged into the config file's and
//! applied through the same validate → canonicalize → diff → swap path as a reload.

mod annotations;
mod conditions;
mod endpoints;
mod files;
mod gateway;
mod gateway_rules;
mod gateway_tls;
mod model;
mod secrets;
mod services;
mod snippet;
mod source;
mod status;
mod translate;
mod watchers;

pub use model::{
    Files, Group, Report, Selector, Snapshot, StatusPatch, Translation, GATEWAY_CONTROLLER,
};
/// For the fuzz target `snippet` (not an API).
#[doc(hidden)]
pub use snippet::{parse as parse_snippet, Reuse, Snippet};
pub use source::{run, Sink};
pub use translate::translate;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod translate_tests;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod gateway_tests;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod secrets_tests;
