//! `sluice doctor`: how close this host is to running out of ports towards each
//! destination, from the kernel's own figures, and what to change, most effective
//! first. The arithmetic every port-exhaustion post-mortem redoes by hand:
//! a destination `ip:port` can hold at most as many connections as there are local
//! ports, and each closed one keeps its port in TIME_WAIT for 60 s, so new
//! connections per second to one destination top out at local ports ÷ 60.

use crate::host::facts::{self, Facts};
use crate::host::sockets::{self, Held};
use serde::Serialize;
use std::net::{SocketAddr, ToSocketAddrs};
use std::process::ExitCode;

/// Linux keeps a closed connection in TIME_WAIT this long (`TCP_TIMEWAIT_LEN`, not a
/// sysctl: `tcp_fin_timeout` is FIN_WAIT_2's).
const TIME_WAIT_SECS: f64 = 60.0;
/// What a cloud NAT gateway allows per destination ip:port (AWS's documented 55,000).
const NAT_PER_DESTINATION: u64 = 55_000;
/// Destinations listed when none is asked for.
const TOP: usize = 10;

#[derive(Serialize)]
struct Report {
    host: Facts,
    /// New connections per second one destination can take, at most (local ports /
    /// 60 s of TIME_WAIT).
    new_connections_per_second_per_destination: f64,
    nat_gateway_connections_per_destination: u64,
    outgoing: Held,
    destinations: Vec<Destination>,
    advice: Vec<Advice>,
}

#[derive(Serialize)]
struct Destination {
    destination: SocketAddr,
    established: u64,
    time_wait: u64,
    ports_in_use: u64,
    ports_free: u64,
    /// Share of the local ports this destination holds (0-1).
    pressure: f64,
}

#[derive(Serialize)]
struct Advice {
    rank: usize,
    change: String,
    why: String,
}

pub fn run(json: bool, destinations: &[String]) -> ExitCode {
    let mut wanted = Vec::new();
    for d in destinations {
        match d.to_socket_addrs() {
            Ok(addrs) => wanted.extend(addrs),
            Err(e) => {
                eprintln!("error: --destination {d}: {e} (expected host:port)");
                return ExitCode::FAILURE;
            }
        }
    }
    let report = report(facts::read(), &sockets::all(), &wanted);
    if json {
        match serde_json::to_string_pretty(&report) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        print!("{}", text(&report));
    }
    ExitCode::SUCCESS
}

fn report(host: Facts, socks: &[sockets::Socket], wanted: &[SocketAddr]) -> Report {
    let held = sockets::by_destination(socks, host.ip_local_port_range);
    let ports = host.local_ports;
    let mut outgoing = Held::default();
    for h in held.values() {
        outgoing.established += h.established;
        outgoing.time_wait += h.time_wait;
    }
    let mut list: Vec<(SocketAddr, Held)> = if wanted.is_empty() {
        let mut all: Vec<_> = held.iter().map(|(a, h)| (*a, *h)).collect();
        all.sort_by_key(|(a, h)| (std::cmp::Reverse(h.ports()), *a));
        all.truncate(TOP);
        all
    } else {
        wanted
            .iter()
            .map(|a| (*a, held.get(a).copied().unwrap_or_default()))
            .collect()
    };
    list.dedup_by_key(|(a, _)| *a);
    let destinations: Vec<Destination> = list
        .into_iter()
        .map(|(destination, h)| Destination {
            destination,
            established: h.established,
            time_wait: h.time_wait,
            ports_in_use: h.ports(),
            ports_free: ports.saturating_sub(h.ports()),
            pressure: h.ports() as f64 / ports.max(1) as f64,
        })
        .collect();
    let advice = advise(&host, &destinations);
    Report {
        new_connections_per_second_per_destination: ports as f64 / TIME_WAIT_SECS,
        nat_gateway_connections_per_destination: NAT_PER_DESTINATION,
        host,
        outgoing,
        destinations,
        advice,
    }
}

/// What to change, the biggest lever first.
fn advise(host: &Facts, dests: &[Destination]) -> Vec<Advice> {
    let mut out: Vec<(String, String)> = Vec::new();
    let ports = host.local_ports;
    let churn = dests.iter().filter(|d| d.time_wait > d.established).count();
    let worst = dests.iter().map(|d| d.pressure).fold(0.0, f64::max);
    out.push((
        "send the calls through sluice's pool".into(),
        if churn > 0 {
            format!("{churn} destination(s) hold more TIME_WAIT than open connections: connections are opened per call and closed; pooled, a few long connections carry them all and leave no TIME_WAIT")
        } else {
            "reused connections need no new ports: the pool is the one fix that does not move the cliff but removes it".into()
        },
    ));
    if host.tcp_tw_reuse != Some(1) {
        out.push((
            "sysctl -w net.ipv4.tcp_tw_reuse=1".into(),
            format!("it is {}: outgoing connections may then take a TIME_WAIT port after 1 s (needs TCP timestamps, on by default); 2, Linux's default, allows it on loopback only", host.tcp_tw_reuse.map_or("unknown".into(), |v| v.to_string())),
        ));
    }
    if ports < 28_000 {
        out.push((
            "sysctl -w net.ipv4.ip_local_port_range=\"1024 65535\"".into(),
            format!("only {ports} local ports: each destination gets at most that many connections, {:.0} new ones a second", ports as f64 / TIME_WAIT_SECS),
        ));
    }
    out.push((
        "more source addresses (backends[].source_addresses)".into(),
        format!("each source IP has its own {ports} ports per destination"),
    ));
    out.push((
        "more destination addresses".into(),
        "each destination ip:port is its own 4-tuple space: several A records or servers multiply the ceiling".into(),
    ));
    out.push((
        "Unix sockets for local hops".into(),
        "an app talking to sluice over unix: uses no port at all".into(),
    ));
    if host.tcp_fin_timeout.is_some() {
        out.push((
            "leave tcp_fin_timeout alone".into(),
            "it bounds FIN_WAIT_2, not TIME_WAIT, which Linux keeps 60 s whatever it says".into(),
        ));
    }
    if worst > 0.5 {
        out.insert(
            0,
            (
                "act now".into(),
                format!(
                    "a destination holds {:.0}% of the local ports",
                    worst * 100.0
                ),
            ),
        );
    }
    out.into_iter()
        .enumerate()
        .map(|(i, (change, why))| Advice {
            rank: i + 1,
            change,
            why,
        })
        .collect()
}

fn opt(v: Option<u64>) -> String {
    v.map_or_else(|| "n/a".into(), |v| v.to_string())
}

fn text(r: &Report) -> String {
    let h = &r.host;
    let mut s = String::new();
    let (lo, hi) = h.ip_local_port_range;
    s += &format!("local ports        {lo}-{hi} ({} ports)\n", h.local_ports);
    s += &format!("tcp_tw_reuse       {}\n", opt(h.tcp_tw_reuse));
    s += &format!(
        "tcp_fin_timeout    {} (FIN_WAIT_2; TIME_WAIT is 60 s)\n",
        opt(h.tcp_fin_timeout)
    );
    s += &format!(
        "somaxconn          {}   tcp_max_syn_backlog {}\n",
        opt(h.somaxconn),
        opt(h.tcp_max_syn_backlog)
    );
    s += &format!(
        "conntrack          {} of {}\n",
        opt(h.nf_conntrack_count),
        opt(h.nf_conntrack_max)
    );
    s += &format!(
        "open files         {} soft / {} hard (fs.file-max {})\n",
        opt(h.open_files_soft),
        opt(h.open_files_hard),
        opt(h.file_max)
    );
    s += &format!(
        "cpus               {} (cgroup quota {})   memory limit {}\n",
        h.cpus,
        h.cgroup_cpus
            .map_or_else(|| "none".into(), |c| format!("{c}")),
        h.cgroup_memory_bytes
            .map_or_else(|| "none".into(), |m| format!("{} MiB", m / (1 << 20)))
    );
    s += &format!(
        "\nceiling per destination: {:.0} new connections/s (local ports / 60 s TIME_WAIT); behind a NAT gateway at most {} at once\n",
        r.new_connections_per_second_per_destination, r.nat_gateway_connections_per_destination
    );
    s += &format!(
        "outgoing connections: {} established, {} in TIME_WAIT\n\n",
        r.outgoing.established, r.outgoing.time_wait
    );
    s += "destination                          established  time_wait  ports free  pressure\n";
    for d in &r.destinations {
        s += &format!(
            "{:<36} {:>11}  {:>9}  {:>10}  {:>7.1}%\n",
            d.destination.to_string(),
            d.established,
            d.time_wait,
            d.ports_free,
            d.pressure * 100.0
        );
    }
    if r.destinations.is_empty() {
        s += "(no outgoing connections)\n";
    }
    s += "\nwhat to change, most effective first:\n";
    for a in &r.advice {
        s += &format!("{}. {}\n   {}\n", a.rank, a.change, a.why);
    }
    s
}
