//! The policy check of an on-demand destination's addresses. Its backend's servers
//! are the addresses its name resolved to, filtered here on every lookup: sluice
//! connects only to a server, so only to an address the policy allowed (no second
//! lookup that a changed answer could slip through).

use crate::metrics::{Name, PolicyLabels};
use parking_lot::Mutex;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use sluice_policy::{Host, Policy, Verdict, Why};
use std::net::IpAddr;
use std::sync::Arc;

/// The policy of a forward listener's destination, or of a configured backend that
/// opted in (`backends[].policy`).
pub struct Egress {
    pub policy: Arc<Policy>,
    /// A destination is checked as the client named it (`host:port`, the port before
    /// TLS origination); a backend, as each of its servers is written.
    fixed: Option<(Host, u16)>,
    /// The `listener` label of its denials: the listener, or `backend:<name>`.
    pub listener: Name,
    pub denied: Family<PolicyLabels, Counter>,
    pub audit: bool,
    /// Why the last lookup's addresses were all refused, for the 403.
    last_denial: Mutex<Option<String>>,
}

impl Egress {
    /// `fixed`: the destination as the client named it; `None` for a backend.
    pub fn new(
        policy: Arc<Policy>,
        fixed: Option<(Host, u16)>,
        listener: Name,
        denied: Family<PolicyLabels, Counter>,
        audit: bool,
    ) -> Self {
        Self {
            policy,
            fixed,
            listener,
            denied,
            audit,
            last_denial: Mutex::new(None),
        }
    }

    /// The addresses of server `host:port` the policy allows; the refused ones are
    /// logged and counted.
    pub fn filter(&self, host: &str, port: u16, ips: &[IpAddr]) -> Vec<IpAddr> {
        let parsed;
        let (host, port) = match &self.fixed {
            Some((h, p)) => (h, *p),
            None => match Host::parse(host) {
                Ok(h) => {
                    parsed = h;
                    (&parsed, port)
                }
                // A name that does not parse names nothing a rule could allow.
                Err(_) => return Vec::new(),
            },
        };
        let mut allowed = Vec::with_capacity(ips.len());
        let mut denial = None;
        for &ip in ips {
            let verdict = self.policy.check(host, port, ip);
            audit(self.audit, &self.listener, host, port, Some(ip), &verdict);
            match verdict {
                Verdict::Allowed(_) => allowed.push(ip),
                Verdict::Denied(why) => {
                    self.count(&why);
                    tracing::warn!(listener = %self.listener.as_str(), host = %host, port, address = %ip, rule = %why, "destination address denied by policy");
                    denial.get_or_insert(format!(
                        "{host}:{port} resolves to {ip}: denied by rule {why}"
                    ));
                }
            }
        }
        *self.last_denial.lock() = if allowed.is_empty() { denial } else { None };
        allowed
    }

    /// Why the destination has no allowed address, if that is the reason.
    pub fn denial(&self) -> Option<String> {
        self.last_denial.lock().clone()
    }

    pub fn count(&self, why: &Why) {
        self.denied
            .get_or_create(&PolicyLabels {
                listener: self.listener.clone(),
                rule: Name::new(&why.to_string()),
            })
            .inc();
    }
}

/// One policy decision on the audit log (stdout, target `audit`), if it is on.
pub fn audit(on: bool, listener: &Name, host: &Host, port: u16, ip: Option<IpAddr>, v: &Verdict) {
    if !on {
        return;
    }
    let (decision, why) = match v {
        Verdict::Allowed(w) => ("allow", w),
        Verdict::Denied(w) => ("deny", w),
    };
    let address = ip.map(|ip| ip.to_string()).unwrap_or_default();
    tracing::info!(target: "audit", listener = %listener.as_str(), host = %host, port, address = %address, decision, rule = %why, "policy decision");
}
