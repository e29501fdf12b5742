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

/// The policy of one destination (`host:port` as the client asked for it).
pub struct Egress {
    pub policy: Arc<Policy>,
    pub host: Host,
    pub port: u16,
    pub listener: Name,
    pub denied: Family<PolicyLabels, Counter>,
    pub audit: bool,
    /// Why the last lookup's addresses were all refused, for the 403.
    last_denial: Mutex<Option<(Why, String)>>,
}

impl Egress {
    pub fn new(
        policy: Arc<Policy>,
        (host, port): (Host, u16),
        listener: Name,
        denied: Family<PolicyLabels, Counter>,
        audit: bool,
    ) -> Self {
        Self {
            policy,
            host,
            port,
            listener,
            denied,
            audit,
            last_denial: Mutex::new(None),
        }
    }

    /// The addresses the policy allows; the refused ones are logged and counted.
    pub fn filter(&self, ips: &[IpAddr]) -> Vec<IpAddr> {
        let mut allowed = Vec::with_capacity(ips.len());
        let mut denial = None;
        for &ip in ips {
            let verdict = self.policy.check(&self.host, self.port, ip);
            audit(
                self.audit,
                &self.listener,
                &self.host,
                self.port,
                Some(ip),
                &verdict,
            );
            match verdict {
                Verdict::Allowed(_) => allowed.push(ip),
                Verdict::Denied(why) => {
                    self.count(&why);
                    tracing::warn!(listener = %self.listener.as_str(), host = %self.host, port = self.port, address = %ip, rule = %why, "destination address denied by policy");
                    denial.get_or_insert((why, ip.to_string()));
                }
            }
        }
        *self.last_denial.lock() = if allowed.is_empty() { denial } else { None };
        allowed
    }

    /// Why the destination has no allowed address, if that is the reason.
    pub fn denial(&self) -> Option<String> {
        self.last_denial.lock().as_ref().map(|(why, ip)| {
            format!(
                "{}:{} resolves to {ip}: denied by rule {why}",
                self.host, self.port
            )
        })
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
