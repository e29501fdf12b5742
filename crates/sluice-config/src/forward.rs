//! A forward-proxy listener (`listeners[].forward`): clients use sluice as their
//! `http_proxy`. An absolute-form request (`GET http://api.example.com/x`) that no
//! route matches goes to an on-demand backend for its destination (`host:port`),
//! built from the `destination` template and pooled like any backend; hosts matching
//! `originate_tls` are reached over verified TLS although the client asked for
//! `http://`. `CONNECT` is allowed only to `connect.ports`. Every destination must
//! pass the `policy` (see `sluice-policy`).

use crate::duration::HumanDuration;
use crate::model::{BackendLimits, Dns, Pool, Protocol, Retries, TcpOptions, Timeouts, Tls};
use crate::{Backend, ServerAddr};
use serde::{Deserialize, Serialize};
use sluice_policy::{Policy, RuleSpec};
use std::path::PathBuf;

/// The most on-demand destinations one listener may hold.
pub const MAX_DESTINATIONS: usize = 100_000;

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Forward {
    /// Host patterns (`api.example.com`, `*.amazonaws.com`) reached over verified
    /// TLS when the client asks for `http://` (port 80 becomes 443; another port is
    /// kept, with TLS).
    #[serde(default)]
    pub originate_tls: Vec<String>,
    /// `CONNECT` tunnels; absent: refused with 405.
    #[serde(default)]
    pub connect: Option<Connect>,
    /// On-demand destinations held at once; beyond it the least recently used idle
    /// one is dropped (503 `too_many_destinations` when none is idle).
    #[serde(default = "default_max_destinations")]
    pub max_destinations: usize,
    /// A destination unused this long is dropped, its connections closed.
    #[serde(default = "default_destination_idle")]
    pub destination_idle_timeout: HumanDuration,
    /// What each destination's backend is built from.
    #[serde(default)]
    pub destination: Destination,
    /// Clients must send `Proxy-Authorization: Basic`, checked against this file.
    #[serde(default)]
    pub auth: Option<ProxyAuth>,
    #[serde(default)]
    pub policy: PolicyConfig,
    /// One JSON line per policy decision on stdout (target `audit`).
    #[serde(default)]
    pub audit_log: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Connect {
    #[serde(default = "default_connect_ports")]
    pub ports: Vec<u16>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Destination {
    #[serde(default)]
    pub protocol: Protocol,
    #[serde(default)]
    pub pool: Pool,
    #[serde(default)]
    pub timeouts: Timeouts,
    #[serde(default)]
    pub limits: BackendLimits,
    #[serde(default)]
    pub tcp: TcpOptions,
    #[serde(default)]
    pub dns: Dns,
    #[serde(default)]
    pub retries: Retries,
    /// For originated TLS: the CAs to trust (default: the system's) and whether to
    /// verify (never turn this off outside a test).
    #[serde(default)]
    pub tls: DestinationTls,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DestinationTls {
    #[serde(default = "yes")]
    pub verify: bool,
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

impl Default for DestinationTls {
    fn default() -> Self {
        Self {
            verify: true,
            ca_file: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ProxyAuth {
    /// Lines of `user:password` (`#` comments); keep it readable by sluice only.
    pub basic_file: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    #[serde(default)]
    pub allow: Vec<RuleConfig>,
    #[serde(default)]
    pub deny: Vec<RuleConfig>,
    /// What no rule decides: `deny` (default) or `allow`. The built-in deny ranges
    /// apply either way.
    #[serde(default)]
    pub default: PolicyDefault,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum PolicyDefault {
    #[default]
    Deny,
    Allow,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    #[serde(default)]
    pub host: Option<String>,
    #[serde(default)]
    pub ports: Vec<u16>,
    #[serde(default)]
    pub cidr: Option<String>,
}

impl PolicyConfig {
    /// The compiled policy; its error names the field under `policy`.
    pub fn compile(&self) -> Result<Policy, sluice_policy::PolicyError> {
        let specs = |rules: &[RuleConfig]| {
            rules
                .iter()
                .map(|r| RuleSpec {
                    host: r.host.clone(),
                    ports: r.ports.clone(),
                    cidr: r.cidr.clone(),
                })
                .collect::<Vec<_>>()
        };
        Policy::new(
            &specs(&self.allow),
            &specs(&self.deny),
            self.default == PolicyDefault::Allow,
        )
    }
}

impl Forward {
    /// The backend of destination `host:port` (`tls`: originated), named `name`.
    pub fn backend_for(&self, name: String, host: &str, port: u16, tls: bool) -> Backend {
        let d = &self.destination;
        Backend {
            name,
            servers: vec![ServerAddr::Tcp {
                host: host.to_string(),
                port,
            }],
            weights: Default::default(),
            tls: tls.then(|| Tls {
                sni: None,
                verify: d.tls.verify,
                ca_file: d.tls.ca_file.clone(),
            }),
            protocol: d.protocol,
            balance: Default::default(),
            hash_on: None,
            pool: d.pool.clone(),
            timeouts: d.timeouts.clone(),
            limits: d.limits.clone(),
            source_addresses: Vec::new(),
            tcp: d.tcp,
            dns: d.dns.clone(),
            health: Default::default(),
            retries: d.retries.clone(),
            // The listener's policy applies to destinations (see the data path).
            policy: None,
        }
    }
}

/// The `user:password` pairs of a credentials file.
pub fn read_credentials(path: &std::path::Path) -> Result<Vec<(String, String)>, String> {
    let text = crate::read_bounded(path, crate::limits::MAX_FILE_BYTES)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let text = String::from_utf8(text).map_err(|_| format!("{} is not UTF-8", path.display()))?;
    let mut pairs = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match line.split_once(':') {
            Some((user, pass)) if !user.is_empty() && !pass.is_empty() => {
                pairs.push((user.to_string(), pass.to_string()));
            }
            _ => {
                return Err(format!(
                    "{} line {}: expected user:password",
                    path.display(),
                    n + 1
                ))
            }
        }
    }
    if pairs.is_empty() {
        return Err(format!("{} has no user:password line", path.display()));
    }
    Ok(pairs)
}

fn yes() -> bool {
    true
}
fn default_max_destinations() -> usize {
    1024
}
fn default_destination_idle() -> HumanDuration {
    HumanDuration::secs(300)
}
fn default_connect_ports() -> Vec<u16> {
    vec![443]
}
