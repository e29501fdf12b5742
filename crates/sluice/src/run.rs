//! `sluice run`: load the config, bind everything, serve; reload on SIGHUP (and
//! `POST /reload`, and file changes with `config.watch`); drain on SIGTERM/SIGINT.

use crate::control::ProcessControl;
use crate::listeners::Listeners;
use crate::logging;
use crate::reload::{Reloader, Trigger};
use crate::reload_metrics::ReloadMetrics;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use sluice_admin::AdminState;
use sluice_config::{BindAddr, Config, ConfigError};
use sluice_proxy::{Metrics, Proxy};
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

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
    let registry = sluice_proxy::Registry::new(Metrics::register(&mut Registry::default()));
    sluice_proxy::compile(&config, &registry, None, &origin)?;
    crate::tls_load::load(&config, &origin)?;
    Ok(config)
}

/// Threads for blocking work: reading and compiling a reloaded config, hashing the
/// watched file. Reloads run one at a time, so one is enough; each extra thread would
/// also get a malloc arena of its own (memory that is never given back).
const BLOCKING_THREADS: usize = 1;

pub fn run(path: &Path, kubernetes: bool) -> ExitCode {
    let config = match load(path) {
        Ok(mut c) => {
            if kubernetes && c.sources.kubernetes.is_none() {
                c.sources.kubernetes = Some(Default::default());
            }
            c
        }
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    logging::init(&config.log);
    let chosen = crate::host::workers(config.runtime.workers);
    let workers = chosen.count;
    let runtime = if workers == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .max_blocking_threads(BLOCKING_THREADS)
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .enable_all()
            .max_blocking_threads(BLOCKING_THREADS)
            .build()
    };
    let runtime = match runtime {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(config, path, chosen)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: Config, path: &Path, workers: crate::host::Workers) -> Result<(), String> {
    // Before anything is bound: a SIGTERM from here on drains instead of killing us.
    let mut signals = Signals::install()?;
    let mut registry = Registry::default();
    let metrics = Metrics::register(&mut registry);
    let info =
        prometheus_client::metrics::family::Family::<Vec<(String, String)>, Gauge>::default();
    info.get_or_create(&vec![("version".into(), env!("CARGO_PKG_VERSION").into())])
        .set(1);
    registry.register("sluice_build_info", "sluice version", info);
    let reload_metrics = ReloadMetrics::register(&mut registry);
    let host_metrics = crate::host::metrics::HostMetrics::register(&mut registry);
    let shared = Arc::new(sluice_proxy::Registry::new(metrics));
    let runtime = sluice_proxy::compile(&config, &shared, None, &path.display().to_string())
        .map_err(|e| e.to_string())?;
    let proxy = Arc::new(Proxy::new(runtime, shared));
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
    let tasks = sample_tasks(reload_metrics.tasks.clone());

    let tls =
        crate::tls_load::load(&config, &path.display().to_string()).map_err(|e| e.to_string())?;
    tls.publish(proxy.metrics());
    let listeners = Listeners::new(&config);
    let bound = listeners.bind_new(&config, &tls)?;
    let reloader = Arc::new(Reloader::new(
        path.to_path_buf(),
        config.clone(),
        tls.clone(),
        proxy.clone(),
        listeners,
        reload_metrics,
    ));

    let host = crate::host_sampler::start(host_metrics, reloader.clone());
    let ready = Arc::new(AtomicBool::new(false));
    let overloaded = Arc::new(AtomicBool::new(false));
    let overload = crate::overload::start(
        proxy.metrics().client_connections_shed.clone(),
        config.limits.unready_after.get(),
        overloaded.clone(),
    );
    if let Some(admin) = &config.admin {
        start_admin(
            &admin.bind,
            AdminState {
                registry: Arc::new(registry),
                ready: ready.clone(),
                overloaded,
                control: Some(Arc::new(ProcessControl {
                    reloader: reloader.clone(),
                    main: tokio::runtime::Handle::current(),
                    process: serde_json::json!({
                        "workers": workers.count,
                        "workers_from": workers.source,
                    }),
                })),
            },
        )?;
    }
    reloader.listeners().lock().await.commit(
        &config,
        &tls,
        bound,
        &proxy,
        config.shutdown.drain_timeout.get(),
    );
    let watcher = crate::watching::start(&reloader, &config, path);
    let cert_watch = crate::cert_watch::start(&reloader, config.config.watch_debounce.get());
    let kube = match config.sources.kubernetes.clone() {
        // Ready once the first full sync from the API server is serving.
        Some(settings) => Some(crate::kubernetes::start(
            settings,
            reloader.clone(),
            ready.clone(),
        )),
        None => {
            ready.store(true, Ordering::Relaxed);
            None
        }
    };
    tracing::info!(version = env!("CARGO_PKG_VERSION"), workers = workers.count, workers_from = %workers.source, config = %path.display(), "sluice started");

    let signal = loop {
        match signals.wait().await {
            "SIGHUP" => {
                let r = reloader.clone();
                // In its own task: a slow reload never delays the next signal.
                tokio::spawn(async move { r.reload(Trigger::Sighup).await });
            }
            other => break other,
        }
    };
    let drain = reloader.drain_timeout().await;
    tracing::info!(signal, drain_timeout = ?drain, "shutting down: closing listeners, draining in-flight requests");
    ready.store(false, Ordering::Relaxed);
    drop(watcher);
    drop(cert_watch);
    if let Some(k) = kube {
        k.abort();
    }
    let drains = reloader.listeners().lock().await.shutdown().await;
    // Every connection saw the stop signal itself; this only waits for them to end.
    let all = futures_util::future::join_all(drains.into_iter().map(|d| d.wait()));
    tokio::pin!(all);
    match tokio::time::timeout(drain, &mut all).await {
        Ok(_) => tracing::info!("drained; exiting"),
        Err(_) => {
            tracing::warn!(drain_timeout = ?drain, "drain timeout reached; closing remaining connections");
            // Tunnels (WebSockets) never finish on their own: they are closed now, each
            // side getting its end, and given a moment to send it.
            proxy.close_tunnels();
            let _ = tokio::time::timeout(TUNNEL_CLOSE_GRACE, &mut all).await;
        }
    }
    reaper.abort();
    tasks.abort();
    host.abort();
    if let Some(o) = overload {
        o.abort();
    }
    proxy.pools().h1.clear();
    proxy.pools().h2.clear();
    Ok(())
}

/// How long closed tunnels get to pass their ends on before the process exits.
const TUNNEL_CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Samples the runtime's live task count into `gauge` every second.
fn sample_tasks(gauge: Gauge) -> tokio::task::JoinHandle<()> {
    let handle = tokio::runtime::Handle::current();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            gauge.set(handle.metrics().num_alive_tasks() as i64);
        }
    })
}

/// SIGTERM and SIGINT ("drain and exit"), SIGHUP ("reload the config").
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> Result<Self, String> {
        use tokio::signal::unix::{signal, SignalKind};
        let term = signal(SignalKind::terminate())
            .map_err(|e| format!("cannot install SIGTERM handler: {e}"))?;
        let int = signal(SignalKind::interrupt())
            .map_err(|e| format!("cannot install SIGINT handler: {e}"))?;
        let hup = signal(SignalKind::hangup())
            .map_err(|e| format!("cannot install SIGHUP handler: {e}"))?;
        Ok(Self { term, int, hup })
    }

    async fn wait(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
            _ = self.hup.recv() => "SIGHUP",
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
