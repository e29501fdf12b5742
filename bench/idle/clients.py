#!/usr/bin/env python3
"""Idle keep-alive client connections against one proxy, and RSS of the proxy around them.

  clients.py measure --port P --pid PID --n N [...]   -> one JSON line on stdout
  clients.py report results.jsonl                     -> markdown table on stdout

`measure` (stdlib only, asyncio on raw non-blocking sockets):
 1. warm-up: --warm requests, each on a new connection, --conc at a time, so the proxy's
    upstream pool already holds as many origin connections as the open phase can need
    (the open phase has at most --conc requests in flight too) and one-off start-up
    allocations are behind us; then waits until the proxy has no client socket left;
 2. RSS before: VmRSS summed over PID and its descendants (nginx: master + worker);
 3. opens --n connections, --conc at a time; each sends ONE HTTP/1.1 keep-alive GET and
    reads the whole 200 response, then is left idle (nothing is read or written again:
    the sockets are not registered with the event loop after their response);
 4. waits --settle s, RSS after; counts the proxy-side ESTABLISHED sockets on the
    listen port (ss) as a cross-check;
 5. checks every connection without sending anything: recv(MSG_PEEK|MSG_DONTWAIT) must
    raise EAGAIN (open, idle); b"" means the proxy closed it, an error means a reset;
 6. closes them all.
Also reads the origin's stub_status accepts around the open phase (--status-url): the
number of upstream connections the proxy opened meanwhile, and counts its ESTABLISHED
connections to the origin (--origin-port) before and at the check: a pool that grew
holds more upstream connections, whose memory is then in the RSS growth.
"""
import argparse
import asyncio
import errno
import json
import os
import resource
import socket
import subprocess
import sys
import time
import urllib.request


# ------------------------------------------------------------------ /proc helpers
def tree(pid):
    """pid and its live descendants (nginx master -> worker)."""
    out = [pid]
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                for c in f.read().split():
                    out += tree(int(c))
    except FileNotFoundError:
        pass
    return out


def status(pid):
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            fields[k] = v.strip()
    return fields


def rss(pid):
    """{'total_kb', 'anon_kb', 'threads', 'procs': [{pid, name, rss_kb}]} over the tree."""
    procs, anon, threads = [], 0, 0
    for p in tree(pid):
        try:
            s = status(p)
        except FileNotFoundError:
            continue
        kb = int(s["VmRSS"].split()[0])
        anon += int(s.get("RssAnon", "0 kB").split()[0])
        threads += int(s["Threads"])
        procs.append({"pid": p, "name": s["Name"], "rss_kb": kb})
    return {"total_kb": sum(p["rss_kb"] for p in procs), "anon_kb": anon,
            "threads": threads, "procs": procs}


def established(side, port):
    """ESTABLISHED TCP sockets with source (side="sport": the proxy's end of client
    connections on its listen port) or destination ("dport": the proxy's upstream
    connections to the origin) port `port`. Asks ss (netlink): a read of /proc/net/tcp
    can list a socket twice when the table changes between its read() calls (TIME_WAIT
    entries of the previous run expire meanwhile)."""
    if not port:
        return None
    out = subprocess.run(["ss", "-Htn", "state", "established", f"( {side} = :{port} )"],
                         check=True, capture_output=True, text=True).stdout
    return sum(1 for line in out.splitlines() if line.strip())


def established_on(port):
    return established("sport", port)


def accepts(url):
    if not url:
        return None
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return int(r.read().decode().splitlines()[2].split()[0])
    except Exception:
        return None


# ------------------------------------------------------------------ HTTP/1.1 client
async def read_response(loop, sock, buf=b""):
    """Reads one response; returns (status, headers dict). Content-Length or chunked."""
    while b"\r\n\r\n" not in buf:
        chunk = await loop.sock_recv(sock, 65536)
        if not chunk:
            raise ConnectionError("EOF in response head")
        buf += chunk
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    code = int(lines[0].split()[1])
    hdrs = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    if "content-length" in hdrs:
        need = int(hdrs["content-length"])
        while len(body) < need:
            chunk = await loop.sock_recv(sock, 65536)
            if not chunk:
                raise ConnectionError("EOF in body")
            body += chunk
        if len(body) > need:
            raise ConnectionError("more bytes than Content-Length")
    elif hdrs.get("transfer-encoding", "").lower() == "chunked":
        async def more(b):
            chunk = await loop.sock_recv(sock, 65536)
            if not chunk:
                raise ConnectionError("EOF in chunked body")
            return b + chunk
        pos = 0
        while True:                       # size line, data, CRLF ... 0 CRLF (trailers) CRLF
            while b"\r\n" not in body[pos:]:
                body = await more(body)
            eol = body.index(b"\r\n", pos)
            size = int(body[pos:eol].split(b";")[0], 16)
            if size == 0:
                while b"\r\n\r\n" not in body[eol:]:   # "0" CRLF [trailers] CRLF
                    body = await more(body)
                break
            while len(body) < eol + 2 + size + 2:
                body = await more(body)
            pos = eol + 2 + size + 2
    else:
        raise ConnectionError("response without length: would need close-delimiting")
    return code, hdrs


async def one_request(loop, addr, request, timeout):
    """A new connection, one keep-alive GET, the whole response; returns the open socket."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    try:
        async def go():
            await loop.sock_connect(sock, addr)
            await loop.sock_sendall(sock, request)
            return await read_response(loop, sock)
        code, hdrs = await asyncio.wait_for(go(), timeout)
        if code != 200:
            raise ConnectionError(f"status {code}")
        if "close" in hdrs.get("connection", "").lower():
            raise ConnectionError("proxy answered Connection: close")
        return sock
    except BaseException:
        sock.close()
        raise


async def open_many(addr, request, n, conc, timeout):
    """n connections, at most conc in flight; returns (socks, errors, t_first, t_last)."""
    loop = asyncio.get_running_loop()
    sem = asyncio.Semaphore(conc)
    socks, errors, done_at = [], {}, []

    async def task():
        async with sem:
            try:
                socks.append(await one_request(loop, addr, request, timeout))
                done_at.append(time.monotonic())
            except Exception as e:  # noqa: BLE001 - every failure is counted by kind
                key = type(e).__name__ + (f": {e}" if str(e) else "")
                errors[key] = errors.get(key, 0) + 1

    await asyncio.gather(*(task() for _ in range(n)))
    return socks, errors, (min(done_at) if done_at else None), (max(done_at) if done_at else None)


def check_open(socks):
    """Sends nothing: a peek must find the socket open and idle (EAGAIN)."""
    res = {"open": 0, "eof": 0, "reset": 0, "unexpected_data": 0}
    for s in socks:
        try:
            data = s.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
            res["eof" if data == b"" else "unexpected_data"] += 1
        except BlockingIOError:
            res["open"] += 1
        except OSError as e:
            res["reset" if e.errno in (errno.ECONNRESET, errno.EPIPE) else "eof"] += 1
    return res


def wait_until(pred, deadline_s, step=0.05):
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(step)
    return pred()


# ------------------------------------------------------------------ measure
def measure(a):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:                       # the script raised it already; harmless if so
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
    if a.n + 64 > soft:
        sys.exit(f"clients.py: fd limit {soft} is too low for {a.n} connections")
    lo, hi = map(int, open("/proc/sys/net/ipv4/ip_local_port_range").read().split())
    if a.n + a.warm > (hi - lo + 1) * 0.9:
        sys.exit(f"clients.py: local port range {lo}-{hi} too narrow for {a.n}+{a.warm} connections")

    addr = (a.host, a.port)
    request = (f"GET / HTTP/1.1\r\nHost: {a.host_header}\r\n"
               f"User-Agent: sluice-idle-bench\r\nAccept: */*\r\n\r\n").encode()
    out = {"peer": a.label, "n": a.n, "conc": a.conc, "warm": a.warm, "fd_limit": soft,
           "limits": a.limits}

    # 1. warm-up, then wait (deadline) until the proxy has dropped every client socket
    socks, errs, _, _ = asyncio.run(open_many(addr, request, a.warm, a.conc, a.timeout))
    for s in socks:
        s.close()
    out["warm_ok"], out["warm_errors"] = len(socks), errs
    out["warm_drained"] = wait_until(lambda: established_on(a.port) == 0, 10)

    # 2-3. RSS before, open phase (with the origin's accept counter around it)
    out["before"] = rss(a.pid)
    out["upstream_open_before"] = established("dport", a.origin_port)
    acc0 = accepts(a.status_url)
    t0 = time.monotonic()
    socks, errs, t_first, t_last = asyncio.run(open_many(addr, request, a.n, a.conc, a.timeout))
    out["open_s"] = round(time.monotonic() - t0, 2)
    out["opened"], out["open_errors"] = len(socks), errs

    # 4. settle, RSS after, proxy-side socket count
    time.sleep(a.settle)
    out["after"] = rss(a.pid)
    acc1 = accepts(a.status_url)
    out["upstream_opened"] = (acc1 - acc0 - 1) if None not in (acc0, acc1) else None  # -1: our own stub request
    out["server_established"] = established_on(a.port)
    out["upstream_open_after"] = established("dport", a.origin_port)

    # 5. still open? (longest idle = since the first connection got its response)
    out["check"] = check_open(socks)
    out["longest_idle_s"] = round(time.monotonic() - t_first, 1) if t_first else None
    out["open_phase_spread_s"] = round(t_last - t_first, 2) if t_first else None

    # 6. close
    for s in socks:
        s.close()
    d = out["after"]["total_kb"] - out["before"]["total_kb"]
    out["delta_kb"] = d
    out["kb_per_conn"] = round(d / out["check"]["open"], 2) if out["check"]["open"] else None
    print(json.dumps(out))
    print(f'  opened {out["opened"]}/{a.n} in {out["open_s"]} s, still open {out["check"]}, '
          f'RSS {out["before"]["total_kb"]} -> {out["after"]["total_kb"]} kB = {out["kb_per_conn"]} KB/conn, '
          f'upstream conns opened meanwhile {out["upstream_opened"]}', file=sys.stderr)


# ------------------------------------------------------------------ report
def report(path):
    rows = [json.loads(l) for l in open(path) if l.strip()]
    print("| proxy | N | opened | still open at check (proxy-side ESTABLISHED) | RSS before KB "
          "| RSS after KB | Δ RSS KB | **KB / conn** | Δ RssAnon KB / conn "
          "| upstream conns: opened meanwhile; open before → at check | open phase s "
          "| longest idle at check s "
          "| client idle timeout; conn limit | measured |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        b, a, c = r["before"], r["after"], r["check"]
        anon = (a["anon_kb"] - b["anon_kb"]) / c["open"] if c["open"] else float("nan")
        names = " + ".join(p["name"] for p in a["procs"])
        bad = {k: v for k, v in c.items() if k != "open" and v}
        still = f'{c["open"]}' + (f' ({", ".join(f"{k} {v}" for k, v in bad.items())})' if bad else "")
        still += f' ({r["server_established"]})'
        kpc = f'{r["kb_per_conn"]:.2f}' if r["kb_per_conn"] is not None else "n/a"
        print(f'| {r["peer"]} | {r["n"]} | {r["opened"]} | {still} | {b["total_kb"]:,} | {a["total_kb"]:,} '
              f'| {r["delta_kb"]:,} | **{kpc}** | {anon:.2f} '
              f'| {r["upstream_opened"]}; {r.get("upstream_open_before")} → {r.get("upstream_open_after")} '
              f'| {r["open_s"]} '
              f'| {r["longest_idle_s"]} | {r.get("limits", "?")} '
              f'| {len(a["procs"])} proc ({names}), {a["threads"]} thread(s) |')
    for r in rows:
        if r["warm_errors"] or r["open_errors"]:
            print(f'\n{r["peer"]} N={r["n"]}: warm-up errors {r["warm_errors"] or "none"}, '
                  f'open-phase errors {r["open_errors"] or "none"}')
        if not r["warm_drained"]:
            print(f'\n{r["peer"]} N={r["n"]}: the warm-up connections were still open on the proxy '
                  f'side 10 s after the client closed them: RSS before may include them')
        if r["upstream_opened"] and r["upstream_opened"] > 0.05 * r["n"]:
            u0, u1 = r.get("upstream_open_before") or 0, r.get("upstream_open_after") or 0
            held = (f"{u1 - u0} more of them than before are held at the check (their memory is in the Δ)"
                    if u1 >= u0 else
                    f"it also closed the idle upstream connections it held before ({u0} → {u1}), so its "
                    f"Δ mixes the client connections with heap left behind by that upstream churn")
            print(f'\n{r["peer"]} N={r["n"]}: opened {r["upstream_opened"]} upstream connections during '
                  f'the open phase although the warm-up had filled its pool for {r["conc"]} requests in '
                  f'flight: it stopped reusing idle upstream connections as clients accumulated; '
                  f'{held}. Their TLS handshakes ran in the open phase.')


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("measure")
    m.add_argument("--host", default="127.0.0.1")
    m.add_argument("--port", type=int, required=True)
    m.add_argument("--host-header", default="api.example.test")
    m.add_argument("--pid", type=int, required=True, help="proxy PID (tree is summed)")
    m.add_argument("--n", type=int, default=8000)
    m.add_argument("--conc", type=int, default=200)
    m.add_argument("--warm", type=int, default=200)
    m.add_argument("--settle", type=float, default=2.0)
    m.add_argument("--timeout", type=float, default=10.0, help="per request, s")
    m.add_argument("--status-url", default="", help="origin stub_status URL")
    m.add_argument("--origin-port", type=int, default=0, help="to count the proxy's upstream connections")
    m.add_argument("--label", default="proxy")
    m.add_argument("--limits", default="?", help="the proxy's client idle timeout and conn limit, for the report")
    r = sub.add_parser("report")
    r.add_argument("jsonl")
    a = p.parse_args()
    measure(a) if a.cmd == "measure" else report(a.jsonl)


if __name__ == "__main__":
    main()
