//! `sluice run`: load the config, bind everything, serve, drain on SIGTERM/SIGINT.

use crate::logging;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use sluice_admin::AdminState;
use sluice_config::{BindAddr, Config, ConfigError};
use sluice_proxy::{ListenerSettings, Metrics, Proxy};
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Parses, validates and compiles a config without binding anything (`sluice check`).
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let config = sluice_config::load(path)?;
    let origin = path.display().to_string();
    logging::check_level(&config.log.level).map_err(|reason| ConfigError {
        file: origin.clone(),
        field: "log.level".into(),
        reason,
    })?;
    // Compiling also loads CA files and checks TLS names, which parsing cannot.
    sluice_proxy::compile(
        &config,
        &Metrics::register(&mut Registry::default()),
        &origin,
    )?;
    Ok(config)
}

pub fn run(path: &Path) -> ExitCode {
    let config = match load(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    logging::init(&config.log);
    let workers = match config.runtime.workers {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let runtime = if workers == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .enable_all()
            .build()
    };
    let runtime = match runtime {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(config, path, workers)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: Config, path: &Path, workers: usize) -> Result<(), String> {
    // Before anything is bound: a SIGTERM from here on drains instead of killing us.
    let signals = Signals::install()?;
    let mut registry = Registry::default();
    let metrics = Metrics::register(&mut registry);
    let info =
        prometheus_client::metrics::family::Family::<Vec<(String, String)>, Gauge>::default();
    info.get_or_create(&vec![("version".into(), env!("CARGO_PKG_VERSION").into())])
        .set(1);
    registry.register("sluice_build_info", "sluice version", info);
    let runtime = sluice_proxy::compile(&config, &metrics, &path.display().to_string())
        .map_err(|e| e.to_string())?;
    let proxy = Arc::new(Proxy::new(runtime, metrics));
    let reap_every = config
        .backends
        .iter()
        .map(|b| b.pool.idle_timeout.get() / 4)
        .min()
        .unwrap_or(Duration::from_secs(5))
        .clamp(Duration::from_millis(100), Duration::from_secs(5));
    let reaper = proxy.pools().h1.spawn_reaper(reap_every);
    // Resolves server names (bounded by the resolver's timeout) before listening, so
    // the first requests find addresses; then DNS refresh, checks and warm pool run.
    sluice_proxy::start_background(&proxy).await?;
    let client_limit = (config.limits.max_client_connections > 0).then(|| {
        Arc::new(tokio::sync::Semaphore::new(
            config.limits.max_client_connections,
        ))
    });

    let mut bound = Vec::new();
    for (i, l) in config.listeners.iter().enumerate() {
        let listener = sluice_net::bind(&l.bind, l.backlog, l.mode)
            .map_err(|e| format!("listeners[{i}] ({}): cannot bind {}: {e}", l.name, l.bind))?;
        let addr = listener
            .local_addr()
            .map_or_else(|_| l.bind.to_string(), |a| a.to_string());
        tracing::info!(listener = %l.name, addr = %addr, "listening");
        bound.push((
            listener,
            ListenerSettings {
                name: l.name.clone(),
                keepalive_timeout: l.keepalive_timeout.get(),
                request_header_timeout: l.request_header_timeout.get(),
                request_body_idle_timeout: l.request_body_idle_timeout.get(),
                send_timeout: l.send_timeout.get(),
                half_close: l.half_close,
                client_limit: client_limit.clone(),
            },
        ));
    }

    let ready = Arc::new(AtomicBool::new(false));
    if let Some(admin) = &config.admin {
        start_admin(
            &admin.bind,
            AdminState {
                registry: Arc::new(registry),
                ready: ready.clone(),
                control: None,
            },
        )?;
    }

    let (stop_tx, stop_rx) = watch::channel(false);
    let servers: Vec<_> = bound
        .into_iter()
        .map(|(listener, settings)| {
            tokio::spawn(sluice_proxy::serve(
                listener,
                settings,
                proxy.clone(),
                stop_rx.clone(),
            ))
        })
        .collect();
    ready.store(true, Ordering::Relaxed);
    tracing::info!(version = env!("CARGO_PKG_VERSION"), workers, config = %path.display(), "sluice started");

    let signal = signals.wait().await;
    let drain = config.shutdown.drain_timeout.get();
    tracing::info!(signal, drain_timeout = ?drain, "shutting down: closing listeners, draining in-flight requests");
    ready.store(false, Ordering::Relaxed);
    let _ = stop_tx.send(true);
    let mut drains = Vec::new();
    for s in servers {
        if let Ok(d) = s.await {
            drains.push(d);
        }
    }
    // Every connection saw the stop signal itself; this only waits for them to end.
    let all = futures_util::future::join_all(drains.into_iter().map(|d| d.wait()));
    match tokio::time::timeout(drain, all).await {
        Ok(_) => tracing::info!("drained; exiting"),
        Err(_) => {
            tracing::warn!(drain_timeout = ?drain, "drain timeout reached; closing remaining connections")
        }
    }
    reaper.abort();
    proxy.pools().h1.clear();
    proxy.pools().h2.clear();
    Ok(())
}

/// SIGTERM and SIGINT, both meaning "drain and exit".
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> Result<Self, String> {
        use tokio::signal::unix::{signal, SignalKind};
        let term = signal(SignalKind::terminate())
            .map_err(|e| format!("cannot install SIGTERM handler: {e}"))?;
        let int = signal(SignalKind::interrupt())
            .map_err(|e| format!("cannot install SIGINT handler: {e}"))?;
        Ok(Self { term, int })
    }

    async fn wait(mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}

/// The admin plane gets its own thread and single-threaded runtime, so a saturated
/// data path never starves `/metrics` or the health checks.
fn start_admin(bind: &BindAddr, state: AdminState) -> Result<(), String> {
    let (tx, rx) = std::sync::mpsc::channel();
    let bind = bind.clone();
    std::thread::Builder::new()
        .name("sluice-admin".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = tx.send(Err(format!("admin runtime: {e}")));
                    return;
                }
            };
            rt.block_on(async move {
                match sluice_net::bind(&bind, 128, None) {
                    Ok(listener) => {
                        let addr = listener
                            .local_addr()
                            .map_or_else(|_| bind.to_string(), |a| a.to_string());
                        tracing::info!(addr = %addr, "admin listening");
                        let _ = tx.send(Ok(()));
                        sluice_admin::serve(listener, state).await;
                    }
                    Err(e) => {
                        let _ = tx.send(Err(format!("admin.bind: cannot bind {bind}: {e}")));
                    }
                }
            });
        })
        .map_err(|e| format!("admin thread: {e}"))?;
    rx.recv().map_err(|_| "admin thread exited".to_string())?
}
