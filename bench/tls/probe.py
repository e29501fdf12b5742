#!/usr/bin/env python3
"""probe.py CERT KEY PORT OUT.jsonl -- a TLS 1.3-only test server that shows what a load
generator really does: one JSON line per connection with the SNI it sent, the ALPN
protocol agreed, the TLS version, whether the session was resumed, how many HTTP/1.x
requests it sent on the connection and their Host header. It answers every HTTP/1.x
request with a 200 (keeps the connection for HTTP/1.1 unless "Connection: close", closes
it for HTTP/1.0 like the peers do for ab) and closes h2 connections after the handshake
(enough to see the ALPN). It issues TLS 1.3 session tickets (OpenSSL's default, two),
so a client that resumes sessions shows up as "reused": true. Runs until SIGTERM."""
import json, signal, socket, socketserver, ssl, sys, threading

cert, key, port, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.minimum_version = ssl.TLSVersion.TLSv1_3
ctx.load_cert_chain(cert, key)
ctx.set_alpn_protocols(["h2", "http/1.1"])
sni = threading.local()
ctx.sni_callback = lambda s, name, c: setattr(sni, "name", name)
lock = threading.Lock()
logf = open(out, "a")


class Handler(socketserver.BaseRequestHandler):
    def handle(self):
        sni.name = None
        rec = {"sni": None, "alpn": None, "version": None, "reused": None, "requests": 0, "host": None}
        try:
            s = ctx.wrap_socket(self.request, server_side=True)
            rec.update(sni=sni.name, alpn=s.selected_alpn_protocol(), version=s.version(),
                       reused=s.session_reused)
            if rec["alpn"] != "h2":
                buf = b""
                while True:
                    while b"\r\n\r\n" not in buf:
                        d = s.recv(65536)
                        if not d:
                            raise EOFError
                        buf += d
                    head, buf = buf.split(b"\r\n\r\n", 1)
                    lines = head.decode("latin-1").split("\r\n")
                    hdrs = {l.split(":", 1)[0].strip().lower(): l.split(":", 1)[1].strip()
                            for l in lines[1:] if ":" in l}
                    rec["requests"] += 1
                    rec["host"] = hdrs.get("host")
                    close = lines[0].endswith("HTTP/1.0") or hdrs.get("connection", "").lower() == "close"
                    s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
                              + (b"Connection: close\r\n" if close else b"") + b"\r\nok")
                    if close:
                        break
            try:
                s.unwrap()
            except (OSError, ValueError):
                pass
        except (OSError, EOFError, ssl.SSLError) as e:
            rec.setdefault("error", type(e).__name__)
        with lock:
            logf.write(json.dumps(rec) + "\n")
            logf.flush()


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024


srv = Server(("127.0.0.1", port), Handler)
signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=srv.shutdown).start())
srv.serve_forever()
