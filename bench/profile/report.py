#!/usr/bin/env python3
"""report.py OUT_DIR -- markdown tables from the raw files bench/profile/run.sh wrote."""
import glob
import json
import os
import re
import sys
from collections import OrderedDict

out = sys.argv[1]
raw = os.path.join(out, "raw")
PROXIES = ["sluice", "haproxy", "nginx"]
MODES = ["close", "keepalive"]


def have(name, mode, suffix):
    return os.path.exists(os.path.join(raw, f"{name}.{mode}.{suffix}"))


def read(name, mode, suffix):
    with open(os.path.join(raw, f"{name}.{mode}.{suffix}")) as f:
        return f.read()


cols = [(p, m) for p in PROXIES for m in MODES
        if any(have(p, m, s) for s in ("cg.json", "snmp.txt", "strace.txt"))]


def hdr(first, cs):
    return (f"| {first} | " + " | ".join(f"{p} {m}" for p, m in cs) + " |\n"
            + "|---|" + "---:|" * len(cs) + "\n")


def fmt(x, d=1):
    if x is None:
        return "–"
    if isinstance(x, str):
        return x
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:.{d}f}"


def ab_rps(name, mode, which):
    if not have(name, mode, f"{which}.ab.txt"):
        return None
    m = re.search(r"Requests per second:\s+([\d.]+)", read(name, mode, f"{which}.ab.txt"))
    return float(m.group(1)) if m else None


print(f"# sluice vs HAProxy vs NGINX: per-request profile\n")
if os.path.exists(os.path.join(out, "versions.txt")):
    print("```\n" + open(os.path.join(out, "versions.txt")).read().strip() + "\n```\n")

# ------------------------------------------------------------------ callgrind
cg = {c: json.load(open(os.path.join(raw, f"{c[0]}.{c[1]}.cg.json"))) for c in cols if have(*c, "cg.json")}
if cg:
    cc = [c for c in cols if c in cg]
    print("## 1. User-space instructions and allocator calls per request (callgrind)\n")
    print(hdr("per request", cc), end="")
    print("| Ir (instructions) | " + " | ".join(fmt(cg[c]["ir_per_req"]) for c in cc) + " |")
    print("| malloc+calloc+realloc+memalign | " + " | ".join(fmt(cg[c]["mallocs_per_req"]) for c in cc) + " |")
    print("| free | " + " | ".join(fmt(cg[c]["frees_per_req"]) for c in cc) + " |")
    for k in ("malloc", "calloc", "realloc", "posix_memalign", "aligned_alloc", "memalign"):
        if any(cg[c]["alloc_calls_per_req"].get(k) for c in cc):
            print(f"| . {k} | " + " | ".join(fmt(cg[c]["alloc_calls_per_req"].get(k, 0.0)) for c in cc) + " |")
    mal = "malloc/free (libc + Rust alloc glue)"
    print("| Ir in malloc/free | " + " | ".join(fmt(cg[c]["buckets_self_per_req"].get(mal, 0.0)) for c in cc) + " |")
    print("| upstream conns opened during count | " + " | ".join(
        (re.search(r"callgrind (-?\d+)", read(*c, "upstream-conns.txt")) or [None, "?"])[1]
        if have(*c, "upstream-conns.txt") else "?" for c in cc) + " |")
    print("| req/s under valgrind (ab) | " + " | ".join(fmt(ab_rps(*c, "cg"), 0) for c in cc) + " |")
    print()
    for c in cc:
        r = cg[c]
        print(f"### Buckets: {c[0]} {c[1]} (Ir/request; total {r['ir_per_req']:,.0f})\n")
        print("self = where the instructions are (by source file, generic code by function name); "
              "owner = malloc/free, mem*, Rust core/std instructions charged to the first "
              "non-generic caller (proportional to call-edge cost); mallocs = malloc-family "
              "calls charged the same way (by call counts).\n")
        print("| bucket | self | self % | owner | owner % | mallocs |")
        print("|---|---:|---:|---:|---:|---:|")
        sb, ob, mb = r["buckets_self_per_req"], r["buckets_owner_per_req"], r["buckets_charged_mallocs_per_req"]
        tot = r["ir_per_req"]
        for b in sorted(set(sb) | set(ob), key=lambda b: -max(sb.get(b, 0), ob.get(b, 0))):
            s, o = sb.get(b, 0), ob.get(b, 0)
            if s < 0.5 and o < 0.5:
                continue
            print(f"| {b} | {s:,.0f} | {100 * s / tot:.1f} | {o:,.0f} | {100 * o / tot:.1f} | {mb.get(b, 0):.2f} |")
        print()
        print(f"Top self ({c[0]} {c[1]}):\n")
        print("| Ir/req | calls/req | function |\n|---:|---:|---|")
        for nm, v, k in r["top_self"][:20]:
            print(f"| {v:,.0f} | {k:.1f} | `{nm[:150]}` |")
        print()
        print(f"Top inclusive ({c[0]} {c[1]}):\n")
        print("| Ir/req | calls/req | function |\n|---:|---:|---|")
        for nm, v, k in r["top_inclusive"][:25]:
            print(f"| {v:,.0f} | {k:.1f} | `{nm[:150]}` |")
        print()
        if r.get("top_memcpy_callers"):
            print(f"Direct callers of memcpy/memmove ({c[0]} {c[1]}):\n")
            print("| calls/req | Ir/req | caller |\n|---:|---:|---|")
            for nm, k, v in r["top_memcpy_callers"][:15]:
                print(f"| {k:.1f} | {v:,.0f} | `{nm[:150]}` |")
            print()
        print(f"Direct callers of malloc/calloc/realloc/memalign ({c[0]} {c[1]}):\n")
        print("| calls/req | caller -> allocator |\n|---:|---|")
        for nm, v in r["top_malloc_callers"][:20]:
            print(f"| {v:.2f} | `{nm[:160]}` |")
        print()

# ------------------------------------------------------------------ strace
def parse_strace(txt):
    d = OrderedDict()
    total = None
    for line in txt.splitlines():
        f = line.split()
        if not f or line.startswith(("%", "-")):
            continue
        if f[-1] == "total":
            total = int(f[3])
            continue
        if len(f) >= 5 and re.match(r"^[\d.]+$", f[0]):
            d[f[-1]] = d.get(f[-1], 0) + int(f[3])
    return d, total


st = {}
for c in cols:
    if have(*c, "strace.txt"):
        n = int(read(*c, "strace.n"))
        d, total = parse_strace(read(*c, "strace.txt"))
        st[c] = ({k: v / n for k, v in d.items()}, (total or sum(d.values())) / n)
if st:
    cc = [c for c in cols if c in st]
    print("## 2. Syscalls per request (strace -c -f, all threads of the proxy / nginx worker)\n")
    names = sorted({k for c in cc for k in st[c][0]}, key=lambda k: -max(st[c][0].get(k, 0) for c in cc))
    print(hdr("syscall / request", cc), end="")
    print("| **total** | " + " | ".join(f"**{st[c][1]:.2f}**" for c in cc) + " |")
    for k in names:
        if max(st[c][0].get(k, 0) for c in cc) < 0.005:
            continue
        print(f"| {k} | " + " | ".join(f"{st[c][0].get(k, 0):.2f}" for c in cc) + " |")
    print("| req/s under strace (ab) | " + " | ".join(fmt(ab_rps(*c, "strace"), 0) for c in cc) + " |")
    print()

# ------------------------------------------------------------------ perf
def parse_perf(txt):
    d = {}
    for line in txt.splitlines():
        if not line or line.startswith("#"):
            continue
        f = line.split(",")
        if len(f) < 3:
            continue
        try:
            v = float(f[0])
        except ValueError:
            v = None
        d[f[2]] = v
    return d


pf = {}
for c in cols:
    if have(*c, "perf.csv"):
        n = int(re.search(r"requests: (\d+)", read(*c, "snmp.txt")).group(1))
        pf[c] = ({k: (v / n if v is not None else None) for k, v in parse_perf(read(*c, "perf.csv")).items()}, n)
if pf:
    cc = [c for c in cols if c in pf]
    print("## 4. perf stat per request (native, no tracer; proxy pinned to one CPU)\n")
    print(hdr("per request", cc), end="")
    print("| context switches | " + " | ".join(fmt(pf[c][0].get("context-switches"), 2) for c in cc) + " |")
    print("| cpu migrations | " + " | ".join(fmt(pf[c][0].get("cpu-migrations"), 3) for c in cc) + " |")
    print("| task-clock µs (CPU time, noisy) | " + " | ".join(
        fmt(pf[c][0]["task-clock"] * 1000 if pf[c][0].get("task-clock") is not None else None, 1) for c in cc) + " |")
    print("| syscalls (raw_syscalls:sys_enter) | " + " | ".join(fmt(pf[c][0].get("raw_syscalls:sys_enter"), 2) for c in cc) + " |")
    evs = sorted({k for c in cc for k in pf[c][0] if k.startswith("syscalls:sys_enter_")},
                 key=lambda k: -max((pf[c][0].get(k) or 0) for c in cc))
    for k in evs:
        if max((pf[c][0].get(k) or 0) for c in cc) < 0.005:
            continue
        print(f"| . {k.replace('syscalls:sys_enter_', '')} | " + " | ".join(fmt(pf[c][0].get(k), 2) for c in cc) + " |")
    print("| req/s (ab, native) | " + " | ".join(fmt(ab_rps(*c, "plain"), 0) for c in cc) + " |")
    print()

# ------------------------------------------------------------------ segments
def kv(s):
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", s)}


sg = {}
for c in cols:
    if have(*c, "snmp.txt"):
        t = read(*c, "snmp.txt")
        g = lambda key: kv(re.search(key + r": (.*)", t).group(1))
        b, a = g("run_before"), g("run_after")
        ib, ia = g("idle_2s_before"), g("idle_2s_after")
        secs = float(re.search(r"run_seconds: ([\d.]+)", t).group(1))
        n = int(re.search(r"requests: (\d+)", t).group(1))
        idle = {k: (ia[k] - ib[k]) / 2.0 for k in ia}
        sg[c] = dict(n=n, secs=secs,
                     ins=(a["InSegs"] - b["InSegs"]) / n, outs=(a["OutSegs"] - b["OutSegs"]) / n,
                     act=(a["ActiveOpens"] - b["ActiveOpens"]) / n, pas=(a["PassiveOpens"] - b["PassiveOpens"]) / n,
                     retr=(a["RetransSegs"] - b["RetransSegs"]) / n,
                     idle_ins=idle["InSegs"], idle_est=idle["InSegs"] * secs / n)
if sg:
    cc = [c for c in cols if c in sg]
    print("## 3. TCP segments per request (/proc/net/snmp delta; client, proxy and origin all on loopback)\n")
    print(hdr("per request", cc), end="")
    print("| InSegs | " + " | ".join(f"{sg[c]['ins']:.2f}" for c in cc) + " |")
    print("| OutSegs | " + " | ".join(f"{sg[c]['outs']:.2f}" for c in cc) + " |")
    print("| ActiveOpens (connect) | " + " | ".join(f"{sg[c]['act']:.3f}" for c in cc) + " |")
    print("| PassiveOpens (accept) | " + " | ".join(f"{sg[c]['pas']:.3f}" for c in cc) + " |")
    print("| RetransSegs | " + " | ".join(f"{sg[c]['retr']:.3f}" for c in cc) + " |")
    print("| idle box InSegs/s (2 s before run) | " + " | ".join(f"{sg[c]['idle_ins']:.0f}" for c in cc) + " |")
    print("| ≈ idle InSegs share per request | " + " | ".join(f"{sg[c]['idle_est']:.3f}" for c in cc) + " |")
    print("| upstream conns opened (plain / strace run) | " + " | ".join(
        "/".join(re.findall(r"(?:plain|strace) (-?\d+)", read(*c, "upstream-conns.txt"))) for c in cc) + " |")
    print()

# ------------------------------------------------------------------ threads
th = {c: len(read(*c, "threads.txt").split()) for c in cols if have(*c, "threads.txt")}
if th:
    cc = [c for c in cols if c in th]
    print("Threads of the measured process: " + ", ".join(f"{p} {m}: {th[(p, m)]}" for p, m in cc) + "\n")
