//! Allow and deny rules, and the decision for one destination.
//!
//! A rule names a host pattern (`*`, `*.example.com` for the names under it, or one
//! host), ports (none = any) and a CIDR of the resolved address; every part it has
//! must match. For (host, port, address), in this order:
//! 1. a deny rule that matches: denied;
//! 2. an allow rule that matches: allowed, unless the address is in a built-in range
//!    ([`crate::builtin_denied`]) and the rule has no `cidr` (a host rule never opens
//!    the metadata endpoint or a private network; a `cidr` rule naming it does);
//! 3. an address in a built-in range: denied;
//! 4. the default (`deny` unless configured otherwise).

use crate::builtin::{builtin_denied, embedded_ipv4};
use crate::host::Host;
use ipnet::IpNet;
use std::fmt;
use std::net::IpAddr;

/// A rule as the config writes it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuleSpec {
    pub host: Option<String>,
    pub ports: Vec<u16>,
    pub cidr: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct PolicyError {
    /// Relative to the policy: `allow[2].cidr`.
    pub field: String,
    pub reason: String,
}

/// Which hosts a rule names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    Any,
    /// `*.example.com`: the names under `example.com`, not itself.
    Under(String),
    Exact(Host),
}

impl HostPattern {
    pub fn parse(raw: &str) -> Result<Self, String> {
        if raw == "*" {
            return Ok(Self::Any);
        }
        if let Some(base) = raw.strip_prefix("*.") {
            return match Host::parse(base) {
                Ok(Host::Name(n)) => Ok(Self::Under(n)),
                Ok(Host::Ip(_)) => Err(format!("{raw:?}: a wildcard must stand before a name")),
                Err(e) => Err(format!("{raw:?}: {e}")),
            };
        }
        if raw.contains('*') {
            return Err(format!(
                "{raw:?}: `*` is allowed only alone or as `*.` in front"
            ));
        }
        Host::parse(raw)
            .map(Self::Exact)
            .map_err(|e| format!("{raw:?}: {e}"))
    }

    pub fn matches(&self, host: &Host) -> bool {
        match (self, host) {
            (Self::Any, _) => true,
            (Self::Under(base), Host::Name(n)) => n
                .strip_suffix(base.as_str())
                .is_some_and(|head| head.len() > 1 && head.ends_with('.')),
            (Self::Under(_), Host::Ip(_)) => false,
            (Self::Exact(h), host) => h == host,
        }
    }
}

#[derive(Debug, Clone)]
struct Rule {
    host: Option<HostPattern>,
    ports: Vec<u16>,
    cidr: Option<IpNet>,
}

impl Rule {
    fn parse(spec: &RuleSpec, at: &str) -> Result<Self, PolicyError> {
        let fail = |field: &str, reason: String| PolicyError {
            field: format!("{at}.{field}"),
            reason,
        };
        if spec.host.is_none() && spec.cidr.is_none() {
            return Err(PolicyError {
                field: at.to_string(),
                reason: "a rule needs a host or a cidr".into(),
            });
        }
        let host = match &spec.host {
            Some(h) => Some(HostPattern::parse(h).map_err(|e| fail("host", e))?),
            None => None,
        };
        let cidr = match &spec.cidr {
            Some(c) => Some(parse_cidr(c).map_err(|e| fail("cidr", e))?),
            None => None,
        };
        if spec.ports.contains(&0) {
            return Err(fail("ports", "0 is not a port".into()));
        }
        Ok(Self {
            host,
            ports: spec.ports.clone(),
            cidr,
        })
    }

    fn port_ok(&self, port: u16) -> bool {
        self.ports.is_empty() || self.ports.contains(&port)
    }

    fn host_ok(&self, host: &Host) -> bool {
        self.host.as_ref().is_none_or(|p| p.matches(host))
    }

    /// The address, or the IPv4 address it embeds, is in the rule's range.
    fn cidr_ok(&self, ip: IpAddr) -> bool {
        let Some(net) = &self.cidr else {
            return true;
        };
        net.contains(&ip)
            || match ip {
                IpAddr::V6(v6) => {
                    embedded_ipv4(v6).is_some_and(|(_, v4)| net.contains(&IpAddr::V4(v4)))
                }
                IpAddr::V4(_) => false,
            }
    }

    fn matches(&self, host: &Host, port: u16, ip: IpAddr) -> bool {
        self.port_ok(port) && self.host_ok(host) && self.cidr_ok(ip)
    }
}

/// An address alone (`10.1.0.0/16`, or `10.1.2.3` for one address).
fn parse_cidr(raw: &str) -> Result<IpNet, String> {
    if let Ok(net) = raw.parse::<IpNet>() {
        if net.trunc() != net {
            return Err(format!(
                "{raw:?} has bits set past its prefix length (did you mean {}?)",
                net.trunc()
            ));
        }
        return Ok(net);
    }
    raw.parse::<IpAddr>()
        .map(IpNet::from)
        .map_err(|_| format!("{raw:?} is not an address or a CIDR range"))
}

/// Which rule made a decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Why {
    Allow(usize),
    Deny(usize),
    /// A built-in range, as `name cidr`.
    Builtin(String),
    Default,
}

impl fmt::Display for Why {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Why::Allow(i) => write!(f, "allow[{i}]"),
            Why::Deny(i) => write!(f, "deny[{i}]"),
            Why::Builtin(r) => write!(f, "builtin {r}"),
            Why::Default => f.write_str("default"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Allowed(Why),
    Denied(Why),
}

impl Verdict {
    pub fn is_allowed(&self) -> bool {
        matches!(self, Verdict::Allowed(_))
    }
}

/// One set of rules (a forward listener's).
#[derive(Debug, Clone)]
pub struct Policy {
    allow: Vec<Rule>,
    deny: Vec<Rule>,
    default_allow: bool,
}

impl Policy {
    pub fn new(
        allow: &[RuleSpec],
        deny: &[RuleSpec],
        default_allow: bool,
    ) -> Result<Self, PolicyError> {
        let parse = |specs: &[RuleSpec], what: &str| {
            specs
                .iter()
                .enumerate()
                .map(|(i, s)| Rule::parse(s, &format!("{what}[{i}]")))
                .collect::<Result<Vec<_>, _>>()
        };
        Ok(Self {
            allow: parse(allow, "allow")?,
            deny: parse(deny, "deny")?,
            default_allow,
        })
    }

    /// The decision for `host:port` reached at `ip` (one of the addresses `host`
    /// resolved to, or the address it is).
    pub fn check(&self, host: &Host, port: u16, ip: IpAddr) -> Verdict {
        if let Some(i) = self.deny.iter().position(|r| r.matches(host, port, ip)) {
            return Verdict::Denied(Why::Deny(i));
        }
        let builtin = builtin_denied(ip);
        let allowed = self
            .allow
            .iter()
            .position(|r| r.matches(host, port, ip) && (builtin.is_none() || r.cidr.is_some()));
        if let Some(i) = allowed {
            return Verdict::Allowed(Why::Allow(i));
        }
        if let Some(range) = builtin {
            return Verdict::Denied(Why::Builtin(range));
        }
        if self.default_allow {
            Verdict::Allowed(Why::Default)
        } else {
            Verdict::Denied(Why::Default)
        }
    }

    /// The decision before any lookup, when the host alone settles it: an address
    /// literal, a name a deny rule names by host, or a name no allow rule could match
    /// under a default deny. `None`: resolve, then [`Policy::check`] each address.
    pub fn precheck(&self, host: &Host, port: u16) -> Option<Verdict> {
        if let Some(ip) = host.ip() {
            return Some(self.check(host, port, ip));
        }
        let by_name = |r: &Rule| r.cidr.is_none() && r.port_ok(port) && r.host_ok(host);
        if let Some(i) = self.deny.iter().position(by_name) {
            return Some(Verdict::Denied(Why::Deny(i)));
        }
        let could = self
            .allow
            .iter()
            .any(|r| r.port_ok(port) && r.host_ok(host));
        (!could && !self.default_allow).then_some(Verdict::Denied(Why::Default))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(host: Option<&str>, ports: &[u16], cidr: Option<&str>) -> RuleSpec {
        RuleSpec {
            host: host.map(String::from),
            ports: ports.to_vec(),
            cidr: cidr.map(String::from),
        }
    }

    /// The example policy.
    fn example() -> Policy {
        Policy::new(
            &[
                rule(Some("*.amazonaws.com"), &[], None),
                rule(Some("api.example.com"), &[80, 443], None),
                rule(None, &[], Some("10.1.0.0/16")),
            ],
            &[rule(None, &[], Some("10.1.2.0/24"))],
            false,
        )
        .unwrap()
    }

    fn check(p: &Policy, host: &str, port: u16, ip: &str) -> Verdict {
        p.check(&Host::parse(host).unwrap(), port, ip.parse().unwrap())
    }

    fn allowed(why: Why) -> Verdict {
        Verdict::Allowed(why)
    }

    fn denied(why: Why) -> Verdict {
        Verdict::Denied(why)
    }

    #[test]
    fn the_order_is_deny_allow_builtin_default() {
        let p = example();
        assert_eq!(
            check(&p, "s3.amazonaws.com", 443, "52.216.0.1"),
            allowed(Why::Allow(0))
        );
        assert_eq!(
            check(&p, "amazonaws.com", 443, "52.216.0.1"),
            denied(Why::Default)
        );
        assert_eq!(
            check(&p, "api.example.com", 443, "93.184.215.14"),
            allowed(Why::Allow(1))
        );
        assert_eq!(
            check(&p, "api.example.com", 8080, "93.184.215.14"),
            denied(Why::Default)
        );
        assert_eq!(
            check(&p, "internal.corp", 80, "10.1.7.7"),
            allowed(Why::Allow(2))
        );
        assert_eq!(
            check(&p, "internal.corp", 80, "10.1.2.3"),
            denied(Why::Deny(0))
        );
        assert_eq!(
            check(&p, "other.test", 80, "93.184.215.14"),
            denied(Why::Default)
        );
    }

    #[test]
    fn a_host_rule_never_opens_a_builtin_range_but_a_cidr_rule_does() {
        let p = example();
        // An allowed name that resolves to the metadata address, or to a private one.
        assert_eq!(
            check(&p, "evil.amazonaws.com", 80, "169.254.169.254"),
            denied(Why::Builtin("cloud-metadata 169.254.169.254/32".into()))
        );
        assert_eq!(
            check(&p, "api.example.com", 80, "10.0.0.1"),
            denied(Why::Builtin("private 10.0.0.0/8".into()))
        );
        // The host rule cannot open 10/8, the cidr rule naming 10.1/16 does.
        assert_eq!(
            check(&p, "x.amazonaws.com", 80, "10.1.0.9"),
            allowed(Why::Allow(2))
        );
        // An IPv4-mapped form of an allowed range is allowed too; of a denied one, denied.
        assert_eq!(
            check(&p, "::ffff:10.1.7.7", 80, "::ffff:10.1.7.7"),
            allowed(Why::Allow(2))
        );
        assert_eq!(
            check(&p, "::ffff:10.1.2.7", 80, "::ffff:10.1.2.7"),
            denied(Why::Deny(0))
        );
    }

    #[test]
    fn an_open_policy_still_denies_the_builtin_ranges() {
        let open = Policy::new(&[rule(Some("*"), &[], None)], &[], false).unwrap();
        assert_eq!(
            check(&open, "example.org", 443, "93.184.215.14"),
            allowed(Why::Allow(0))
        );
        for ip in [
            "127.0.0.1",
            "169.254.169.254",
            "::ffff:169.254.169.254",
            "64:ff9b::a00:1",
            "::1",
        ] {
            assert!(
                matches!(
                    check(&open, "x.test", 80, ip),
                    Verdict::Denied(Why::Builtin(_))
                ),
                "{ip}"
            );
        }
        let default_allow = Policy::new(&[], &[], true).unwrap();
        assert_eq!(
            check(&default_allow, "a.test", 80, "8.8.8.8"),
            allowed(Why::Default)
        );
        assert!(!check(&default_allow, "a.test", 80, "10.0.0.1").is_allowed());
    }

    #[test]
    fn precheck_settles_literals_and_names_without_a_lookup() {
        let p = example();
        let pre = |h: &str, port| p.precheck(&Host::parse(h).unwrap(), port);
        assert_eq!(
            pre("0x7f000001", 80),
            Some(denied(Why::Builtin("loopback 127.0.0.0/8".into())))
        );
        assert_eq!(
            pre("nothing.test", 80),
            None,
            "a cidr rule may still match it"
        );
        let names_only = Policy::new(
            &[rule(Some("api.example.com"), &[443], None)],
            &[rule(Some("*.bad.test"), &[], None)],
            false,
        )
        .unwrap();
        let pre = |h: &str, port| names_only.precheck(&Host::parse(h).unwrap(), port);
        assert_eq!(pre("nothing.test", 443), Some(denied(Why::Default)));
        assert_eq!(pre("api.example.com", 80), Some(denied(Why::Default)));
        assert_eq!(pre("api.example.com", 443), None);
        assert_eq!(pre("x.bad.test", 443), Some(denied(Why::Deny(0))));
    }

    #[test]
    fn bad_rules_are_refused_with_the_field() {
        let e = Policy::new(&[rule(None, &[], Some("10.1.2.3/16"))], &[], false).unwrap_err();
        assert_eq!(e.field, "allow[0].cidr");
        assert!(e.reason.contains("10.1.0.0/16"), "{e}");
        let e = Policy::new(&[], &[rule(Some("a.*.com"), &[], None)], false).unwrap_err();
        assert_eq!(e.field, "deny[0].host");
        let e = Policy::new(&[rule(None, &[], None)], &[], false).unwrap_err();
        assert_eq!(e.field, "allow[0]");
        let e = Policy::new(&[rule(Some("a.test"), &[0], None)], &[], false).unwrap_err();
        assert_eq!(e.field, "allow[0].ports");
        assert!(Policy::new(&[rule(None, &[], Some("10.1.2.3"))], &[], false).is_ok());
    }

    #[test]
    fn wildcards_name_what_is_under_a_domain() {
        let under = HostPattern::parse("*.example.com").unwrap();
        let m = |h: &str| under.matches(&Host::parse(h).unwrap());
        assert!(m("a.example.com") && m("a.b.example.com"));
        assert!(!m("example.com") && !m("badexample.com") && !m("example.com.evil.test"));
    }
}
