#!/usr/bin/env python3
"""cg.py CALLGRIND_FILE REQUESTS [--json OUT.json] [--top K]

Reads one callgrind output file (events: Ir, positions: line, the default of
`valgrind --tool=callgrind`) and prints, per request:
  * total user-space instructions (Ir),
  * calls to malloc / calloc / realloc / free / memalign-family (counted from the
    call edges, only calls coming from outside the allocator itself),
  * a bucket breakdown of SELF cost. Each cost line is classified by the source file it
    comes from (so code of hyper inlined into a sluice function counts as hyper); lines
    from generic code (Rust core/std/alloc, hashbrown) fall back to the function's name
    (`<hyper::..::Server as ..>::parse` -> hyper). Objects without symbols (stripped
    haproxy/nginx) are bucketed by object file (binary, libc malloc, libssl/libcrypto, ...)
  * "charged" columns: the cost of malloc/free and memcpy-family functions plus the
    malloc calls, pushed up the call graph (through Rust alloc glue and core/std
    helpers, split proportionally to the callers' call-edge costs/counts) to the first
    non-generic caller's bucket: which part of the proxy allocates / copies.
  * the top K functions by self and by inclusive cost (inclusive = self + callees'
    inclusive cost on the call edges, as callgrind_annotate --inclusive=yes computes it).
"""
import json
import re
import sys
from collections import defaultdict

ALLOC_FNS = {"malloc", "calloc", "realloc", "free", "cfree", "posix_memalign",
             "aligned_alloc", "memalign", "valloc", "pvalloc", "reallocarray"}
# jemalloc linked into the binary (tikv-jemallocator) exports prefixed entry points;
# counted as the libc names they stand for.
JEMALLOC_ENTRY = {"_rjem_malloc": "malloc", "_rjem_mallocx": "malloc", "_rjem_calloc": "calloc",
                  "_rjem_realloc": "realloc", "_rjem_rallocx": "realloc", "_rjem_free": "free",
                  "_rjem_sdallocx": "free", "_rjem_dallocx": "free",
                  "_rjem_posix_memalign": "posix_memalign", "_rjem_aligned_alloc": "aligned_alloc"}


def parse(path):
    names = {"ob": {}, "fl": {}, "fn": {}}

    def name(kind, spec):
        spec = spec.strip()
        m = re.match(r"\((\d+)\)\s?(.*)$", spec)
        if not m:
            return spec
        i, rest = m.group(1), m.group(2)
        if rest:
            if kind == "fn":
                rest = JEMALLOC_ENTRY.get(rest, rest)
            names[kind][i] = rest
            return rest
        return names[kind].get(i, "?")

    self_cost = defaultdict(int)          # (obj, fn) -> Ir
    line_cost = defaultdict(int)          # (obj, file, fn) -> Ir  (self, by source file)
    edges = {}                            # ((obj,fn),(cobj,cfn)) -> [calls, incl Ir]
    totals = None
    obj = fl = fn = None
    cur_file = None
    cob = cfn = None
    pending_calls = None
    with open(path, errors="replace") as f:
        for raw in f:
            line = raw.rstrip("\n")
            if not line:
                continue
            c = line[0]
            if c.isdigit() or c in "+-*":
                if pending_calls is not None:
                    parts = line.split()
                    cost = int(parts[1]) if len(parts) > 1 else 0
                    key = ((obj, fn), (cob if cob is not None else obj, cfn))
                    e = edges.setdefault(key, [0, 0])
                    e[0] += pending_calls
                    e[1] += cost
                    pending_calls = None
                    cob = None
                    continue
                parts = line.split()
                cost = int(parts[1]) if len(parts) > 1 else 0
                self_cost[(obj, fn)] += cost
                line_cost[(obj, cur_file, fn)] += cost
                continue
            k, _, v = line.partition("=")
            if k == "fn":
                fn = name("fn", v)
            elif k == "fl":
                fl = cur_file = name("fl", v)
            elif k in ("fi", "fe"):
                cur_file = name("fl", v)
            elif k == "ob":
                obj = name("ob", v)
            elif k == "cob":
                cob = name("ob", v)
            elif k in ("cfi", "cfl"):
                name("fl", v)
            elif k == "cfn":
                cfn = name("fn", v)
            elif k == "calls":
                pending_calls = int(v.split()[0])
            elif k in ("jfi",):
                name("fl", v)
            elif k in ("jfn",):
                name("fn", v)
            elif line.startswith("totals:"):
                totals = int(line.split()[1])
    if totals is None:
        totals = sum(self_cost.values())
    return totals, self_cost, line_cost, edges


# ---------------------------------------------------------------- classification
RE_REG = re.compile(r"/registry/src/[^/]+/([A-Za-z0-9_\-]+?)-\d+\.\d+[^/]*/(.*)$")
RE_SLUICE = re.compile(r"/crates/(sluice[a-z\-]*)/src/(.*)$")
RE_RUSTLIB = re.compile(r"/library/(core|std|alloc|proc_macro|panic_unwind)/src/(.*)$")
RE_DEPS = re.compile(r"/rust/deps/([A-Za-z0-9_\-]+?)-\d+[^/]*/")

MALLOC = "malloc/free (libc + Rust alloc glue)"
MEM = "memcpy/memmove/memset/memcmp (libc)"
STD = "Rust core/std (fmt, hash, Arc, drop, collections)"
HSRV = "hyper server conn (h1 server role, accept-side conn)"
HCLI = "hyper client (h1 client role, client conn)"
HCOM = "hyper h1 shared (dispatch/conn/io; client+server)"
HTTP = "http/httparse/bytes (header maps, parsing)"
TSCHED = "tokio scheduler/task spawn/wake"
TIO = "tokio I/O driver + TcpStream (readiness, epoll events)"
TSYNC = "tokio sync/timers"
ACCEPT = "accept (listener, socket setup)"
TLS = "TLS (rustls/ring | OpenSSL)"
METRICS = "metrics (prometheus_client, sluice metrics)"
LOG = "logging/tracing/access log"
SLUICE = "sluice proxy logic (routing, forward, conn state)"
POOL = "sluice pool"
SYS = "syscall wrappers (mio/socket2/std::net/libc)"
TIME = "time (clock_gettime, Instant)"
OTHER = "other crates (futures, arc-swap, parking_lot, ...)"
LIBC = "libc other (pthread, ...)"
BIN = "proxy binary (no symbols: all of haproxy/nginx code)"
LD = "ld.so / other libs"
UNKNOWN = "unknown"
GENERIC = {MALLOC, MEM, STD}


def fn_crate(fn):
    s = fn or ""
    # peel <&mut dyn X as Y>::f ; take the self type of trait impls
    while s.startswith("<"):
        s = s[1:]
    for p in ("&mut ", "&", "*const ", "*mut ", "dyn ", "impl "):
        while s.startswith(p):
            s = s[len(p):]
    if s.startswith("core::ptr::drop_in_place<"):
        s = s[len("core::ptr::drop_in_place<"):]
        return fn_crate(s)
    m = re.match(r"([A-Za-z_][A-Za-z0-9_]*)::", s)
    return m.group(1) if m else ""


def by_crate(crate, sub, fn):
    """crate: crate name with - or _; sub: path inside the crate's src or module path."""
    c = crate.replace("-", "_")
    fn = fn or ""
    if c == "hyper":
        if "role::Server" in fn or sub.startswith("server") or "hyper::server" in fn or "/server/" in sub:
            return HSRV
        if "role::Client" in fn or sub.startswith("client") or "hyper::client" in fn or "/client/" in sub:
            return HCLI
        return HCOM
    if c == "hyper_util":
        if "server" in sub or "hyper_util::server" in fn:
            return HSRV
        if "client" in sub or "hyper_util::client" in fn:
            return HCLI
        return HCOM
    if c in ("http", "httparse", "bytes", "itoa", "httpdate", "http_body", "http_body_util", "h2"):
        return HTTP
    if c == "tokio":
        if "net/tcp/listener" in sub or "TcpListener" in fn:
            return ACCEPT
        if sub.startswith(("runtime/io", "io/", "net/")) or "poll_evented" in sub \
                or "tokio::io" in fn or "tokio::net" in fn or "runtime::io" in fn:
            return TIO
        if sub.startswith(("sync/", "time/", "runtime/time")) or "tokio::sync" in fn or "tokio::time" in fn:
            return TSYNC
        return TSCHED
    if c in ("mio", "socket2", "nix", "libc"):
        return SYS
    if c in ("rustls", "ring", "tokio_rustls", "webpki", "rustls_webpki", "rustls_pki_types", "untrusted"):
        return TLS
    if c in ("prometheus_client", "dtoa"):
        return METRICS
    if c in ("tracing", "tracing_core", "tracing_subscriber", "tracing_log", "log",
             "nu_ansi_term", "sharded_slab", "thread_local", "matchers", "regex_automata"):
        return LOG
    if c.startswith("sluice"):
        if c == "sluice_pool":
            return POOL
        if "metrics" in sub:
            return METRICS
        if sub.startswith(("access", "logging")):
            return LOG
        if sub.startswith("listener") or "listener::" in sub:
            return ACCEPT
        if sub.startswith("clock"):
            return TIME
        if c == "sluice_net" and sub.startswith("tls"):
            return TLS
        return SLUICE
    return OTHER


def classify_generic_fn(fn):
    """Name-only classification for generic code (no crate-specific source file)."""
    fn = fn or ""
    if re.search(r"__rust_(alloc|dealloc|realloc|alloc_zeroed)|__rdl_|__rg_|alloc::alloc::|raw_vec|RawVec|finish_grow|do_reserve_and_handle|grow_one|grow_amortized", fn):
        return MALLOC
    if re.search(r"Instant|SystemTime|Timespec|clock_gettime|std::time", fn):
        return TIME
    if re.search(r"std::net::|std::sys::.*net|std::os::fd|std::sys::.*fd::", fn):
        return SYS
    cr = fn_crate(fn)
    if cr in ("core", "std", "alloc", "hashbrown", "") :
        return STD
    return by_crate(cr, fn.split("::", 1)[1] if "::" in fn else "", fn)


def classify(obj, path, fn):
    obj = obj or ""
    path = path or ""
    fn = fn or ""
    base = obj.rsplit("/", 1)[-1]
    if base.startswith("libc.so") or base.startswith("libc-"):
        if "/malloc/" in path or fn in ALLOC_FNS or re.match(r"_int_|malloc|tcache|unlink_chunk|_mid_memalign|sysmalloc|arena", fn):
            return MALLOC
        if re.match(r"__(mem|str|wmem|stp|raw)", fn) or re.match(r"(mem|str)[a-z]*$", fn) or "/string/" in path:
            return MEM
        if "clock_gettime" in fn or "gettimeofday" in fn or "/time/" in path:
            return TIME
        if re.match(r"(__libc_|__GI_|__)?(read|write|writev|readv|recv|send|recvfrom|sendto|recvmsg|sendmsg|epoll|accept|close|setsockopt|getsockopt|getsockname|getpeername|socket|connect|ioctl|fcntl|shutdown|syscall|__syscall)", fn) \
                or "sysv/linux" in path:
            return SYS
        return LIBC
    if base.startswith(("libssl", "libcrypto")):
        return TLS
    if base.startswith("vdso") or "vdso" in base:
        return TIME
    if base.startswith("ld-linux") or (base.endswith(".so") or ".so." in base):
        return LD
    if fn.startswith("_rjem_") or "jemalloc" in path:
        return MALLOC
    # the proxy's own binary
    if fn.startswith("0x") or fn in ("???", "") or (path in ("???", "") and "::" not in fn):
        return BIN if obj else UNKNOWN
    m = RE_REG.search(path)
    if m:
        return by_crate(m.group(1), m.group(2), fn)
    m = RE_SLUICE.search(path)
    if m:
        return by_crate(m.group(1), m.group(2), fn)
    m = RE_DEPS.search(path)
    if m and m.group(1) != "hashbrown":
        return by_crate(m.group(1), "", fn)
    m = RE_RUSTLIB.search(path)
    if m or RE_DEPS.search(path) or path in ("???", ""):
        if m and m.group(1) == "alloc" and (m.group(2).startswith(("raw_vec", "alloc.rs"))):
            return MALLOC
        if m and m.group(1) == "std" and m.group(2).startswith(("alloc.rs", "sys/alloc")):
            return MALLOC
        if m and m.group(1) == "std" and ("/net" in m.group(2) or "sys/fd" in m.group(2) or "/fd/" in m.group(2)):
            return SYS
        if m and m.group(1) == "std" and ("time" in m.group(2)):
            return TIME
        return classify_generic_fn(fn)
    if not path.startswith("/") and not path.startswith("."):
        return classify_generic_fn(fn)
    # a C program with symbols (nginx/haproxy with debug info) or unknown file
    return BIN


def fn_bucket(obj, fn, line_cost_of_fn):
    """The bucket a whole function belongs to, for charging: its dominant self bucket,
    or the name-based one if it has no self cost."""
    best = None
    if line_cost_of_fn:
        best = max(line_cost_of_fn.items(), key=lambda kv: kv[1])[0]
    if best is None:
        return classify(obj, "", fn)
    return best


def analyze(path, n, top=20):
    totals, self_cost, line_cost, edges = parse(path)
    # self buckets
    buckets = defaultdict(int)
    per_fn_buckets = defaultdict(lambda: defaultdict(int))
    for (obj, fl, fn), c in line_cost.items():
        b = classify(obj, fl, fn)
        buckets[b] += c
        per_fn_buckets[(obj, fn)][b] += c
    fnb = {}
    allfns = set(self_cost) | {k[0] for k in edges} | {k[1] for k in edges}
    for f in allfns:
        fnb[f] = fn_bucket(f[0], f[1], per_fn_buckets.get(f))

    # allocation call counts: edges into alloc fns from callers that are not alloc fns
    # and not libc malloc internals
    alloc_calls = defaultdict(int)
    callers_into = defaultdict(list)     # callee -> [(caller, calls, incl)]
    for (a, b), (calls, incl) in edges.items():
        callers_into[b].append((a, calls, incl))
        if b[1] in ALLOC_FNS and a[1] not in ALLOC_FNS and not re.match(r"_int_|_mid_memalign|tcache|__libc_|sysmalloc", a[1] or ""):
            alloc_calls[b[1]] += calls

    # charging: fraction vectors for generic functions over non-generic buckets
    generic = {f for f in allfns if fnb[f] in GENERIC}
    frac = {}

    def get_frac(f, depth=0, stack=()):
        if fnb[f] not in GENERIC:
            return {fnb[f]: 1.0}
        if f in frac:
            return frac[f]
        if depth > 40 or f in stack:
            return {STD: 1.0}
        acc = defaultdict(float)
        tot = 0.0
        for (a, calls, incl) in callers_into.get(f, []):
            w = float(incl) if incl > 0 else float(calls)
            if w <= 0:
                continue
            tot += w
            for b, x in get_frac(a, depth + 1, stack + (f,)).items():
                acc[b] += w * x
        if tot == 0:
            res = {fnb[f]: 1.0}
        else:
            res = {b: x / tot for b, x in acc.items()}
        frac[f] = res
        return res

    # owner view: every generic (malloc/free, mem*, core/std) instruction is charged to
    # the first non-generic caller's bucket; sums to the total
    def via_callers(f):
        acc = defaultdict(float)
        tot = 0.0
        for (a, calls, incl) in callers_into.get(f, []):
            w = float(incl) if incl > 0 else float(calls)
            if w <= 0:
                continue
            tot += w
            for b, x in get_frac(a).items():
                acc[b] += w * x
        return {b: x / tot for b, x in acc.items()} if tot else None

    charged_ir = defaultdict(float)
    for f, bs in per_fn_buckets.items():
        for bkt, c in bs.items():
            if bkt not in GENERIC:
                charged_ir[bkt] += c
            elif fnb[f] not in GENERIC:
                charged_ir[fnb[f]] += c
            else:
                fr = via_callers(f)
                if fr is None:
                    charged_ir[bkt] += c
                else:
                    for b2, x in fr.items():
                        charged_ir[b2] += c * x
    charged_malloc = defaultdict(float)  # malloc+calloc+realloc calls charged to caller buckets
    for f in allfns:
        if f[1] in ("malloc", "calloc", "realloc", "posix_memalign", "aligned_alloc", "memalign"):
            for (a, calls, incl) in callers_into.get(f, []):
                if a[1] in ALLOC_FNS or re.match(r"_int_|_mid_memalign|tcache", a[1] or ""):
                    continue
                for b, x in get_frac_calls(a, callers_into, fnb, {}).items():
                    charged_malloc[b] += calls * x

    # inclusive per function
    incl = defaultdict(int)
    for f, c in self_cost.items():
        incl[f] += c
    for (a, b), (calls, ic) in edges.items():
        if a != b:
            incl[a] += ic
    ncalls = defaultdict(int)
    for (a, b), (calls, ic) in edges.items():
        ncalls[b] += calls

    def short(f):
        nm = f[1] or "?"
        ob = (f[0] or "").rsplit("/", 1)[-1]
        return f"{nm} [{ob}]"

    res = {
        "file": path,
        "requests": n,
        "ir_total": totals,
        "ir_per_req": totals / n,
        "alloc_calls_per_req": {k: v / n for k, v in sorted(alloc_calls.items())},
        "mallocs_per_req": sum(v for k, v in alloc_calls.items() if k != "free" and k != "cfree") / n,
        "frees_per_req": (alloc_calls.get("free", 0) + alloc_calls.get("cfree", 0)) / n,
        "buckets_self_per_req": {b: c / n for b, c in sorted(buckets.items(), key=lambda kv: -kv[1])},
        "buckets_owner_per_req": {b: c / n for b, c in sorted(charged_ir.items(), key=lambda kv: -kv[1])},
        "buckets_charged_mallocs_per_req": {b: c / n for b, c in sorted(charged_malloc.items(), key=lambda kv: -kv[1])},
        "top_self": [(short(f), c / n, ncalls.get(f, 0) / n) for f, c in sorted(self_cost.items(), key=lambda kv: -kv[1])[:top]],
        "top_inclusive": [(short(f), c / n, ncalls.get(f, 0) / n) for f, c in sorted(incl.items(), key=lambda kv: -kv[1])[:top]],
        "top_malloc_callers": top_alloc_callers(callers_into, n, top),
        "top_memcpy_callers": top_callers(callers_into, n, top, r"^(__)?(memcpy|memmove|mempcpy)"),
    }
    return res


def get_frac_calls(f, callers_into, fnb, memo, depth=0, stack=()):
    """Like get_frac, but weights callers by call counts (for counting mallocs)."""
    if fnb[f] not in GENERIC:
        return {fnb[f]: 1.0}
    if f in memo:
        return memo[f]
    if depth > 40 or f in stack:
        return {STD: 1.0}
    acc = defaultdict(float)
    tot = 0.0
    for (a, calls, incl) in callers_into.get(f, []):
        if calls <= 0:
            continue
        tot += calls
        for b, x in get_frac_calls(a, callers_into, fnb, memo, depth + 1, stack + (f,)).items():
            acc[b] += calls * x
    res = {fnb[f]: 1.0} if tot == 0 else {b: x / tot for b, x in acc.items()}
    memo[f] = res
    return res


def top_callers(callers_into, n, top, pat):
    acc = defaultdict(lambda: [0, 0])
    for f, lst in callers_into.items():
        if re.match(pat, f[1] or ""):
            for (a, calls, incl) in lst:
                if re.match(pat, a[1] or ""):
                    continue
                acc[a[1]][0] += calls
                acc[a[1]][1] += incl
    return [(a, c / n, i / n) for a, (c, i) in sorted(acc.items(), key=lambda kv: -kv[1][1])[:top]]


def top_alloc_callers(callers_into, n, top):
    acc = defaultdict(int)
    for f, lst in callers_into.items():
        if f[1] in ("malloc", "calloc", "realloc", "posix_memalign", "aligned_alloc", "memalign"):
            for (a, calls, incl) in lst:
                if a[1] in ALLOC_FNS:
                    continue
                acc[(a[1], f[1])] += calls
    return [(f"{a} -> {b}", c / n) for (a, b), c in sorted(acc.items(), key=lambda kv: -kv[1])[:top]]


def main():
    args = sys.argv[1:]
    js = None
    top = 20
    if "--json" in args:
        i = args.index("--json"); js = args[i + 1]; del args[i:i + 2]
    if "--top" in args:
        i = args.index("--top"); top = int(args[i + 1]); del args[i:i + 2]
    path, n = args[0], int(args[1])
    r = analyze(path, n, top)
    if js:
        with open(js, "w") as f:
            json.dump(r, f, indent=1)
    print(f"# {path}: {n} requests")
    print(f"Ir/request: {r['ir_per_req']:.0f}")
    print(f"allocator calls/request: " + ", ".join(f"{k}={v:.1f}" for k, v in r["alloc_calls_per_req"].items()))
    print("\n| bucket | self Ir/req | self % | owner Ir/req | owner % | mallocs/req (owner) |")
    print("|---|---:|---:|---:|---:|---:|")
    allb = set(r["buckets_self_per_req"]) | set(r["buckets_owner_per_req"])
    for b in sorted(allb, key=lambda b: -r["buckets_self_per_req"].get(b, 0)):
        s = r["buckets_self_per_req"].get(b, 0)
        o = r['buckets_owner_per_req'].get(b, 0)
        print(f"| {b} | {s:,.0f} | {100 * s / r['ir_per_req']:.1f} | "
              f"{o:,.0f} | {100 * o / r['ir_per_req']:.1f} | {r['buckets_charged_mallocs_per_req'].get(b, 0):.1f} |")
    print("\ntop self:")
    for nm, c, k in r["top_self"]:
        print(f"  {c:10,.0f} Ir/req  {k:6.1f} calls/req  {nm[:160]}")
    print("\ntop inclusive:")
    for nm, c, k in r["top_inclusive"]:
        print(f"  {c:10,.0f} Ir/req  {k:6.1f} calls/req  {nm[:160]}")
    print("\ntop direct callers of memcpy/memmove (calls/req, Ir/req):")
    for nm, c, i in r["top_memcpy_callers"]:
        print(f"  {c:6.2f}/req {i:8,.0f} Ir/req  {nm[:160]}")
    print("\ntop direct callers of malloc/calloc/realloc:")
    for nm, c in r["top_malloc_callers"]:
        print(f"  {c:6.2f}/req  {nm[:170]}")


if __name__ == "__main__":
    main()
