//! sluice's Kubernetes config source: Ingresses (of sluice's IngressClass) and the
//! Services they name become routes and backends, merged into the config file's and
//! applied through the same validate → canonicalize → diff → swap path as a reload.

mod annotations;
mod endpoints;
mod snippet;
mod source;
mod translate;

pub use source::{run, Sink};
pub use translate::{translate, Group, Report, Selector, Snapshot, Translation};

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod translate_tests;
