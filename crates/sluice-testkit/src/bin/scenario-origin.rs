//! `scenario-origin`: a tiny HTTP/1.1 keep-alive origin for the shell scenarios in
//! `scripts/scenario/` (e.g. `port-exhaustion.sh`).
//!
//! ```text
//! scenario-origin ADDR [--tls CERT_PEM KEY_PEM [--h2]] [--delay-ms N]
//! ```
//!
//! * Listens on `ADDR` (`ip:port`, port 0 allowed) and prints `listening on <addr>` once
//!   bound (flushed), so a script can wait for that line.
//! * Answers every request `200 ok`; `/stats` answers `open=<n> peak_open=<n>
//!   accepted=<n> requests=<n>`; `/drip/<N>?size=<S>&every=<ms>` streams N chunks of S
//!   bytes (default 1024), the first at once, then one every `ms` (default 100), with
//!   `Content-Length: N*S` (a slow streaming response; `reload-soak.sh` holds 100 open).
//! * Never closes a connection first: keep-alive on, no header-read timeout, no
//!   request limit. Whoever closes first gets the TIME_WAIT, and in the scenarios that
//!   must be the client.
//! * `--delay-ms N` waits N ms before answering each request (a slow server, for
//!   `bench/balance/`).
//! * `--tls` serves HTTPS (TLS 1.2/1.3, ALPN `http/1.1`) with the given PEM files;
//!   with `--h2`, HTTP/2 only (ALPN `h2`), for an HTTP/2 upstream (`soak.sh`).
//!
//! Counting: `accepted` counts every accepted TCP connection; `open`/`peak_open` count
//! only connections that have carried at least one request other than `/stats`, so the
//! script asking for the numbers does not disturb them. `requests` excludes `/stats`.

use bytes::Bytes;
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, Full};
use hyper::{body::Incoming, server::conn::http1, service::service_fn, Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use sluice_testkit::body::Drip;
use std::{
    convert::Infallible,
    error::Error,
    io::Write,
    net::SocketAddr,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering::SeqCst},
        Arc,
    },
};
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::TcpListener,
};
use tokio_rustls::{
    rustls::{
        self,
        pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer},
    },
    TlsAcceptor,
};

type BoxError = Box<dyn Error + Send + Sync>;

const USAGE: &str = "usage: scenario-origin ADDR [--tls CERT_PEM KEY_PEM [--h2]] [--delay-ms N]";

#[derive(Default)]
struct Stats {
    open: AtomicU64,
    peak_open: AtomicU64,
    accepted: AtomicU64,
    requests: AtomicU64,
}

impl Stats {
    fn render(&self) -> String {
        format!(
            "open={} peak_open={} accepted={} requests={}\n",
            self.open.load(SeqCst),
            self.peak_open.load(SeqCst),
            self.accepted.load(SeqCst),
            self.requests.load(SeqCst),
        )
    }
}

/// One accepted connection: counted in `open` from its first application request
/// until it ends (the guard is dropped however the connection ends).
struct ConnGuard {
    stats: Arc<Stats>,
    counted: AtomicBool,
}

impl ConnGuard {
    fn count(&self) {
        if !self.counted.swap(true, SeqCst) {
            let now = self.stats.open.fetch_add(1, SeqCst) + 1;
            self.stats.peak_open.fetch_max(now, SeqCst);
        }
    }
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        if *self.counted.get_mut() {
            self.stats.open.fetch_sub(1, SeqCst);
        }
    }
}

struct Args {
    addr: SocketAddr,
    tls: Option<(String, String)>,
    h2: bool,
    delay: std::time::Duration,
}

fn parse_args() -> Result<Args, BoxError> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().ok_or(USAGE)?;
    if addr == "-h" || addr == "--help" {
        println!("{USAGE}");
        std::process::exit(0);
    }
    let addr: SocketAddr = addr
        .parse()
        .map_err(|e| format!("bad ADDR {addr:?}: {e}\n{USAGE}"))?;
    let mut tls = None;
    let mut delay = std::time::Duration::ZERO;
    let mut h2 = false;
    while let Some(flag) = args.next() {
        match flag.as_str() {
            "--h2" => h2 = true,
            "--tls" => {
                let cert = args.next().ok_or(USAGE)?;
                let key = args.next().ok_or(USAGE)?;
                tls = Some((cert, key));
            }
            "--delay-ms" => {
                let ms: u64 = args
                    .next()
                    .ok_or(USAGE)?
                    .parse()
                    .map_err(|e| format!("bad --delay-ms: {e}\n{USAGE}"))?;
                delay = std::time::Duration::from_millis(ms);
            }
            other => return Err(format!("unexpected argument {other:?}\n{USAGE}").into()),
        }
    }
    if h2 && tls.is_none() {
        return Err(format!("--h2 needs --tls\n{USAGE}").into());
    }
    Ok(Args {
        addr,
        tls,
        h2,
        delay,
    })
}

fn tls_acceptor(cert: &str, key: &str, h2: bool) -> Result<TlsAcceptor, BoxError> {
    let certs = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("{cert}: {e}"))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{cert}: {e}"))?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("{key}: {e}"))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![if h2 {
        b"h2".to_vec()
    } else {
        b"http/1.1".to_vec()
    }];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

fn text(body: String) -> UnsyncBoxBody<Bytes, Infallible> {
    Full::new(Bytes::from(body)).boxed_unsync()
}

async fn serve<S>(stream: S, stats: Arc<Stats>, delay: std::time::Duration, h2: bool)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let guard = Arc::new(ConnGuard {
        stats: stats.clone(),
        counted: AtomicBool::new(false),
    });
    let service = service_fn(move |req: Request<Incoming>| {
        let guard = guard.clone();
        async move {
            let path = req.uri().path();
            if path == "/stats" {
                return Ok::<_, Infallible>(Response::new(text(guard.stats.render())));
            }
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            guard.count();
            guard.stats.requests.fetch_add(1, SeqCst);
            let drip = path
                .strip_prefix("/drip/")
                .and_then(|n| n.parse::<u64>().ok());
            // The request body (if any) is not read; hyper drains or closes as needed.
            Ok(Response::new(match drip {
                Some(chunks) => Drip::from_query(chunks, req.uri().query()).boxed_unsync(),
                None => text("ok\n".to_owned()),
            }))
        }
    });
    if h2 {
        let builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
        let _ = builder
            .serve_connection(TokioIo::new(stream), service)
            .await;
        return;
    }
    let mut builder = http1::Builder::new();
    // Keep-alive, and no timer so no header-read timeout: the client always closes first.
    builder.keep_alive(true).header_read_timeout(None);
    // Errors here are the client resetting or vanishing: nothing to report.
    let _ = builder
        .serve_connection(TokioIo::new(stream), service)
        .await;
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let args = parse_args()?;
    let acceptor = match &args.tls {
        Some((cert, key)) => Some(tls_acceptor(cert, key, args.h2)?),
        None => None,
    };
    let listener = TcpListener::bind(args.addr)
        .await
        .map_err(|e| format!("bind {}: {e}", args.addr))?;
    let local = listener.local_addr()?;
    {
        let mut out = std::io::stdout().lock();
        let scheme = if acceptor.is_some() { "https" } else { "http" };
        writeln!(out, "listening on {local} ({scheme})")?;
        out.flush()?;
    }
    let stats = Arc::new(Stats::default());
    loop {
        let (stream, _peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // EMFILE and friends: report and keep serving.
                eprintln!("accept: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        stats.accepted.fetch_add(1, SeqCst);
        let _ = stream.set_nodelay(true);
        let stats = stats.clone();
        match &acceptor {
            None => {
                tokio::spawn(serve(stream, stats, args.delay, false));
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                let (delay, h2) = (args.delay, args.h2);
                tokio::spawn(async move {
                    if let Ok(tls) = acceptor.accept(stream).await {
                        serve(tls, stats, delay, h2).await;
                    }
                });
            }
        }
    }
}
