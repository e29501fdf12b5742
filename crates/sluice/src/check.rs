//! `sluice check`: validate a config like `nginx -t`; with `--diff OLD`, show what a
//! reload from OLD would change.

use crate::run;
use sluice_config::{Config, PoolChanges};
use std::collections::BTreeSet;
use std::path::Path;
use std::process::ExitCode;

pub fn run(config: &Path, old: Option<&Path>) -> ExitCode {
    let new = match run::load(config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    match crate::tls_load::load(&new, &config.display().to_string())
        .map_err(|e| e.to_string())
        .and_then(|tls| crate::check_tls::report(&new, &tls))
    {
        Ok(()) => {}
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "{}: ok ({} listeners, {} routes, {} backends)",
        config.display(),
        new.listeners.len(),
        new.routes.len(),
        new.backends.len()
    );
    let Some(old_path) = old else {
        return ExitCode::SUCCESS;
    };
    let old = match run::load(old_path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: the old config is not valid either: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut diff = sluice_config::diff(&old, &new);
    if diff.is_empty() {
        println!("no change (same canonical config)");
        return ExitCode::SUCCESS;
    }
    match (pool_keys(&old, old_path), pool_keys(&new, config)) {
        (Ok(a), Ok(b)) => {
            diff.pools = Some(PoolChanges {
                kept: a.intersection(&b).count(),
                added: b.difference(&a).count(),
                removed: a.difference(&b).count(),
            })
        }
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    }
    println!("{diff}");
    ExitCode::SUCCESS
}

/// The pool keys of the servers a config names (servers behind DNS names are not
/// resolved here: their pools count once their addresses are known).
fn pool_keys(config: &Config, path: &Path) -> Result<BTreeSet<String>, String> {
    let registry = sluice_proxy::Registry::new(sluice_proxy::Metrics::register(
        &mut prometheus_client::registry::Registry::default(),
    ));
    let config = sluice_config::canonical(config);
    sluice_proxy::compile(&config, &registry, None, &path.display().to_string())
        .map(|rt| rt.pool_keys())
        .map_err(|e| e.to_string())
}
