//! sluice's egress policy, pure (no I/O): what a forward-proxy or `CONNECT` client may
//! reach. Decisions are made on the *resolved* address of a destination, together
//! with its normalised host name and port, so the caller resolves once, checks each
//! address, and connects to exactly an address that was allowed (Smokescreen's rule:
//! no second lookup that a changed DNS answer could slip through).
//!
//! - [`Host::parse`] normalises what a client wrote (case, trailing dot, brackets, and
//!   the numeric IPv4 forms `0x7f000001`, `2130706433`, `127.1`, `0177.0.0.1`).
//! - [`Policy::check`] decides for one (host, port, address): deny rules first, then
//!   allow rules, then the built-in deny ranges ([`builtin`]), then the default.
//!   A host rule never opens a built-in range: only a `cidr` rule naming the address
//!   does.

mod builtin;
mod host;
mod rules;

pub use builtin::{builtin_denied, embedded_ipv4};
pub use host::{Host, HostError};
pub use rules::{HostPattern, Policy, PolicyError, RuleSpec, Verdict, Why};
