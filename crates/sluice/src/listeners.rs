//! The client listeners of the running process, by bind address. A reload binds the
//! added ones, tells the removed ones to stop accepting and drain, and hands new
//! settings to the ones that stay: their socket is never closed or rebound.

use crate::tls_load::LoadedTls;
use sluice_config::{Config, Listener as ListenerConfig};
use sluice_proxy::{Drain, ListenerSettings, Proxy};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;

struct Running {
    name: String,
    /// The address it got (port 0 resolved); `None` for Unix sockets.
    addr: Option<std::net::SocketAddr>,
    settings: watch::Sender<ListenerSettings>,
    stop: watch::Sender<bool>,
    task: JoinHandle<Drain>,
}

/// Listeners bound but not serving yet (the reload has not committed).
pub struct Bound {
    entries: Vec<(String, sluice_net::Listener, ListenerSettings)>,
}

pub struct Listeners {
    running: BTreeMap<String, Running>,
    /// `limits.max_client_connections`, shared by all listeners (fixed at start).
    client_limit: Option<Arc<Semaphore>>,
    shed: bool,
}

/// The listen backlog of listener `i`: its own, else the kernel's ceiling
/// (`net.core.somaxconn`). One above the ceiling is cut to it by the kernel without
/// a word, so it is said here, with the sysctl to raise.
fn backlog(i: usize, l: &ListenerConfig) -> u32 {
    let ceiling = crate::host::somaxconn();
    match (l.backlog, ceiling) {
        (Some(b), Some(max)) if b > max => {
            tracing::warn!(listener = %l.name, backlog = b, somaxconn = max, "listeners[{i}].backlog is above net.core.somaxconn: the kernel queues at most {max}; raise the sysctl (sysctl -w net.core.somaxconn={b}) or the backlog is {max}");
            b
        }
        (Some(b), _) => b,
        (None, Some(max)) => max,
        // No /proc (not Linux, or hidden): the common default of Linux since 5.4.
        (None, None) => 4096,
    }
}

/// A listener is the same listener when its bind address is the same (so renaming it
/// keeps its socket). Binds to port 0 are all different: they are told apart by name.
fn key(l: &ListenerConfig) -> String {
    let bind = l.bind.to_string();
    if bind.ends_with(":0") {
        format!("{}@{bind}", l.name)
    } else {
        bind
    }
}

fn settings(
    l: &ListenerConfig,
    (client_limit, shed): (&Option<Arc<Semaphore>>, bool),
    tls: &LoadedTls,
) -> ListenerSettings {
    ListenerSettings {
        tls: tls.get(&l.name),
        http2: l
            .http2_enabled()
            .then(|| Arc::new(l.http2_settings.clone())),
        name: l.name.clone(),
        keepalive_timeout: l.keepalive_timeout.get(),
        request_header_timeout: l.request_header_timeout.get(),
        request_body_idle_timeout: l.request_body_idle_timeout.get(),
        send_timeout: l.send_timeout.get(),
        half_close: l.half_close,
        head_limits: sluice_proxy::HeadLimits {
            line: l.max_request_line as usize,
            head: l.max_request_head as usize,
            headers: l.max_request_headers as usize,
        },
        client_limit: client_limit.clone(),
        shed_when_full: shed,
    }
}

fn same(a: &ListenerSettings, b: &ListenerSettings) -> bool {
    a.name == b.name
        && a.keepalive_timeout == b.keepalive_timeout
        && a.request_header_timeout == b.request_header_timeout
        && a.request_body_idle_timeout == b.request_body_idle_timeout
        && a.send_timeout == b.send_timeout
        && a.half_close == b.half_close
        && a.head_limits == b.head_limits
        && a.http2 == b.http2
        && match (&a.tls, &b.tls) {
            (None, None) => true,
            (Some(x), Some(y)) => x.same(y),
            _ => false,
        }
}

impl Listeners {
    pub fn new(config: &Config) -> Self {
        let client_limit = (config.limits.max_client_connections > 0)
            .then(|| Arc::new(Semaphore::new(config.limits.max_client_connections)));
        Self {
            running: BTreeMap::new(),
            client_limit,
            shed: config.limits.when_full == sluice_config::WhenFull::Shed,
        }
    }

    /// The TCP listeners serving, by name, with the addresses they got.
    pub fn tcp_addrs(&self) -> Vec<(String, std::net::SocketAddr)> {
        self.running
            .values()
            .filter_map(|r| r.addr.map(|a| (r.name.clone(), a)))
            .collect()
    }

    /// Binds the listeners of `config` that are not running yet. Nothing serves until
    /// [`Listeners::commit`]; dropping the result closes them again.
    pub fn bind_new(&self, config: &Config, tls: &LoadedTls) -> Result<Bound, String> {
        let mut entries = Vec::new();
        for (i, l) in config.listeners.iter().enumerate() {
            if self.running.contains_key(&key(l)) {
                continue;
            }
            let backlog = backlog(i, l);
            let listener = sluice_net::bind(&l.bind, backlog, l.mode)
                .map_err(|e| format!("listeners[{i}] ({}): cannot bind {}: {e}", l.name, l.bind))?;
            tracing::info!(listener = %l.name, backlog, "listen backlog");
            entries.push((
                key(l),
                listener,
                settings(l, (&self.client_limit, self.shed), tls),
            ));
        }
        Ok(Bound { entries })
    }

    /// Serves the newly bound listeners, updates the settings of those that stay, and
    /// stops those `config` no longer has (they drain for at most `drain`).
    pub fn commit(
        &mut self,
        config: &Config,
        tls: &LoadedTls,
        bound: Bound,
        proxy: &Arc<Proxy>,
        drain: Duration,
    ) {
        let wanted: BTreeMap<String, &ListenerConfig> =
            config.listeners.iter().map(|l| (key(l), l)).collect();
        let gone: Vec<String> = self
            .running
            .keys()
            .filter(|k| !wanted.contains_key(*k))
            .cloned()
            .collect();
        for k in gone {
            if let Some(r) = self.running.remove(&k) {
                tracing::info!(listener = %r.name, addr = %k, "listener removed: stopped accepting, draining its connections");
                let _ = r.stop.send(true);
                tokio::spawn(async move {
                    if let Ok(d) = r.task.await {
                        let _ = tokio::time::timeout(drain, d.wait()).await;
                    }
                });
            }
        }
        for (k, r) in &mut self.running {
            if let Some(l) = wanted.get(k) {
                let next = settings(l, (&self.client_limit, self.shed), tls);
                r.name.clone_from(&next.name);
                r.settings.send_if_modified(|cur| {
                    let changed = !same(cur, &next);
                    if changed {
                        *cur = next;
                    }
                    changed
                });
            }
        }
        for (k, listener, s) in bound.entries {
            let bound = listener.local_addr().ok();
            let tcp = match &bound {
                Some(sluice_config::BindAddr::Tcp(a)) => Some(*a),
                _ => None,
            };
            let addr = bound.map_or_else(|| k.clone(), |a| a.to_string());
            tracing::info!(listener = %s.name, addr = %addr, "listening");
            let name = s.name.clone();
            let (settings_tx, settings_rx) = watch::channel(s);
            let (stop_tx, stop_rx) = watch::channel(false);
            let task = tokio::spawn(sluice_proxy::serve(
                listener,
                settings_rx,
                proxy.clone(),
                stop_rx,
            ));
            self.running.insert(
                k,
                Running {
                    addr: tcp,
                    name,
                    settings: settings_tx,
                    stop: stop_tx,
                    task,
                },
            );
        }
    }

    /// Stops accepting everywhere; gives the open connections to wait for.
    pub async fn shutdown(&mut self) -> Vec<Drain> {
        for r in self.running.values() {
            let _ = r.stop.send(true);
        }
        let mut drains = Vec::new();
        for (_, r) in std::mem::take(&mut self.running) {
            if let Ok(d) = r.task.await {
                drains.push(d);
            }
        }
        drains
    }
}
