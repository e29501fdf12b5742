//! The traffic and the probes: keep-alive connections through sluice, and the
//! wait for a host to serve.

use super::*;

// ---------------------------------------------------------------------------------------
// HTTP: one keep-alive connection, reopened when it ends
// ---------------------------------------------------------------------------------------

pub(super) struct KeepAlive {
    pub(super) addr: SocketAddr,
    pub(super) sender: Option<SendRequest<Empty<Bytes>>>,
    /// Connections opened (the first one included).
    pub(super) connects: u64,
}

impl KeepAlive {
    pub(super) fn new(addr: SocketAddr) -> KeepAlive {
        KeepAlive {
            addr,
            sender: None,
            connects: 0,
        }
    }

    pub(super) async fn connect(&mut self) -> Result<(), BoxError> {
        let stream = TcpStream::connect(self.addr).await?;
        stream.set_nodelay(true)?;
        let (sender, conn) = http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        self.sender = Some(sender);
        self.connects += 1;
        Ok(())
    }

    /// `GET path` with `Host: host`: the status and body, or why the exchange failed.
    /// A connection found closed before the request is sent is reopened (not a
    /// failure: nothing was sent on it).
    pub(super) async fn get(&mut self, host: &str, path: &str) -> Result<(u16, Bytes), String> {
        let exchange = async {
            if self.sender.as_ref().is_none_or(|s| s.is_closed()) {
                self.connect().await.map_err(|e| format!("connect: {e}"))?;
            }
            let mut sender = self.sender.take().ok_or("no connection")?;
            if sender.ready().await.is_err() {
                self.connect().await.map_err(|e| format!("connect: {e}"))?;
                sender = self.sender.take().ok_or("no connection")?;
                sender.ready().await.map_err(|e| format!("ready: {e}"))?;
            }
            let req = http::Request::get(path)
                .header(http::header::HOST, host)
                .body(Empty::new())
                .map_err(|e| e.to_string())?;
            let resp = sender
                .send_request(req)
                .await
                .map_err(|e| format!("request: {e}"))?;
            let status = resp.status().as_u16();
            let body = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| format!("body: {e}"))?
                .to_bytes();
            self.sender = Some(sender);
            Ok((status, body))
        };
        match tokio::time::timeout(REQUEST_TIMEOUT, exchange).await {
            Ok(result) => result,
            Err(_) => {
                self.sender = None;
                Err(format!("no answer within {REQUEST_TIMEOUT:?}"))
            }
        }
    }
}

/// A small xorshift generator: no dependency for picking random hosts.
pub(super) struct Rng(u64);

impl Rng {
    pub(super) fn seeded(salt: u64) -> Rng {
        let t = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1);
        Rng((t ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15)) | 1)
    }

    pub(super) fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n.max(1) as u64) as usize
    }
}

// ---------------------------------------------------------------------------------------
// Traffic and probes
// ---------------------------------------------------------------------------------------

#[derive(Default)]
pub(super) struct Traffic {
    pub(super) total: u64,
    pub(super) failed: u64,
    /// The first few failures, as `host: what`.
    pub(super) samples: Vec<String>,
    pub(super) latencies: Vec<Duration>,
    pub(super) connects: u64,
}

impl Traffic {
    pub(super) fn add(&mut self, other: Traffic) {
        self.total += other.total;
        self.failed += other.failed;
        for s in other.samples {
            if self.samples.len() < 10 {
                self.samples.push(s);
            }
        }
        self.latencies.extend(other.latencies);
        self.connects += other.connects;
    }
}

/// One traffic connection: a request every `every` (no burst to catch up after a
/// stall) to a random serving host, until `stop`; the figures of the window after
/// `mark` is set are kept apart from those before (`[before, after]`).
pub(super) async fn traffic(
    addr: SocketAddr,
    hosts: Arc<RwLock<Vec<String>>>,
    every: Duration,
    salt: u64,
    mark: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
) -> [Traffic; 2] {
    let mut conn = KeepAlive::new(addr);
    let mut rng = Rng::seeded(salt);
    let mut out = [Traffic::default(), Traffic::default()];
    let mut next = Instant::now();
    while !stop.load(SeqCst) {
        tokio::time::sleep_until(next).await;
        next += every;
        let now = Instant::now();
        if next < now {
            next = now;
        }
        let host = {
            let h = hosts.read();
            h[rng.below(h.len())].clone()
        };
        let t = Instant::now();
        let result = conn.get(&host, "/").await;
        let w = &mut out[usize::from(mark.load(SeqCst))];
        w.total += 1;
        match result {
            Ok((200, _)) => w.latencies.push(t.elapsed()),
            Ok((status, body)) => {
                w.failed += 1;
                if w.samples.len() < 10 {
                    let body = String::from_utf8_lossy(&body);
                    w.samples.push(format!(
                        "{host}: {status} {}",
                        body.trim().replace('\n', " ")
                    ));
                }
            }
            Err(e) => {
                w.failed += 1;
                if w.samples.len() < 10 {
                    w.samples.push(format!("{host}: {e}"));
                }
            }
        }
    }
    out[1].connects = conn.connects;
    out
}

pub(super) struct Probe {
    /// Event → first 200; `None` if it never served within the deadline.
    pub(super) latency: Option<Duration>,
    /// Answers before the 200 other than 404 (no route yet), e.g. a 502.
    pub(super) odd: Vec<String>,
}

/// Polls `host` from `since` until it answers 200 (or `deadline` has passed).
pub(super) async fn probe(
    addr: SocketAddr,
    host: &str,
    since: Instant,
    deadline: Duration,
) -> Probe {
    let mut conn = KeepAlive::new(addr);
    let mut odd = Vec::new();
    loop {
        match conn.get(host, "/").await {
            Ok((200, _)) => {
                return Probe {
                    latency: Some(since.elapsed()),
                    odd,
                }
            }
            Ok((404, _)) => {}
            Ok((status, body)) => odd.push(format!(
                "{status} {}",
                String::from_utf8_lossy(&body).trim().replace('\n', " ")
            )),
            Err(e) => odd.push(e),
        }
        if since.elapsed() > deadline {
            return Probe { latency: None, odd };
        }
        tokio::time::sleep(PROBE_EVERY).await;
    }
}

/// Until every host answers 200 (checked on 8 connections, the ones still not serving
/// again every 200 ms); returns how many still do not at the deadline.
pub(super) async fn wait_all_serving(
    addr: SocketAddr,
    hosts: &[String],
    deadline: Instant,
) -> usize {
    let chunks: Vec<Vec<String>> = hosts
        .chunks(hosts.len().div_ceil(8))
        .map(<[String]>::to_vec)
        .collect();
    let tasks: Vec<_> = chunks
        .into_iter()
        .map(|mut pending| {
            tokio::spawn(async move {
                let mut conn = KeepAlive::new(addr);
                loop {
                    let mut left = Vec::new();
                    for h in pending {
                        if !matches!(conn.get(&h, "/").await, Ok((200, _))) {
                            left.push(h);
                        }
                    }
                    pending = left;
                    if pending.is_empty() || Instant::now() > deadline {
                        return pending.len();
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            })
        })
        .collect();
    let mut left = 0;
    for t in tasks {
        left += t.await.unwrap_or(usize::MAX / 16);
    }
    left
}
