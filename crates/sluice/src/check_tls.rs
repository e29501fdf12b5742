//! What `sluice check` says about listener certificates beyond "they load": each
//! one's names and expiry, whether its chain is in order, names no certificate will
//! ever serve, and those that expire within [`EXPIRY_WARNING`].

use crate::tls_load::{LoadedTls, EXPIRY_WARNING};
use sluice_config::Config;
use std::collections::BTreeMap;
use std::time::SystemTime;

/// Prints a line per certificate and the warnings; an error for a broken chain.
pub fn report(config: &Config, tls: &LoadedTls) -> Result<(), String> {
    let now = SystemTime::now();
    for (i, l) in config.listeners.iter().enumerate() {
        let Some(t) = tls.get(&l.name) else { continue };
        let mut claimed: BTreeMap<&str, &str> = BTreeMap::new();
        for (j, c) in t.server.certs.iter().enumerate() {
            let at = format!("listeners[{i}].tls.certificates[{j}]");
            sluice_net::verify_chain(&c.chain)
                .map_err(|e| format!("{at}: {}: {e}", c.cert_file))?;
            let names = if c.info.dns_names.is_empty() {
                "no DNS names".to_string()
            } else {
                c.info.dns_names.join(", ")
            };
            let days = c.info.remaining(now).as_secs() / 86_400;
            let expiry = humantime::format_rfc3339_seconds(c.info.not_after);
            println!(
                "{at}: {} ({names}; {} certificate(s) in the chain; expires {expiry}, in {days} days{})",
                c.cert_file,
                c.chain.len(),
                if c.is_default { "; default" } else { "" }
            );
            if c.info.expired(now) {
                println!(
                    "warning: {at}: {} has EXPIRED; clients will refuse it",
                    c.cert_file
                );
            } else if c.info.remaining(now) < EXPIRY_WARNING {
                println!("warning: {at}: {} expires in {days} days", c.cert_file);
            }
            if c.info.dns_names.is_empty() && !c.is_default {
                println!(
                    "warning: {at}: {} has no DNS names: SNI never selects it (make it the default)",
                    c.cert_file
                );
            }
            for n in &c.info.dns_names {
                if let Some(first) = claimed.get(n.as_str()) {
                    println!("warning: {at}: {n} is already served by {first}; this certificate never is for it");
                } else {
                    claimed.insert(n, &c.cert_file);
                }
            }
        }
    }
    Ok(())
}
