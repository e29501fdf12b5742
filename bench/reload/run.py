#!/usr/bin/env python3
"""Reload cost (issue 8), all in one invocation on one machine:

1. For configs of 10 and of 10,000 routes: the time from SIGHUP to the new config
   serving (a route only the new config has answers 200; only the old one: 404), and
   the peak extra memory of the reload (VmHWM after resetting it with clear_refs,
   minus VmRSS before). REPS reloads each, medians reported.
2. req/s of `wrk` (64 keep-alive clients) against sluice with no reload, and while
   sluice reloads 10 times a second (alternating two configs, every one applied).

    bench/reload/run.py            # builds release binaries if SLUICE_BIN/ORIGIN_BIN unset

Needs wrk (scripts/scenario/reload-soak.sh and bench/run.sh install it). Prints a
markdown table for bench/RESULTS.md.
"""

import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
REPS = int(os.environ.get("REPS", "7"))
WRK_SECS = int(os.environ.get("WRK_SECS", "10"))
DEADLINE = 30.0


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def status(port, host):
    """One GET on a new connection; the status code (0 if none)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            s.sendall(f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
            head = s.recv(64).decode("latin-1")
            m = re.match(r"HTTP/1\.1 (\d+)", head)
            return int(m.group(1)) if m else 0
    except OSError:
        return 0


def wait_for(pred, what):
    end = time.monotonic() + DEADLINE
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(0.0005)
    sys.exit(f"timed out waiting for {what}")


def config(port, admin, origin, routes, extra):
    lines = [
        "log: {format: json, access_log: false}",
        f'admin: {{bind: "127.0.0.1:{admin}"}}',
        f'listeners: [{{name: egress, bind: "127.0.0.1:{port}"}}]',
        "backends:",
        f'  - {{name: app, servers: ["127.0.0.1:{origin}"]}}',
        "routes:",
        '  - {host: "bench.test", backend: app}',
    ]
    lines += [f'  - {{host: "r{i}.test", backend: app}}' for i in range(routes - 1)]
    if extra:
        lines.append('  - {host: "new.test", backend: app}')
    return "\n".join(lines) + "\n"


def proc_kib(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


class Sluice:
    def __init__(self, binary, origin, routes, work):
        self.port, self.admin = free_port(), free_port()
        self.path = os.path.join(work, f"sluice-{routes}.yaml")
        self.a = config(self.port, self.admin, origin, routes, False)
        self.b = config(self.port, self.admin, origin, routes, True)
        self.write(self.a)
        self.err = open(os.path.join(work, f"sluice-{routes}.log"), "w")
        self.proc = subprocess.Popen(
            [binary, "run", "--config", self.path], stdout=subprocess.DEVNULL, stderr=self.err
        )
        wait_for(lambda: status(self.port, "bench.test") == 200, "sluice to serve")

    def write(self, text):
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, self.path)

    def reload_to(self, text):
        self.write(text)
        os.kill(self.proc.pid, signal.SIGHUP)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self.err.close()


def reload_cost(binary, origin, routes, work):
    s = Sluice(binary, origin, routes, work)
    times, extra = [], []
    try:
        for i in range(REPS):
            to_b = i % 2 == 0
            want = 200 if to_b else 404
            with open(f"/proc/{s.proc.pid}/clear_refs", "w") as f:
                f.write("5")  # resets VmHWM to the current RSS
            before = proc_kib(s.proc.pid, "VmRSS")
            t0 = time.monotonic()
            s.reload_to(s.b if to_b else s.a)
            wait_for(lambda: status(s.port, "new.test") == want, "the new config to serve")
            times.append((time.monotonic() - t0) * 1000)
            extra.append(proc_kib(s.proc.pid, "VmHWM") - before)
        rss = proc_kib(s.proc.pid, "VmRSS")
    finally:
        s.stop()
    return statistics.median(times), max(times), statistics.median(extra), rss


def wrk(port):
    out = subprocess.run(
        ["wrk", "-t2", "-c64", f"-d{WRK_SECS}s", "-H", "Host: bench.test", f"http://127.0.0.1:{port}/"],
        capture_output=True, text=True, check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    bad = (int(errors.group(1)) if errors else 0) + (sum(map(int, sock.groups())) if sock else 0)
    return rps, bad


def under_reloads(binary, origin, work):
    s = Sluice(binary, origin, 10, work)
    try:
        quiet, quiet_bad = wrk(s.port)
        stop, count = threading.Event(), [0]

        def reloader():
            nxt = time.monotonic()
            while not stop.is_set():
                s.reload_to(s.b if count[0] % 2 == 0 else s.a)
                count[0] += 1
                nxt += 0.1
                stop.wait(max(0.0, nxt - time.monotonic()))

        t = threading.Thread(target=reloader)
        t.start()
        busy, busy_bad = wrk(s.port)
        stop.set()
        t.join()
        # Signals sent while one is pending coalesce: wait until the count settles.
        def outcomes():
            with open(s.err.name) as f:
                return sum('"config reload applied"' in line for line in f)

        applied, since = outcomes(), time.monotonic()
        end = time.monotonic() + DEADLINE
        while time.monotonic() - since < 1.0 and time.monotonic() < end:
            time.sleep(0.05)
            n = outcomes()
            if n != applied:
                applied, since = n, time.monotonic()
    finally:
        s.stop()
    return quiet, quiet_bad, busy, busy_bad, count[0], applied


def main():
    binary = os.environ.get("SLUICE_BIN")
    origin_bin = os.environ.get("ORIGIN_BIN")
    if not binary or not origin_bin:
        subprocess.run(
            ["cargo", "build", "--release", "--locked", "-p", "sluice", "-p", "sluice-testkit",
             "--bin", "sluice", "--bin", "scenario-origin"],
            cwd=ROOT, check=True,
        )
        binary = binary or os.path.join(ROOT, "target/release/sluice")
        origin_bin = origin_bin or os.path.join(ROOT, "target/release/scenario-origin")
    with tempfile.TemporaryDirectory() as work:
        origin = subprocess.Popen([origin_bin, "127.0.0.1:0"], stdout=subprocess.PIPE, text=True)
        try:
            line = origin.stdout.readline()
            oport = int(re.search(r":(\d+)", line).group(1))
            rows = []
            for routes in (10, 10_000):
                med, worst, extra, rss = reload_cost(binary, oport, routes, work)
                rows.append((routes, med, worst, extra, rss))
            quiet, qbad, busy, bbad, reloads, applied = under_reloads(binary, oport, work)
        finally:
            origin.terminate()
            origin.wait(timeout=10)
    print(f"\nreload cost (median of {REPS} reloads; SIGHUP -> the new route answers)\n")
    print("| routes | SIGHUP → serving, median | worst | peak extra RSS during reload | RSS after |")
    print("|---:|---:|---:|---:|---:|")
    for routes, med, worst, extra, rss in rows:
        print(f"| {routes:,} | {med:.1f} ms | {worst:.1f} ms | {extra:,} KiB | {rss:,} KiB |")
    print(f"\nwrk -c64 -t2 -d{WRK_SECS}s, 10 routes, same sluice process\n")
    print("| | req/s | failed | SIGHUPs sent (reloads applied) |")
    print("|---|---:|---:|---:|")
    print(f"| no reload | {quiet:,.0f} | {qbad} | 0 |")
    print(f"| 10 reloads/s | {busy:,.0f} | {bbad} | {reloads} ({applied}) |")
    print(f"\nratio under reloads: {busy / quiet:.2f}x")
    return 0 if qbad == 0 and bbad == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
