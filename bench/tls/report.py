#!/usr/bin/env python3
"""bench/tls report: parse one run into runs.jsonl, and render the tables.

  report.py record RUNS.jsonl key=value ...   tool=wrk|ab|h2load out= [csv=] [h2log=] + counters
  report.py table RESDIR                      runs.jsonl checks.jsonl probe.jsonl -> summary.md

wrk and ab output are parsed by the shared harness's lib/results.py (PB_ROOT), so the
figures mean exactly what they mean in ../shared/bench."""
import json, os, re, statistics, sys
from collections import OrderedDict

sys.path.insert(0, os.path.join(os.environ["PB_ROOT"], "lib"))
import results  # noqa: E402  (the harness's parse_wrk / parse_ab)

SLUICE = ("sluice", "sluice-ref")


def parse_h2load(text, log):
    r = {}
    m = re.search(r"finished in ([\d.]+)s, ([\d.]+) req/s", text)
    r["rps"] = float(m.group(2))
    m = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, "
                  r"(\d+) errored, (\d+) timeout", text)
    r["requests"] = int(m.group(4))
    r["errors"] = int(m.group(5)) + int(m.group(7))
    m = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", text)
    r["errors"] += int(m.group(2)) + int(m.group(3)) + int(m.group(4))
    r["p50_ms"] = r["p99_ms"] = None
    if log and os.path.exists(log):   # --log-file: start_us <TAB> status <TAB> duration_us
        lat = sorted(int(l.split("\t")[2]) for l in open(log) if l.count("\t") == 2)
        if lat:
            r["p50_ms"] = lat[len(lat) // 2] / 1e3
            r["p99_ms"] = lat[min(len(lat) - 1, int(len(lat) * 0.99))] / 1e3
    return r


def tls_of(tool, text):  # what the load generator itself reports it negotiated
    if tool == "ab":
        m = re.search(r"SSL/TLS Protocol:\s+(\S+?),(\S+?),", text)
        return m and f"{m.group(1)} {m.group(2)}"
    if tool == "h2load":
        p = re.search(r"TLS Protocol: (\S+)", text); a = re.search(r"Application protocol: (\S+)", text)
        return p and a and f"{p.group(1)} {a.group(1)}"
    return None


def server_counters(kind, path):
    """(TLS handshakes, resumed or None) on the listener, from the proxy's own counters."""
    try:
        t = open(path).read()
    except OSError:
        return None
    g = lambda rx: sum(int(float(x)) for x in re.findall(rx, t, re.M))
    if kind == "envoy":
        return g(r"^listener\.[\d._]+\.ssl\.handshake: (\d+)"), g(r"^listener\.[\d._]+\.ssl\.session_reused: (\d+)")
    if kind == "haproxy":   # 'show stat' CSV, frontend row: ssl_sess, ssl_reused_sess
        lines = [l for l in t.splitlines() if l.strip()]
        hdr = lines[0].lstrip("# ").split(",") if lines else []
        for l in lines[1:]:
            row = dict(zip(hdr, l.split(",")))
            if row.get("svname") == "FRONTEND" and row.get("pxname") == "ingress":
                return int(row["ssl_sess"] or 0), int(row["ssl_reused_sess"] or 0)
    if kind == "nginx":     # stub_status accepts: every connection on the TLS-only listener
        m = re.search(r"^\s*(\d+) \d+ \d+\s*$", t, re.M)       # (+ the scrape's own)
        return (int(m.group(1)), None) if m else None
    if kind == "sluice":    # sluice_tls_handshakes_total{listener,version,cipher,result}
        if "sluice_tls_handshakes_total" in t:
            return g(r'^sluice_tls_handshakes_total\{[^}]*result="ok"[^}]*\} (\d+)'), None
    return None


def record(path, kv):
    text = open(kv["out"]).read()
    tool = kv["tool"]
    r = (results.parse_wrk(text) if tool == "wrk" else results.parse_ab(text, kv["csv"]) if tool == "ab"
         else parse_h2load(text, kv.get("h2log")))
    rec = OrderedDict(peer=kv["peer"], workload=kv["workload"], rep=int(kv["rep"]), tool=tool)
    rec.update(r)
    f = lambda k: float(kv[k])
    wall = rec["wall_s"] = f("wall_s")
    rec["lg_tls"] = tls_of(tool, text)
    n = max(rec["requests"], 1)
    rec["proxy_cpu_s"] = round(f("proxy_cpu_after") - f("proxy_cpu_before"), 2)
    rec["proxy_cpu_pct"] = round(100 * rec["proxy_cpu_s"] / wall, 1)
    rec["proxy_cpu_us_per_req"] = round(rec["proxy_cpu_s"] * 1e6 / n, 1)
    rec["core_busy_us_per_req"] = round((f("core_busy_after") - f("core_busy_before")) * 1e6 / n, 1)
    rec["origin_cpu_s"] = round(f("origin_cpu_after") - f("origin_cpu_before"), 2)
    rec["loadgen_cpu_s"] = f("loadgen_cpu_s")
    rec["steal_s"] = round(f("steal_after") - f("steal_before"), 2)
    rec["all_busy_s"] = round(f("all_busy_after") - f("all_busy_before"), 2)
    # origin stub_status 'accepts': the 'after' probe's own connection is counted in it
    rec["origin_conns"] = int(kv["acc_after"]) - int(kv["acc_before"]) - 1
    # TCP connections accepted on this host (/proc/net/snmp PassiveOpens) minus the origin's
    # (the proxy's upstream connections and the two stub probes): the proxy's client conns.
    rec["client_conns"] = int(kv["passive_after"]) - int(kv["passive_before"]) - rec["origin_conns"] - 2
    rec["conns_per_req"] = round(rec["client_conns"] / n, 3)
    c0, c1 = server_counters(kv["kind"], kv["stats0"]), server_counters(kv["kind"], kv["stats1"])
    if c0 and c1:   # nginx's 'after' scrape counts its own connection
        rec["server_handshakes"] = c1[0] - c0[0] - (1 if kv["kind"] == "nginx" else 0)
        rec["server_resumed"] = None if c1[1] is None else c1[1] - c0[1]
        rec["handshakes_per_s"] = round(rec["server_handshakes"] / wall, 1)
    else:           # no counters: the host's TCP accepts (also counts other users' loopback tests)
        rec["handshakes_per_s"], rec["handshakes_from"] = round(rec["client_conns"] / wall, 1), "host"
    with open(path, "a") as out:
        out.write(json.dumps(rec) + "\n")
    print("   " + ", ".join(f"{k}={v}" for k, v in rec.items() if k not in ("peer", "workload", "rep")))


COLS = [("rps", "req/s", "{:,.0f}"), ("p50_ms", "p50 ms", "{:.3f}"), ("p99_ms", "p99 ms", "{:.3f}"),
        ("handshakes_per_s", "TLS handshakes/s", "{:,.0f}"),
        ("proxy_cpu_pct", "proxy CPU %", "{:.0f}"), ("proxy_cpu_us_per_req", "proxy CPU µs/req", "{:.1f}"),
        ("core_busy_us_per_req", "proxy core busy µs/req", "{:.1f}"), ("origin_conns", "origin conns (run)", "{:.0f}"),
        ("errors", "errors", "{:.0f}")]


def med(rs, k):
    v = [r[k] for r in rs if r.get(k) is not None]
    return statistics.median(v) if v else None


def table(res):
    runs = [json.loads(l) for l in open(f"{res}/runs.jsonl") if l.strip()]
    order = ["tls-ka64", "h2-ka", "tls-new"]
    groups = OrderedDict()
    for r in sorted(runs, key=lambda r: (order.index(r["workload"]) if r["workload"] in order else 9, r["workload"])):
        groups.setdefault(r["workload"], OrderedDict()).setdefault(r["peer"], []).append(r)
    out = []
    hdr = ["workload", "peer", "n"] + [h for _, h, _ in COLS] + ["req/s min-max", "rate ÷ best peer", "CPU/req ÷ best peer"]
    out += ["| " + " | ".join(hdr) + " |", "|" + "---|" * len(hdr)]
    for wl, peers in groups.items():
        rate_key = "handshakes_per_s" if wl == "tls-new" else "rps"   # the targets
        rows = {p: {k: med(rs, k) for k, _, _ in COLS} for p, rs in peers.items()}
        others = [p for p in rows if p not in SLUICE]
        best_rate = max((rows[p][rate_key] or 0 for p in others), default=0)
        best_cpu = min((rows[p]["proxy_cpu_us_per_req"] for p in others if rows[p]["proxy_cpu_us_per_req"]), default=None)
        for p, rs in peers.items():
            row = rows[p]
            ms, mf, ncpu = float(os.environ.get("MAX_STEAL_PCT", 5)), float(os.environ.get("MAX_FOREIGN_PCT", 10)), os.cpu_count()
            noisy = sum(1 for r in rs if 100 * r["steal_s"] / (ncpu * r["wall_s"]) > ms or 100 * (r["all_busy_s"] - r["proxy_cpu_s"]
                        - r["origin_cpu_s"] - r["loadgen_cpu_s"]) / (ncpu * r["wall_s"]) > mf)  # kept after MAX_ATTEMPTS
            cells = [wl, p, f"{len(rs)} ({noisy} noisy)" if noisy else str(len(rs))] + ["n/a" if row[k] is None else fmt.format(row[k]) for k, _, fmt in COLS]
            if any(r.get("handshakes_from") for r in rs):
                cells[6] += " †"
            cells.append(f"{min(r['rps'] for r in rs):,.0f}-{max(r['rps'] for r in rs):,.0f}")
            cells.append(f"{row[rate_key] / best_rate:.2f}" if best_rate and row[rate_key] else "n/a")
            cells.append(f"{row['proxy_cpu_us_per_req'] / best_cpu:.2f}" if best_cpu and row["proxy_cpu_us_per_req"] else "n/a")
            out.append("| " + " | ".join(cells) + " |")
    out += ["", "rate = req/s (tls-ka64, h2-ka) or TLS handshakes/s (tls-new); ÷ best = against the best of the "
            "non-sluice peers in the same workload (rate: highest, CPU: lowest). Medians over reps, each column on its own; "
            "noisy = reps kept after MAX_ATTEMPTS although over the steal / foreign-CPU guards. "
            "TLS handshakes: the proxy's own counters (HAProxy ssl_sess, Envoy ssl.handshake, NGINX stub_status accepts, "
            "sluice_tls_handshakes_total{result=ok}); † = none found, the host's TCP accepts instead.", ""]
    # handshake verification: the proxies' own counters and what the load generator negotiated
    out += ["| workload | peer | TLS handshakes/req (proxy counters) | resumed (proxy counters) | host TCP accepts/req "
            "| load generator negotiated |", "|---|---|---|---|---|---|"]
    for wl, peers in groups.items():
        for p, rs in peers.items():
            hs = [r for r in rs if r.get("server_handshakes") is not None]
            hpr = f"{statistics.median(r['server_handshakes'] / max(r['requests'], 1) for r in hs):.3f}" if hs else "n/a"
            rsm = [r["server_resumed"] for r in hs if r.get("server_resumed") is not None]
            out.append(f"| {wl} | {p} | {hpr} | {sum(rsm) if rsm else 'n/a'} | {med(rs, 'conns_per_req'):.3f} "
                       f"| {', '.join(sorted({r['lg_tls'] or 'n/a' for r in rs}))} |")
    if os.path.exists(f"{res}/checks.jsonl"):
        out += ["", "| peer | curl h2 | curl http/1.1 | TLS 1.2 refused | body = origin's |", "|---|---|---|---|---|"]
        seen = OrderedDict((c["peer"], c) for c in map(json.loads, open(f"{res}/checks.jsonl")))
        out += [f"| {c['peer']} | {c['h2']} | {c['h1']} | {c['no_tls12']} | {c['body_ok']} |" for c in seen.values()]
    if os.path.exists(f"{res}/probe.jsonl"):
        out += ["", "Load generators against bench/tls/probe.py (TLS 1.3 server that issues session tickets):", "",
                "| client | conns | requests | max requests/conn | SNI sent | ALPN | TLS | resumed conns |", "|---|---|---|---|---|---|---|---|"]
        for c in map(json.loads, open(f"{res}/probe.jsonl")):
            out.append(f"| `{c['client']}` | {c['conns']} | {c['requests']} | {c['max_requests_per_conn']} | {c['sni']} | {c['alpn']} | {c['tls']} | {c['resumed']} |")
    md = "\n".join(out) + "\n"
    open(f"{res}/summary.md", "w").write(md)
    print(md)


def probe_summary(jsonl, client):  # one line per client for probe.jsonl
    recs = [json.loads(l) for l in open(jsonl) if l.strip()]
    recs = [r for r in recs if r.get("version")]   # drop connections closed before the handshake
    j = lambda k: ",".join(sorted({str(r[k]) for r in recs})) or "n/a"
    print(json.dumps({"client": client, "conns": len(recs), "requests": sum(r["requests"] for r in recs),
                      "sni": j("sni"), "alpn": j("alpn"), "tls": j("version"),
                      "resumed": sum(1 for r in recs if r["reused"]),
                      "max_requests_per_conn": max((r["requests"] for r in recs), default=0)}))


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "record":
        record(sys.argv[2], dict(a.split("=", 1) for a in sys.argv[3:]))
    elif cmd == "table":
        table(sys.argv[2])
    elif cmd == "haproxy-stat":   # 'show stat' over HAProxy's stats socket
        import socket
        sk = socket.socket(socket.AF_UNIX); sk.connect(sys.argv[2]); sk.sendall(b"show stat\n")
        while d := sk.recv(65536):
            sys.stdout.write(d.decode())
    elif cmd == "probe":
        probe_summary(sys.argv[2], sys.argv[3])
    else:
        raise SystemExit(__doc__)
