//! The canonical form of a config: two files that mean the same thing give equal
//! canonical configs, so a reload can tell "nothing changed" from a real change.
//!
//! Defaults need no work here: parsing fills them in, so a default written out and
//! one left implicit are already the same value (and `60s` equals `1m`). What is left
//! is order: every list whose order the proxy never looks at is sorted.
//!
//! Orders that have no meaning, and why:
//! - `routes`: the router files routes by host kind (exact, wildcard, `*`) and sorts
//!   each host's routes longest prefix first; two different prefixes of one length
//!   cannot both match a path, and a host and prefix pair is unique.
//! - `listeners`, `backends`: looked up by name; names are unique.
//! - `backends[].servers`: balancing rotates over them (`round_robin`, ties of
//!   `least_request`), draws them at random (`p2c`) or hashes their addresses
//!   (`hash`); none of these prefers a position. Duplicates are kept: a server
//!   listed twice gets two shares of the traffic.
//! - `backends[].source_addresses`: taken in turn, a set like the pool key sees it;
//!   duplicates are kept for the same reason.
//!
//! - `resolver.nameservers`: unlike `/etc/resolv.conf`'s primary-first convention,
//!   hickory (0.25, with the default `QueryStatistics` ordering sluice keeps) sorts
//!   the servers by smoothed response time before every query, starting each from a
//!   random 1-32 µs, so the first one listed is not preferred even at start.
//!   If sluice ever sets `UserProvidedOrder`, this order gains meaning and must be kept.
//!
//! `parse` does not canonicalize beyond routes: `sluice-proxy` names fields by their
//! index in the file (`backends[3].tls.ca_file`) when it compiles the config, and
//! sorted backends would make that index point at another entry.

use crate::{Backend, Config, ServerAddr};

/// The canonical form of a validated config (see the module docs): equal for
/// configs that differ only in the order of lists whose order has no meaning.
pub fn canonical(config: &Config) -> Config {
    let mut c = config.clone();
    canonicalize(&mut c);
    c
}

/// [`canonical`] in place.
pub fn canonicalize(c: &mut Config) {
    for r in &mut c.routes {
        r.client_identities.sort();
        r.client_identities.dedup();
        r.headers = std::mem::take(&mut r.headers)
            .into_iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v))
            .collect();
    }
    c.routes.sort_by(|a, b| {
        (&a.host, &a.path_prefix, &a.headers).cmp(&(&b.host, &b.path_prefix, &b.headers))
    });
    c.listeners.sort_by(|a, b| a.name.cmp(&b.name));
    c.backends.sort_by(|a, b| a.name.cmp(&b.name));
    c.backends.iter_mut().for_each(canonicalize_backend);
    if let Some(r) = &mut c.resolver {
        r.nameservers.sort();
    }
}

/// One backend's canonical form (what a reload compares to tell a changed backend).
pub fn canonical_backend(b: &Backend) -> Backend {
    let mut b = b.clone();
    canonicalize_backend(&mut b);
    b
}

fn canonicalize_backend(b: &mut Backend) {
    for s in &mut b.servers {
        canonical_ip_literal(s);
    }
    b.servers.sort();
    b.source_addresses.sort();
    // 1 is every server's weight unless said otherwise: saying it changes nothing.
    b.weights = std::mem::take(&mut b.weights)
        .into_iter()
        .filter(|(_, w)| *w != 1)
        .map(|(mut s, w)| {
            canonical_ip_literal(&mut s);
            (s, w)
        })
        .collect();
}

/// Whether two validated configs mean the same: equal canonical forms.
pub fn same(a: &Config, b: &Config) -> bool {
    canonical(a) == canonical(b)
}

/// An IP literal has many spellings (`0:0::1`, `::1`); connections go to the
/// parsed address, so the spelling is not part of the server's identity.
fn canonical_ip_literal(s: &mut ServerAddr) {
    if let ServerAddr::Tcp { host, .. } = s {
        if let Ok(ip) = host.parse::<std::net::IpAddr>() {
            *host = ip.to_string();
        }
    }
}
