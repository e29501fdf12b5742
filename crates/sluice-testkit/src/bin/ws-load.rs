//! WebSocket load for the tunnel soak: opens `--conns` WebSockets through `--target`
//! (sluice's or NGINX's listener, `Host: --host`), reports `open N` once all are up,
//! holds them idle for `--idle-secs` (reports `idle done`), then has every one echo
//! a message each `--interval-ms` for `--secs` seconds, and closes them. Every echo
//! is checked; a connection that ends early or an echo that is wrong or late counts
//! as dropped. The last line is a JSON summary.
//!
//!   ws-load --target 127.0.0.1:8080 --host ws.test --conns 1000 --idle-secs 5 --secs 60

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sluice_testkit::WsClient;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

#[derive(Default)]
struct Counts {
    opened: AtomicU64,
    failed_open: AtomicU64,
    echoes: AtomicU64,
    dropped: AtomicU64,
}

fn arg(args: &[String], name: &str, default: &str) -> String {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
        .unwrap_or_else(|| default.to_string())
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let target: SocketAddr = arg(&args, "--target", "127.0.0.1:8080")
        .parse()
        .expect("--target ip:port");
    let host = arg(&args, "--host", "ws.test");
    let conns: usize = arg(&args, "--conns", "1000").parse().expect("--conns");
    let idle = Duration::from_secs(arg(&args, "--idle-secs", "5").parse().expect("--idle-secs"));
    let secs = Duration::from_secs(arg(&args, "--secs", "60").parse().expect("--secs"));
    let every = Duration::from_millis(
        arg(&args, "--interval-ms", "1000")
            .parse()
            .expect("--interval-ms"),
    );
    let counts = Arc::new(Counts::default());
    // Opened in batches, so the listen backlog never overflows.
    let mut clients = Vec::with_capacity(conns);
    for chunk in 0..conns.div_ceil(100) {
        let batch = (chunk * 100..conns.min(chunk * 100 + 100)).map(|i| {
            let host = host.clone();
            async move {
                (
                    i,
                    WsClient::try_connect(target, &host, &format!("/soak/{i}")).await,
                )
            }
        });
        for (i, c) in futures_util::future::join_all(batch).await {
            match c {
                Ok(c) => {
                    counts.opened.fetch_add(1, Ordering::Relaxed);
                    clients.push((i, c));
                }
                Err(e) => {
                    counts.failed_open.fetch_add(1, Ordering::Relaxed);
                    eprintln!("ws-load: connection {i} failed to open: {e}");
                }
            }
        }
    }
    println!("open {}", clients.len());
    tokio::time::sleep(idle).await;
    println!("idle done");
    let until = Instant::now() + secs;
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|(i, mut c)| {
            let counts = counts.clone();
            tokio::spawn(async move {
                // Spread the connections over the interval.
                let offset = every.mul_f64((i % 100) as f64 / 100.0);
                tokio::time::sleep(offset).await;
                let mut tick = tokio::time::interval(every);
                let mut n = 0u64;
                while Instant::now() < until {
                    tick.tick().await;
                    let msg = format!("{i}:{n}");
                    match c.try_echo(&msg, Duration::from_secs(10)).await {
                        Ok(()) => counts.echoes.fetch_add(1, Ordering::Relaxed),
                        Err(e) => {
                            eprintln!("ws-load: connection {i} dropped after {n} echoes: {e}");
                            counts.dropped.fetch_add(1, Ordering::Relaxed);
                            return;
                        }
                    };
                    n += 1;
                }
                c.close().await;
            })
        })
        .collect();
    for t in tasks {
        let _ = t.await;
    }
    println!(
        "{{\"opened\":{},\"failed_open\":{},\"echoes\":{},\"dropped\":{}}}",
        counts.opened.load(Ordering::Relaxed),
        counts.failed_open.load(Ordering::Relaxed),
        counts.echoes.load(Ordering::Relaxed),
        counts.dropped.load(Ordering::Relaxed)
    );
}
