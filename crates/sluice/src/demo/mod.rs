//! `sluice demo`: the point of sluice in a minute, offline. An HTTPS origin with a
//! certificate made at start, sluice in front of it (this binary, `sluice run`, as a
//! child process), and a client that opens a new connection per call the way PHP
//! does. It prints the latency of calls straight to the origin and through sluice,
//! how many connections the origin saw, and keeps sluice running until Ctrl-C.

mod client;
mod origin;

use std::io::BufRead;
use std::net::SocketAddr;
use std::process::{ExitCode, Stdio};
use std::time::Duration;

/// How long sluice gets to report its listeners.
const START_TIMEOUT: Duration = Duration::from_secs(15);

pub fn run(calls: usize, exit_after: Option<Duration>) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(demo(calls.max(1), exit_after)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn demo(calls: usize, exit_after: Option<Duration>) -> Result<(), String> {
    let origin = origin::Origin::start().await?;
    let dir = private_dir()?;
    let ca = dir.join("demo-ca.pem");
    std::fs::write(&ca, &origin.ca_pem).map_err(|e| format!("{}: {e}", ca.display()))?;
    let config = dir.join("sluice.yaml");
    let yaml = format!(
        r#"# Written by `sluice demo`: the origin's address and CA change at every start.
log: {{format: json, access_log: false}}
admin: {{bind: "127.0.0.1:0"}}
listeners: [{{name: demo, bind: "127.0.0.1:0"}}]
routes: [{{host: "*", backend: origin}}]
backends:
  - name: origin
    servers: ["{addr}"]
    tls: {{sni: {name}, ca_file: "{ca}"}}
"#,
        addr = origin.addr,
        name = origin::NAME,
        ca = ca.display()
    );
    std::fs::write(&config, yaml).map_err(|e| format!("{}: {e}", config.display()))?;
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this binary: {e}"))?;
    let mut child = std::process::Command::new(exe)
        .args(["run", "--config"])
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start sluice: {e}"))?;
    let started = listening(&mut child).await;
    let (proxy, admin) = match started {
        Ok(a) => a,
        Err(e) => {
            let _ = child.kill();
            return Err(e);
        }
    };
    let result = measure(&origin, proxy, calls).await;
    if result.is_ok() {
        println!(
            "\nsluice keeps running: try  curl -H 'Host: {}' http://{proxy}/",
            origin::NAME
        );
        println!("  metrics  http://{admin}/metrics    pools  http://{admin}/pools");
        println!("Ctrl-C stops it.");
        match exit_after {
            Some(d) => tokio::time::sleep(d).await,
            None => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// A new 0700 directory under the temp dir. Created, never reused: a name someone
/// else made first (a directory or a symlink planted in a shared /tmp) fails the
/// attempt, and another name is tried.
fn private_dir() -> Result<std::path::PathBuf, String> {
    use std::os::unix::fs::DirBuilderExt;
    let base = std::env::temp_dir();
    let mut last = String::new();
    for attempt in 0..16u32 {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir = base.join(format!(
            "sluice-demo-{}-{nanos:08x}{attempt}",
            std::process::id()
        ));
        match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) => last = format!("{}: {e}", dir.display()),
        }
    }
    Err(last)
}

/// The addresses of sluice's `demo` listener and admin listener, from its JSON log.
async fn listening(child: &mut std::process::Child) -> Result<(SocketAddr, SocketAddr), String> {
    let stderr = child.stderr.take().ok_or("sluice has no stderr")?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    // A plain thread reads the log: it drains the pipe for as long as sluice runs.
    std::thread::spawn(move || {
        let (mut proxy, mut admin, mut tx) = (None, None, Some(tx));
        let mut seen = Vec::new();
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if tx.is_none() {
                continue;
            }
            let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
            let addr = || v["fields"]["addr"].as_str()?.parse::<SocketAddr>().ok();
            match v["fields"]["message"].as_str() {
                Some("listening") if v["fields"]["listener"] == "demo" => proxy = addr(),
                Some("admin listening") => admin = addr(),
                _ => seen.push(line),
            }
            if let (Some(p), Some(a)) = (proxy, admin) {
                if let Some(tx) = tx.take() {
                    let _ = tx.send(Ok((p, a)));
                }
            }
        }
        if let Some(tx) = tx.take() {
            let _ = tx.send(Err(format!("sluice exited: {}", seen.join("\n"))));
        }
    });
    match tokio::time::timeout(START_TIMEOUT, rx).await {
        Ok(Ok(r)) => r,
        Ok(Err(_)) => Err("sluice's log ended".into()),
        Err(_) => Err(format!("sluice did not start within {START_TIMEOUT:?}")),
    }
}

async fn measure(origin: &origin::Origin, proxy: SocketAddr, calls: usize) -> Result<(), String> {
    let tls = client::tls_config(&origin.ca_der)?;
    println!(
        "sluice demo: {calls} calls, each on a new connection (like PHP with a fresh curl handle)"
    );
    println!(
        "  origin  https://{}  ({}; certificate made at start)",
        origin.addr,
        origin::NAME
    );
    println!("  sluice  http://{proxy}  (pooling to the origin over TLS)\n");
    let before = origin.accepted();
    let mut direct = Vec::with_capacity(calls);
    for _ in 0..calls {
        direct.push(client::direct(origin.addr, origin::NAME, &tls).await?);
    }
    let direct_conns = origin.accepted() - before;
    let before = origin.accepted();
    let mut pooled = Vec::with_capacity(calls);
    for _ in 0..calls {
        pooled.push(client::via(proxy, origin::NAME).await?);
    }
    let pooled_conns = origin.accepted() - before;
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let (d50, d99) = (
        client::quantile(&mut direct, 0.5),
        client::quantile(&mut direct, 0.99),
    );
    let (p50, p99) = (
        client::quantile(&mut pooled, 0.5),
        client::quantile(&mut pooled, 0.99),
    );
    println!("                      p50 latency  p99 latency  connections to the origin  calls per connection");
    println!(
        "  direct (TLS/call)   {:>8.2} ms  {:>8.2} ms  {:>25}  {:>20.1}",
        ms(d50),
        ms(d99),
        direct_conns,
        calls as f64 / direct_conns.max(1) as f64
    );
    println!(
        "  through sluice      {:>8.2} ms  {:>8.2} ms  {:>25}  {:>20.1}",
        ms(p50),
        ms(p99),
        pooled_conns,
        calls as f64 / pooled_conns.max(1) as f64
    );
    let plural = |n: u64| if n == 1 { "" } else { "s" };
    println!(
        "\n  {:.1}x faster at the median; {pooled_conns} TLS handshake{} instead of {direct_conns}.",
        ms(d50) / ms(p50).max(1e-6),
        plural(pooled_conns),
    );
    Ok(())
}
