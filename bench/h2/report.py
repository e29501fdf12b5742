#!/usr/bin/env python3
"""bench/h2 bookkeeping (the load-generator output itself is parsed by the harness's
lib/results.py, so req/s, latency, CPU and origin-connection figures are computed exactly
as in the main benchmark).

  report.py extras EXTRAS.jsonl key=value ...   proxy counters of one run (metrics before/after)
  report.py table RESDIR "PEERS" DURATION KEEPALIVE_REQUESTS QUEUE_MAXCONN WALL_S
                                                 -> RESDIR/summary.md (+ printed)
"""
import json, math, os, re, statistics, sys
from collections import OrderedDict, defaultdict

NCPU = os.cpu_count()


# ------------------------------------------------------------------ proxy counters
def parse_prom(path):
    """OpenMetrics text -> {(name, labels_str): value}"""
    out = {}
    if not os.path.exists(path):
        return out
    for line in open(path):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = re.match(r"([A-Za-z_:][\w:]*)(\{[^}]*\})?\s+(\S+)", line)
        if m:
            try:
                out[(m.group(1), m.group(2) or "")] = float(m.group(3))
            except ValueError:
                pass
    return out


def psum(d, name, pred=lambda labels: True):
    return sum(v for (n, l), v in d.items() if n == name and pred(l))


def parse_envoy(path):
    out = {}
    if not os.path.exists(path):
        return out
    for line in open(path):
        k, _, v = line.strip().partition(": ")
        try:
            out[k] = float(v)
        except ValueError:
            pass
    return out


def extras(path, kv):
    rec = OrderedDict(peer=kv["peer"], workload=kv["workload"], rep=int(kv["rep"]), kind=kv["kind"])
    rec["origin_requests"] = int(kv["origin_req_after"]) - int(kv["origin_req_before"]) - 1  # minus the probe
    if kv["kind"] == "sluice":
        a, b = parse_prom(kv["m0"]), parse_prom(kv["m1"])
        d = lambda name, pred=lambda l: True: psum(b, name, pred) - psum(a, name, pred)
        not2xx = lambda l: not re.search(r'status="2\d\d"', l)
        rec["proxy_requests"] = int(d("sluice_requests_total"))
        rec["proxy_non2xx"] = int(d("sluice_requests_total", not2xx))
        rec["upstream_errors"] = int(d("sluice_upstream_errors_total"))
        rec["upstream_opened"] = int(d("sluice_upstream_connections_opened_total"))
        rec["retries"] = int(d("sluice_upstream_retries_total"))
        rec["h2_conns_after"] = int(psum(b, "sluice_upstream_h2_connections"))
        n = d("sluice_upstream_h2_streams_per_connection_count")
        rec["h2_streams_per_conn_mean"] = round(d("sluice_upstream_h2_streams_per_connection_sum") / n, 1) if n else None
        rec["queue_waits"] = int(d("sluice_backend_queue_duration_seconds_count"))
        qs = d("sluice_backend_queue_duration_seconds_sum")
        rec["queue_wait_mean_ms"] = round(qs * 1e3 / rec["queue_waits"], 3) if rec["queue_waits"] else None
        rec["queue_wait_per_req_ms"] = round(qs * 1e3 / rec["proxy_requests"], 3) if rec["proxy_requests"] else None
        rec["queue_depth_end"] = int(psum(b, "sluice_backend_queue_depth"))
    else:
        a, b = parse_envoy(kv["m0"]), parse_envoy(kv["m1"])
        d = lambda k: b.get(k, 0) - a.get(k, 0)
        c, h = "cluster.api_origin.", "http.egress."
        rec["proxy_requests"] = int(d(h + "downstream_rq_total"))
        rec["proxy_non2xx"] = int(sum(d(f"{h}downstream_rq_{x}xx") for x in (1, 3, 4, 5)))
        rec["upstream_errors"] = int(d(c + "upstream_rq_tx_reset") + d(c + "upstream_rq_rx_reset")
                                     + d(c + "upstream_cx_protocol_error"))
        rec["upstream_opened"] = int(d(c + "upstream_cx_total"))
        rec["retries"] = int(d(c + "upstream_rq_retry"))
        rec["h2_conns_opened"] = int(d(c + "upstream_cx_http2_total"))
        rec["h2_conns_after"] = int(b.get(c + "upstream_cx_active", 0)) if b.get(c + "upstream_cx_http2_total") else 0
    q = kv.get("qdepth")
    if q and os.path.exists(q):
        vals = [int(float(x)) for x in open(q).read().split() if x.strip()]
        if vals:
            rec["queue_depth_max"] = max(vals)
            rec["queue_depth_mean"] = round(statistics.mean(vals), 1)
    with open(path, "a") as f:
        f.write(json.dumps(rec) + "\n")
    print("   " + ", ".join(f"{k}={v}" for k, v in rec.items() if k not in ("peer", "workload", "rep", "kind")))


# ------------------------------------------------------------------ table
def load(path):
    return [json.loads(l) for l in open(path) if l.strip()] if os.path.exists(path) else []


def med(rs, k):
    v = [r[k] for r in rs if r.get(k) is not None]
    return statistics.median(v) if v else None


def fmt(v, f):
    return "n/a" if v is None else f.format(v)


def table(resdir, peers, duration, ka_reqs, qmax, wall):
    runs = load(f"{resdir}/runs.jsonl")
    ext = {(e["peer"], e["workload"], e["rep"]): e for e in load(f"{resdir}/extras.jsonl")}
    if not runs:
        sys.exit("no runs recorded")
    for r in runs:
        r.update({k: v for k, v in ext.get((r["peer"], r["workload"], r["rep"]), {}).items()
                  if k not in r})
    peer_order = peers.split()
    wls = list(OrderedDict.fromkeys(r["workload"] for r in runs))
    groups = defaultdict(list)
    for r in runs:
        groups[(r["workload"], r["peer"])].append(r)
    reps = max(r["rep"] for r in runs)
    ms, mf = float(os.environ.get("MAX_STEAL_PCT", 5)), float(os.environ.get("MAX_FOREIGN_PCT", 10))
    noisy = lambda r: (100 * r.get("steal_s", 0) / (NCPU * r["wall_s"]) > ms
                       or 100 * r.get("unexplained_cpu_s", 0) / (NCPU * r["wall_s"]) > mf)

    L = []
    L.append(f"# bench/h2 — {os.path.basename(resdir)}\n")
    L.append("```")
    L.append(open(f"{resdir}/versions.txt").read().rstrip())
    L.append("```\n")
    L.append(f"Medians of {reps} rep(s) × {duration} s (each column's median taken independently), "
             f"reps interleaved across peers; total wall time of the invocation {wall} s. "
             f"Origin: nginx, HTTPS with ALPN h2+http/1.1 on one port, 1 KiB body, "
             f"`keepalive_requests {ka_reqs}` (bounds h1 **and** h2 connections: an h2 connection is "
             f"retired with GOAWAY after that many streams), `http2_max_concurrent_streams 128`.\n")
    hdr = ["workload", "peer", "n", "req/s", "req/s min–max", "p50 ms", "p99 ms",
           "origin conns (run)", "origin conns (since start)",
           "proxy CPU-ms / 1k req", "proxy CPU %", "origin CPU-ms / 1k req",
           "errors (all reps)", "upstream retries (run)", "queued % / mean wait ms"]
    L.append("| " + " | ".join(hdr) + " |")
    L.append("|" + "---|" * len(hdr))
    rows = {}
    for wl in wls:
        for p in peer_order:
            rs = groups.get((wl, p))
            if not rs:
                continue
            row = {k: med(rs, k) for k in ("rps", "p50_ms", "p99_ms", "origin_conns", "origin_conns_total",
                                           "proxy_cpu_ms_per_1k", "proxy_cpu_pct", "origin_cpu_ms_per_1k",
                                           "retries", "queue_wait_mean_ms", "origin_requests")}
            row["errors"] = sum(r["errors"] for r in rs)
            row["rps_min"], row["rps_max"] = min(r["rps"] for r in rs), max(r["rps"] for r in rs)
            row["reps"] = {r["rep"]: r for r in rs}
            qpct = [100 * r["queue_waits"] / r["proxy_requests"] for r in rs
                    if r.get("queue_waits") is not None and r.get("proxy_requests")]
            row["queued_pct"] = statistics.median(qpct) if qpct else None
            rows[(wl, p)] = row
            nn = sum(1 for r in rs if noisy(r))
            q = ("–" if p.startswith("envoy") else
                 f"{fmt(row['queued_pct'], '{:.0f}')}% / {fmt(row['queue_wait_mean_ms'], '{:.2f}')}")
            L.append("| " + " | ".join([
                wl, f"**{p}**" if p.startswith("sluice") else p, f"{len(rs)}" + (f" ({nn} noisy)" if nn else ""),
                fmt(row["rps"], "{:,.0f}"), f"{row['rps_min']:,.0f}–{row['rps_max']:,.0f}",
                fmt(row["p50_ms"], "{:.2f}"), fmt(row["p99_ms"], "{:.2f}"),
                fmt(row["origin_conns"], "{:.0f}"), fmt(row["origin_conns_total"], "{:.0f}"),
                fmt(row["proxy_cpu_ms_per_1k"], "{:.1f}"), fmt(row["proxy_cpu_pct"], "{:.0f}"),
                fmt(row["origin_cpu_ms_per_1k"], "{:.1f}"),
                str(row["errors"]), fmt(row["retries"], "{:.0f}"), q]) + " |")
    L.append("")
    L.append("Columns: origin conns = nginx `stub_status` accepts during the measured run / since the proxy "
             "was started (readiness probe + warm-up + run, i.e. the pool size for h1 proxies); errors = client-side socket errors + non-2xx "
             "(wrk/ab) summed over reps; upstream retries = the proxy's own counter (sluice "
             "`sluice_upstream_retries_total`, Envoy `upstream_rq_retry`); queued % / mean wait = share of "
             "requests that waited in sluice's backend queue and their mean wait "
             "(`sluice_backend_queue_duration_seconds`). p50/p99 for close32 are ab's connect→last byte.\n")

    # ---- ratios
    def ratio(a, b, key):
        ra, rb = rows.get(a), rows.get(b)
        if not ra or not rb or not ra.get(key) or not rb.get(key):
            return None
        per = [ra["reps"][i][key] / rb["reps"][i][key] for i in ra["reps"]
               if i in rb["reps"] and rb["reps"][i].get(key)]
        s = f"{ra[key] / rb[key]:.2f}"
        if len(per) > 1:
            s += f" ({min(per):.2f}–{max(per):.2f})"
        return s
    pairs = [("sluice-h2", "sluice-h1", "sluice h2 ÷ sluice h1"),
             ("envoy-h2", "envoy-h1", "Envoy h2 ÷ Envoy h1"),
             ("sluice-h2", "envoy-h2", "sluice h2 ÷ Envoy h2"),
             ("sluice-h1", "envoy-h1", "sluice h1 ÷ Envoy h1"),
             ("sluice-h1-mc16", "sluice-h1", f"sluice maxconn_per_server {qmax} ÷ unlimited")]
    L.append("## Ratios (same invocation)\n")
    L.append("Ratio of the medians; in brackets the range of the per-rep ratios (rep i ÷ rep i).\n")
    L.append("| comparison | workload | req/s | p50 | p99 | proxy CPU-ms / 1k |")
    L.append("|---|---|---|---|---|---|")
    for a, b, title in pairs:
        for wl in wls:
            if (wl, a) in rows and (wl, b) in rows:
                L.append(f"| {title} | {wl} | " + " | ".join(
                    fmt(ratio((wl, a), (wl, b), k), "{}") for k in ("rps", "p50_ms", "p99_ms", "proxy_cpu_ms_per_1k")) + " |")
    for wl in wls:
        a, b = rows.get((wl, "sluice-h1-mc16")), rows.get((wl, "sluice-h1"))
        if a and b:
            L.append(f"\nQueueing at maxconn_per_server {qmax}, {wl}: req/s {100 * (a['rps'] / b['rps'] - 1):+.1f}%, "
                     f"p99 {100 * (a['p99_ms'] / b['p99_ms'] - 1):+.1f}%, proxy CPU/1k "
                     f"{100 * (a['proxy_cpu_ms_per_1k'] / b['proxy_cpu_ms_per_1k'] - 1):+.1f}% vs unlimited; "
                     f"origin conns since start {a['origin_conns_total']:.0f} vs {b['origin_conns_total']:.0f}.")
    L.append("")

    # ---- checks
    L.append("## Checks\n")
    problems = []
    bad = [r for r in runs if r["errors"] or r.get("proxy_non2xx")]
    tot = sum(r["requests"] for r in runs)
    if any(r["errors"] or r.get("proxy_non2xx") for r in runs):
        problems.append("non-2xx / socket errors")
    L.append(f"- requests measured: {tot:,} in {len(runs)} runs; client errors (socket + non-2xx): "
             f"{sum(r['errors'] for r in runs)}; proxy-side non-2xx: {sum(r.get('proxy_non2xx', 0) or 0 for r in runs)}")
    for r in bad:
        L.append(f"  - {r['peer']} {r['workload']} rep {r['rep']}: client errors {r['errors']}, proxy non-2xx "
                 f"{r.get('proxy_non2xx')}, upstream errors/resets {r.get('upstream_errors')} (raw/{r['peer']}.{r['workload']}.{r['rep']}.*)")
    for r in runs:
        if r["peer"].endswith("-h2"):
            # an h2 proxy needs one origin connection, plus one per keepalive_requests streams (GOAWAY)
            allowed = math.ceil(max(r.get("origin_requests") or 0, 1) / ka_reqs) + 1
            ok = r["origin_conns"] <= allowed and (r.get("h2_conns_after") or 0) >= 1
            if not ok:
                problems.append(f"{r['peer']} {r['workload']} rep {r['rep']}: h2 not multiplexed")
            L.append(f"- {r['peer']} {r['workload']} rep {r['rep']}: origin conns in run {r['origin_conns']} "
                     f"(≤ {allowed} expected: ceil({r.get('origin_requests')} origin requests / {ka_reqs}) + 1), "
                     f"since start {r['origin_conns_total']}, h2 conns open at end {r.get('h2_conns_after')}, "
                     f"proxy opened {r.get('upstream_opened')}, retries {r.get('retries')}, "
                     f"upstream resets/protocol errors {r.get('upstream_errors')}"
                     + (f", mean streams in flight per conn {r['h2_streams_per_conn_mean']}" if r.get("h2_streams_per_conn_mean") else "")
                     + (" — OK" if ok else " — **UNEXPECTED**"))
        if r["peer"] == "sluice-h1-mc16":
            ok = r["origin_conns_total"] <= qmax
            if not ok:
                problems.append(f"{r['peer']} {r['workload']} rep {r['rep']}: > {qmax} origin conns")
            L.append(f"- {r['peer']} {r['workload']} rep {r['rep']}: origin conns since start {r['origin_conns_total']} "
                     f"(≤ {qmax} expected), queued {r.get('queue_waits')} of {r.get('proxy_requests')} requests, "
                     f"mean wait {r.get('queue_wait_mean_ms')} ms, queue depth max/mean "
                     f"{r.get('queue_depth_max')}/{r.get('queue_depth_mean')} (1 s samples)" + (" — OK" if ok else " — **UNEXPECTED**"))
    disc = load(f"{resdir}/discarded.jsonl")
    if disc:
        L.append(f"- {len(disc)} rep(s) discarded for VM steal / foreign CPU and re-run (discarded.jsonl)")
    L.append("\n" + ("**All checks passed.**" if not problems else "**PROBLEMS:** " + "; ".join(problems)))
    md = "\n".join(L) + "\n"
    open(f"{resdir}/summary.md", "w").write(md)
    print(md)


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    if sys.argv[1] == "extras":
        extras(sys.argv[2], dict(a.split("=", 1) for a in sys.argv[3:]))
    elif sys.argv[1] == "table":
        table(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), int(sys.argv[6]), sys.argv[7])
    else:
        sys.exit(__doc__)
