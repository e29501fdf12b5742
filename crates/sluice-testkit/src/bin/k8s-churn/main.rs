//! `k8s-churn`: the driver of `scripts/scenario/k8s-churn.sh` (issue 12): Kubernetes
//! churn against a real API server while traffic runs through sluice.
//!
//! ```text
//! k8s-churn --kubeconfig PATH --origin-port N --dns-file PATH --handoff PATH
//!           --results PATH [--pairs 1000] [--duration 60] [--rate 10]
//!           [--namespace churn] [--traffic-conns 4] [--traffic-rps 200]
//!           [--baseline 10] [--probe-deadline 30] [--clk-tck 100]
//! ```
//!
//! 1. Starts a [`TestDns`] (every Service's `externalName`, `svc<i>.origin.churn.example`,
//!    is set to 127.0.0.1 before the Service is created), creates the namespace, the
//!    IngressClass `sluice` and `--pairs` Ingress + `ExternalName` Service pairs (host
//!    `app<i>.churn.example`, plain HTTP to the origin on 127.0.0.1:`--origin-port`),
//!    then writes `dns=<addr>` to `--dns-file`: the script starts sluice with that name
//!    server.
//! 2. Waits for `--handoff` (written by the script once sluice answers `/readyz`):
//!    `pid=`, `listen=`, `admin=` and `started_ms=` (epoch ms of the spawn) lines. Then
//!    waits until every pair's host answers 200 through sluice.
//! 3. Traffic: `--traffic-conns` keep-alive connections, together `--traffic-rps`
//!    requests a second, each to a random host among those serving. Any answer but a
//!    200, or a request that fails on the wire, is a failed request. For `--baseline`
//!    seconds the traffic runs alone (sluice's CPU under the traffic without churn).
//! 4. Churn: `--duration` seconds at `--rate` changes a second, alternately a new
//!    Ingress + Service pair (a new host) and a label patch (alternately on a Service
//!    and an Ingress of the first pairs: no config change). Each change is issued on
//!    its own task at its slot, so a slow API call does not slow the rate. For a new
//!    pair, the event is the Ingress's create call returning (the object is stored);
//!    its host is then polled every 10 ms on a keep-alive connection until it answers
//!    200: the event → serving latency (404s before that are expected, any other
//!    answer is recorded). A host that serves joins the traffic.
//! 5. After the last change has served (or its probe gave up after
//!    `--probe-deadline`), 2 s more for the last patches' translations (debounce, at
//!    most 4 × 100 ms), then the traffic stops and the figures are read: the metrics'
//!    deltas over the churn, sluice's CPU (`/proc/<pid>/stat` utime + stime) over the
//!    same window, its RSS (sampled every second) and VmHWM.
//!
//! It prints a report and writes the figures as `KEY=value` lines to `--results` (the
//! script sources them and judges the goals). Exit status 0 unless the run itself
//! could not happen (API errors, sluice never serving the pairs).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use bytes::Bytes;
use futures_util::{stream, StreamExt};
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::{Namespace, Service};
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use kube::api::{Api, Patch, PatchParams, PostParams};
use parking_lot::{Mutex, RwLock};
use serde_json::{json, Value};
use sluice_testkit::TestDns;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::net::TcpStream;
use tokio::time::Instant;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

mod measure;
mod traffic;
use measure::*;
use traffic::*;

const USAGE: &str = "usage: k8s-churn --kubeconfig PATH --origin-port N --dns-file PATH \
--handoff PATH --results PATH [--pairs 1000] [--duration 60] [--rate 10] [--namespace churn] \
[--traffic-conns 4] [--traffic-rps 200] [--baseline 10] [--probe-deadline 30] [--clk-tck 100]";
/// Concurrent API calls while creating the initial pairs.
const CREATE_CONCURRENCY: usize = 16;
/// DNS answers' TTL: longer than the run, so re-resolution is not part of it.
const DNS_TTL: u32 = 600;
/// How long sluice may take to serve the initial pairs once ready.
const SYNC_DEADLINE: Duration = Duration::from_secs(300);
/// How long the script may take to start sluice and hand it over.
const HANDOFF_DEADLINE: Duration = Duration::from_secs(120);
/// How often a new host is polled until it serves.
const PROBE_EVERY: Duration = Duration::from_millis(10);
/// Any one request through sluice, connect to last body byte.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// After the last change: the debounce holds a translation at most 4 × 100 ms.
const SETTLE: Duration = Duration::from_secs(2);

struct Args {
    kubeconfig: PathBuf,
    origin_port: u16,
    dns_file: PathBuf,
    handoff: PathBuf,
    results: PathBuf,
    pairs: usize,
    duration: f64,
    rate: f64,
    namespace: String,
    traffic_conns: usize,
    traffic_rps: f64,
    baseline: f64,
    probe_deadline: Duration,
    clk_tck: f64,
}

fn parse_args() -> Result<Args, BoxError> {
    let mut flags: BTreeMap<String, String> = BTreeMap::new();
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "-h" || flag == "--help" {
            println!("{USAGE}");
            std::process::exit(0);
        }
        let name = flag
            .strip_prefix("--")
            .ok_or_else(|| format!("unexpected argument {flag:?}\n{USAGE}"))?;
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        flags.insert(name.to_string(), value);
    }
    let mut take = |name: &str, default: Option<&str>| -> Result<String, BoxError> {
        flags
            .remove(name)
            .or(default.map(str::to_string))
            .ok_or_else(|| format!("--{name} is required\n{USAGE}").into())
    };
    fn num<T: std::str::FromStr>(name: &str, v: String) -> Result<T, BoxError>
    where
        T::Err: std::fmt::Display,
    {
        v.parse()
            .map_err(|e| format!("bad --{name} {v:?}: {e}").into())
    }
    let args = Args {
        kubeconfig: take("kubeconfig", None)?.into(),
        origin_port: num("origin-port", take("origin-port", None)?)?,
        dns_file: take("dns-file", None)?.into(),
        handoff: take("handoff", None)?.into(),
        results: take("results", None)?.into(),
        pairs: num("pairs", take("pairs", Some("1000"))?)?,
        duration: num("duration", take("duration", Some("60"))?)?,
        rate: num("rate", take("rate", Some("10"))?)?,
        namespace: take("namespace", Some("churn"))?,
        traffic_conns: num("traffic-conns", take("traffic-conns", Some("4"))?)?,
        traffic_rps: num("traffic-rps", take("traffic-rps", Some("200"))?)?,
        baseline: num("baseline", take("baseline", Some("10"))?)?,
        probe_deadline: Duration::from_secs_f64(num(
            "probe-deadline",
            take("probe-deadline", Some("30"))?,
        )?),
        clk_tck: num("clk-tck", take("clk-tck", Some("100"))?)?,
    };
    if let Some(name) = flags.keys().next() {
        return Err(format!("unknown flag --{name}\n{USAGE}").into());
    }
    if args.pairs == 0 || args.rate <= 0.0 || args.duration <= 0.0 || args.traffic_conns == 0 {
        return Err("--pairs, --rate, --duration and --traffic-conns must be positive".into());
    }
    if args.traffic_rps <= 0.0 {
        return Err("--traffic-rps must be positive".into());
    }
    Ok(args)
}

// ---------------------------------------------------------------------------------------
// The objects
// ---------------------------------------------------------------------------------------

fn host(i: usize) -> String {
    format!("app{i}.churn.example")
}

fn dns_name(i: usize) -> String {
    format!("svc{i}.origin.churn.example")
}

fn service(ns: &str, i: usize, port: u16) -> Result<Service, BoxError> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": format!("svc{i}"), "namespace": ns},
        "spec": {"type": "ExternalName", "externalName": dns_name(i),
                 "ports": [{"name": "http", "protocol": "TCP", "port": port, "targetPort": port}]}
    }))?)
}

fn ingress(ns: &str, i: usize, port: u16) -> Result<Ingress, BoxError> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": format!("app{i}"), "namespace": ns,
                     "annotations": {"sluice.dev/backend-protocol": "http"}},
        "spec": {"ingressClassName": "sluice", "rules": [{"host": host(i), "http": {"paths": [
            {"path": "/", "pathType": "Prefix",
             "backend": {"service": {"name": format!("svc{i}"), "port": {"number": port}}}}
        ]}}]}
    }))?)
}

#[derive(Clone)]
struct Kube {
    services: Api<Service>,
    ingresses: Api<Ingress>,
    dns: Arc<TestDns>,
    ns: String,
    port: u16,
}

impl Kube {
    /// The DNS name, then the Service, then the Ingress; returns when the Ingress is
    /// stored (the event).
    async fn create_pair(&self, i: usize) -> Result<Instant, BoxError> {
        self.dns
            .set(&dns_name(i), &[IpAddr::V4(Ipv4Addr::LOCALHOST)], DNS_TTL);
        let pp = PostParams::default();
        self.services
            .create(&pp, &service(&self.ns, i, self.port)?)
            .await
            .map_err(|e| format!("create Service svc{i}: {e}"))?;
        self.ingresses
            .create(&pp, &ingress(&self.ns, i, self.port)?)
            .await
            .map_err(|e| format!("create Ingress app{i}: {e}"))?;
        Ok(Instant::now())
    }

    /// A label that means nothing to sluice, on Service `svc<i>` or Ingress `app<i>`.
    async fn touch(&self, i: usize, on_service: bool, value: usize) -> Result<(), BoxError> {
        let patch = json!({"metadata": {"labels": {"churn-touch": value.to_string()}}});
        let (pp, patch) = (PatchParams::default(), Patch::Merge(&patch));
        if on_service {
            self.services
                .patch(&format!("svc{i}"), &pp, &patch)
                .await
                .map_err(|e| format!("patch Service svc{i}: {e}"))?;
        } else {
            self.ingresses
                .patch(&format!("app{i}"), &pp, &patch)
                .await
                .map_err(|e| format!("patch Ingress app{i}: {e}"))?;
        }
        Ok(())
    }
}

async fn kube_client(kubeconfig: &Path) -> Result<kube::Client, BoxError> {
    let kc = kube::config::Kubeconfig::read_from(kubeconfig)?;
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?;
    Ok(kube::Client::try_from(config)?)
}

struct Handoff {
    pid: u32,
    listen: SocketAddr,
    admin: SocketAddr,
    started_ms: u64,
}

async fn wait_handoff(path: &Path) -> Result<Handoff, BoxError> {
    let deadline = Instant::now() + HANDOFF_DEADLINE;
    let text = loop {
        if let Ok(t) = std::fs::read_to_string(path) {
            break t;
        }
        if Instant::now() > deadline {
            return Err(format!("no {} within {HANDOFF_DEADLINE:?}", path.display()).into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let kv: BTreeMap<&str, &str> = text.lines().filter_map(|l| l.split_once('=')).collect();
    let get = |k: &str| kv.get(k).copied().ok_or(format!("handoff: no {k}="));
    Ok(Handoff {
        pid: get("pid")?.parse()?,
        listen: get("listen")?.parse()?,
        admin: get("admin")?.parse()?,
        started_ms: get("started_ms")?.parse()?,
    })
}

// ---------------------------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------------------------

enum Change {
    Created { api: Duration, probe: Probe },
    Touched { api: Duration },
    Failed(String),
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), BoxError> {
    let args = parse_args()?;
    let mut results = String::new();
    let mut put = |k: &str, v: &dyn std::fmt::Display| {
        let _ = writeln!(results, "{k}={v}");
    };

    // ---- the objects, before sluice starts ----------------------------------------
    let dns = Arc::new(TestDns::start().await);
    let client = kube_client(&args.kubeconfig).await?;
    let ns = args.namespace.clone();
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": ns}}))?,
        )
        .await?;
    let classes: Api<IngressClass> = Api::all(client.clone());
    let class: Value = json!({"metadata": {"name": "sluice"},
                              "spec": {"controller": "sluice.dev/ingress-controller"}});
    classes
        .create(&PostParams::default(), &serde_json::from_value(class)?)
        .await?;
    let kube = Kube {
        services: Api::namespaced(client.clone(), &ns),
        ingresses: Api::namespaced(client.clone(), &ns),
        dns: dns.clone(),
        ns: ns.clone(),
        port: args.origin_port,
    };
    let t = Instant::now();
    let created: Vec<Result<Instant, BoxError>> = stream::iter(0..args.pairs)
        .map(|i| {
            let kube = kube.clone();
            async move { kube.create_pair(i).await }
        })
        .buffer_unordered(CREATE_CONCURRENCY)
        .collect()
        .await;
    if let Some(Err(e)) = created.into_iter().find(Result::is_err) {
        return Err(format!("creating the initial pairs: {e}").into());
    }
    let create_secs = t.elapsed().as_secs_f64();
    println!(
        "   created {} Ingress + ExternalName Service pairs in {create_secs:.1}s ({:.0} objects/s)",
        args.pairs,
        2.0 * args.pairs as f64 / create_secs
    );
    put("CREATE_S", &format!("{create_secs:.1}"));
    let tmp = args.dns_file.with_extension("tmp");
    std::fs::write(&tmp, format!("dns={}\n", dns.addr()))?;
    std::fs::rename(&tmp, &args.dns_file)?;

    // ---- sluice serves them -----------------------------------------------------------
    let h = wait_handoff(&args.handoff).await?;
    let pid = h.pid;
    let mut hosts: Vec<String> = (0..args.pairs).map(host).collect();
    let ready_ms = epoch_ms().saturating_sub(h.started_ms);
    let left = wait_all_serving(h.listen, &hosts, Instant::now() + SYNC_DEADLINE).await;
    let sync_ms = epoch_ms().saturating_sub(h.started_ms);
    if left > 0 {
        return Err(format!(
            "{left} of {} hosts not serving {SYNC_DEADLINE:?} after /readyz",
            args.pairs
        )
        .into());
    }
    let sync_cpu = cpu_ticks(pid) as f64 / args.clk_tck;
    println!(
        "   sluice: /readyz {:.1}s after its start, all {} hosts serving after {:.1}s; CPU so far {sync_cpu:.2}s, RSS {} KiB",
        ready_ms as f64 / 1000.0,
        args.pairs,
        sync_ms as f64 / 1000.0,
        status_kib(pid, "VmRSS")
    );
    put("READY_S", &format!("{:.1}", ready_ms as f64 / 1000.0));
    put("SYNC_S", &format!("{:.1}", sync_ms as f64 / 1000.0));
    put("SYNC_CPU_S", &format!("{sync_cpu:.2}"));
    put("SYNC_RSS_KIB", &status_kib(pid, "VmRSS"));

    // ---- traffic alone --------------------------------------------------------------
    hosts.shrink_to_fit();
    let hosts = Arc::new(RwLock::new(hosts));
    let (mark, stop) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
    );
    let every = Duration::from_secs_f64(args.traffic_conns as f64 / args.traffic_rps);
    let load: Vec<_> = (0..args.traffic_conns)
        .map(|c| {
            tokio::spawn(traffic(
                h.listen,
                hosts.clone(),
                every,
                c as u64 + 1,
                mark.clone(),
                stop.clone(),
            ))
        })
        .collect();
    let (b0, b_ticks0) = (Instant::now(), cpu_ticks(pid));
    tokio::time::sleep(Duration::from_secs_f64(args.baseline)).await;
    let base_cpu = (cpu_ticks(pid) - b_ticks0) as f64 / args.clk_tck;
    let base_secs = b0.elapsed().as_secs_f64();

    // ---- churn ------------------------------------------------------------------------
    let before = counters(h.admin).await?;
    let rss_before = status_kib(pid, "VmRSS");
    let rss_peak = Arc::new(Mutex::new(rss_before));
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (rss_peak, sampling) = (rss_peak.clone(), sampling.clone());
        tokio::spawn(async move {
            while sampling.load(SeqCst) {
                let r = status_kib(pid, "VmRSS");
                {
                    let mut p = rss_peak.lock();
                    *p = (*p).max(r);
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        })
    };
    let total = (args.duration * args.rate).round() as usize;
    println!(
        "   churn: {total} changes over {}s ({} new pairs, {} label patches) under {} req/s on {} keep-alive connections",
        args.duration,
        total.div_ceil(2),
        total / 2,
        args.traffic_rps,
        args.traffic_conns
    );
    mark.store(true, SeqCst);
    let (t0, ticks0) = (Instant::now(), cpu_ticks(pid));
    let mut rng = Rng::seeded(0xc0ffee);
    let mut changes = Vec::with_capacity(total);
    let mut late_max = Duration::ZERO;
    for k in 0..total {
        let slot = t0 + Duration::from_secs_f64(k as f64 / args.rate);
        tokio::time::sleep_until(slot).await;
        late_max = late_max.max(Instant::now() - slot);
        let kube = kube.clone();
        if k % 2 == 0 {
            let i = args.pairs + k / 2;
            let (hosts, listen, deadline) = (hosts.clone(), h.listen, args.probe_deadline);
            changes.push(tokio::spawn(async move {
                let start = Instant::now();
                let event = match kube.create_pair(i).await {
                    Ok(e) => e,
                    Err(e) => return Change::Failed(e.to_string()),
                };
                let probe = probe(listen, &host(i), event, deadline).await;
                if probe.latency.is_some() {
                    hosts.write().push(host(i));
                }
                Change::Created {
                    api: event - start,
                    probe,
                }
            }));
        } else {
            let (target, on_service) = (rng.below(args.pairs), (k / 2) % 2 == 0);
            changes.push(tokio::spawn(async move {
                let start = Instant::now();
                match kube.touch(target, on_service, k).await {
                    Ok(()) => Change::Touched {
                        api: start.elapsed(),
                    },
                    Err(e) => Change::Failed(e.to_string()),
                }
            }));
        }
    }
    let issued_secs = t0.elapsed().as_secs_f64();
    let mut latencies = Vec::new();
    let (mut never, mut created_n, mut touched_n) = (0usize, 0usize, 0usize);
    let mut api_max = Duration::ZERO;
    let mut errors = Vec::new();
    let mut odd = Vec::new();
    for c in changes {
        match c.await {
            Ok(Change::Created { api, probe }) => {
                created_n += 1;
                api_max = api_max.max(api);
                match probe.latency {
                    Some(l) => latencies.push(l),
                    None => {
                        never += 1;
                        latencies.push(args.probe_deadline);
                    }
                }
                odd.extend(probe.odd);
            }
            Ok(Change::Touched { api }) => {
                touched_n += 1;
                api_max = api_max.max(api);
            }
            Ok(Change::Failed(e)) => errors.push(e),
            Err(e) => errors.push(format!("change task: {e}")),
        }
    }
    tokio::time::sleep(SETTLE).await;
    let window = t0.elapsed().as_secs_f64();
    let cpu = (cpu_ticks(pid) - ticks0) as f64 / args.clk_tck;
    let after = counters(h.admin).await?;
    stop.store(true, SeqCst);
    sampling.store(false, SeqCst);
    let _ = sampler.await;
    let (mut pre, mut during) = (Traffic::default(), Traffic::default());
    for l in load {
        let [a, b] = l.await?;
        pre.add(a);
        during.add(b);
    }
    let rss_final = status_kib(pid, "VmRSS");
    let rss_peak = (*rss_peak.lock()).max(rss_final);
    let hwm = status_kib(pid, "VmHWM");

    // ---- report -----------------------------------------------------------------------
    latencies.sort();
    let mut req = during.latencies.clone();
    req.extend(pre.latencies.iter().copied());
    req.sort();
    let (p50, p99, max) = (
        pct(&latencies, 0.50),
        pct(&latencies, 0.99),
        latencies.last().copied().unwrap_or_default(),
    );
    let d = |a: f64, b: f64| (a - b).round() as i64;
    let (applied, unchanged, rejected) = (
        d(after.applied, before.applied),
        d(after.unchanged, before.unchanged),
        d(after.rejected, before.rejected),
    );
    let (tr_changed, tr_same) = (d(after.changed, before.changed), d(after.same, before.same));
    let all_total = pre.total + during.total;
    let all_failed = pre.failed + during.failed;
    println!(
        "   changes issued in {issued_secs:.1}s (latest slot missed by {} ms); {created_n} pairs created, {touched_n} labels patched, {} API errors; slowest API call {} ms",
        ms(late_max),
        errors.len(),
        ms(api_max)
    );
    println!(
        "   event → serving ({} new hosts): p50 {} ms, p99 {} ms, max {} ms; never served within {:?}: {never}",
        latencies.len(),
        ms(p50),
        ms(p99),
        ms(max),
        args.probe_deadline
    );
    if !odd.is_empty() {
        println!(
            "   probes saw {} answers other than 404 before the 200, e.g. {:?}",
            odd.len(),
            &odd[..odd.len().min(3)]
        );
    }
    println!(
        "   over the churn window ({window:.1}s): reloads applied {applied}, unchanged {unchanged}, rejected {rejected}; kubernetes translations changed {tr_changed}, unchanged {tr_same}"
    );
    println!(
        "   traffic: {all_total} requests ({} in the {base_secs:.0}s baseline, {} during the churn), {all_failed} failed; latency p50 {} ms, p99 {} ms; {} connections opened",
        pre.total,
        during.total,
        ms(pct(&req, 0.50)),
        ms(pct(&req, 0.99)),
        during.connects
    );
    for s in pre.samples.iter().chain(&during.samples).take(10) {
        println!("     failed: {s}");
    }
    for e in errors.iter().take(5) {
        println!("     API error: {e}");
    }
    println!(
        "   sluice CPU: {cpu:.2}s over {window:.1}s ({:.1}% of a core) with churn; {base_cpu:.2}s over {base_secs:.1}s ({:.1}%) with the traffic alone",
        100.0 * cpu / window,
        100.0 * base_cpu / base_secs
    );
    println!(
        "   sluice RSS: {rss_before} KiB before the churn, peak {rss_peak} KiB (sampled every second), {rss_final} KiB at the end; VmHWM {hwm} KiB"
    );
    put("CHANGES", &(created_n + touched_n));
    put("CHANGES_PLANNED", &total);
    put("CREATES", &created_n);
    put("PATCHES", &touched_n);
    put("API_ERRORS", &errors.len());
    put("API_MAX_MS", &ms(api_max));
    put("LATE_MAX_MS", &ms(late_max));
    put("ISSUED_S", &format!("{issued_secs:.1}"));
    put("LAT_N", &latencies.len());
    put("LAT_P50_MS", &ms(p50));
    put("LAT_P99_MS", &ms(p99));
    put("LAT_MAX_MS", &ms(max));
    put("NEVER_SERVED", &never);
    put("PROBE_ODD", &odd.len());
    put("RELOADS_APPLIED", &applied);
    put("RELOADS_UNCHANGED", &unchanged);
    put("RELOADS_REJECTED", &rejected);
    put("TRANSLATIONS_CHANGED", &tr_changed);
    put("TRANSLATIONS_UNCHANGED", &tr_same);
    put("REQ_TOTAL", &all_total);
    put("REQ_CHURN", &during.total);
    put("REQ_FAILED", &all_failed);
    put("REQ_P50_MS", &ms(pct(&req, 0.50)));
    put("REQ_P99_MS", &ms(pct(&req, 0.99)));
    put("CONNECTS", &during.connects);
    put("WINDOW_S", &format!("{window:.1}"));
    put("CPU_S", &format!("{cpu:.2}"));
    put("CPU_PCT", &format!("{:.1}", 100.0 * cpu / window));
    put("BASE_S", &format!("{base_secs:.1}"));
    put("BASE_CPU_S", &format!("{base_cpu:.2}"));
    put(
        "BASE_CPU_PCT",
        &format!("{:.1}", 100.0 * base_cpu / base_secs),
    );
    put("RSS_BEFORE_KIB", &rss_before);
    put("RSS_PEAK_KIB", &rss_peak);
    put("RSS_FINAL_KIB", &rss_final);
    put("HWM_KIB", &hwm);
    std::fs::write(&args.results, results)?;
    Ok(())
}
