//! A DNS server for tests: answers A/AAAA queries from an in-memory map that a test
//! changes at runtime, over UDP and TCP on the same `127.0.0.1` port.
//!
//! | call | effect |
//! | --- | --- |
//! | [`TestDns::start`] | serve UDP and TCP on `127.0.0.1:0` (one port for both) |
//! | [`TestDns::addr`] | that address: give it to a resolver as its only name server |
//! | [`TestDns::set`]`(name, ips, ttl)` | replace the answers for `name` (A records from the IPv4 addresses, AAAA from the IPv6 ones, each with `ttl` seconds); the next query sees them |
//! | [`TestDns::remove`]`(name)` | forget `name`: NXDOMAIN again |
//! | [`TestDns::set_failing`]`(true)` | answer SERVFAIL to everything (until `set_failing(false)`) |
//! | [`TestDns::queries`] | DNS messages received so far (UDP and TCP, failing or not) |
//! | [`TestDns::wait_for_queries`]`(n)` | wait until at least `n` were received |
//!
//! Names match case-insensitively, with or without the trailing dot. A name never
//! [`set`](TestDns::set) (or [`removed`](TestDns::remove)) is NXDOMAIN. A known name
//! asked for a type it has no records of (AAAA when it only has IPv4 addresses, MX, ...)
//! gets an empty NOERROR answer (NODATA), so a resolver falls back from A to AAAA as
//! against a real server. Answers are authoritative; there is no SOA, so nothing
//! tells a resolver how long to cache a negative answer.
//!
//! ```no_run
//! # async fn demo() {
//! use sluice_testkit::TestDns;
//! let dns = TestDns::start().await;
//! dns.set("app.test", &["127.0.0.2".parse().unwrap()], 1);
//! let nameserver = dns.addr(); // e.g. `dns: {nameservers: ["127.0.0.1:PORT"]}`
//! # }
//! ```

use crate::wait;
use hickory_server::{
    authority::MessageResponseBuilder,
    proto::{
        op::{Header, ResponseCode},
        rr::{
            rdata::{A, AAAA},
            Name, RData, Record, RecordType,
        },
    },
    server::{Request, RequestHandler, ResponseHandler, ResponseInfo},
    ServerFuture,
};
use parking_lot::Mutex;
use std::{
    collections::HashMap,
    fmt,
    net::{IpAddr, Ipv4Addr, SocketAddr},
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering::SeqCst},
        Arc,
    },
    time::Duration,
};
use tokio::{
    net::{TcpListener, UdpSocket},
    sync::Notify,
    task::JoinHandle,
};

/// How long a TCP client may stay connected without sending a query.
const TCP_IDLE: Duration = Duration::from_secs(30);

/// A running test DNS server. Stops when dropped.
pub struct TestDns {
    state: Arc<State>,
    addr: SocketAddr,
    server_task: JoinHandle<()>,
}

#[derive(Default)]
struct State {
    names: Mutex<HashMap<String, Answer>>,
    failing: AtomicBool,
    queries: AtomicU64,
    changed: Notify,
}

#[derive(Debug, Clone)]
struct Answer {
    ips: Vec<IpAddr>,
    ttl: u32,
}

impl TestDns {
    /// Binds UDP and TCP on one `127.0.0.1` port and starts answering (NXDOMAIN for
    /// everything until [`TestDns::set`]).
    pub async fn start() -> TestDns {
        let (udp, tcp) = bind_pair().await;
        let addr = udp.local_addr().expect("test DNS local addr");
        let state = Arc::new(State::default());
        let mut server = ServerFuture::new(Handler(state.clone()));
        server.register_socket(udp);
        server.register_listener(tcp, TCP_IDLE);
        // Owning the server in a task: aborting the task drops it, which aborts every
        // socket task it spawned.
        let server_task = tokio::spawn(async move {
            let _ = server.block_until_done().await;
        });
        TestDns {
            state,
            addr,
            server_task,
        }
    }

    /// The address both UDP and TCP listen on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Replaces the answers for `name`: an A record per IPv4 address and an AAAA record
    /// per IPv6 address in `ips`, each with `ttl` seconds. An empty `ips` makes the
    /// name exist with no addresses (NODATA). Takes effect for the next query.
    pub fn set(&self, name: &str, ips: &[IpAddr], ttl: u32) {
        self.state.names.lock().insert(
            normalize(name),
            Answer {
                ips: ips.to_vec(),
                ttl,
            },
        );
    }

    /// Forgets `name`: queries for it get NXDOMAIN again.
    pub fn remove(&self, name: &str) {
        self.state.names.lock().remove(&normalize(name));
    }

    /// While `true`, every query is answered SERVFAIL.
    pub fn set_failing(&self, failing: bool) {
        self.state.failing.store(failing, SeqCst);
    }

    /// DNS messages received so far, over UDP and TCP (a resolver retrying over TCP,
    /// or asking A then AAAA, sends more than one per lookup).
    pub fn queries(&self) -> u64 {
        self.state.queries.load(SeqCst)
    }

    /// Waits (at most [`wait::DEFAULT_WAIT`]) until at least `n` queries have been
    /// received; panics otherwise.
    pub async fn wait_for_queries(&self, n: u64) {
        if !wait::until(&self.state.changed, wait::DEFAULT_WAIT, || {
            self.queries() >= n
        })
        .await
        {
            panic!(
                "test DNS received {} queries within {:?}, expected at least {n}",
                self.queries(),
                wait::DEFAULT_WAIT
            );
        }
    }
}

impl fmt::Debug for TestDns {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestDns")
            .field("addr", &self.addr)
            .field("names", &*self.state.names.lock())
            .field("failing", &self.state.failing.load(SeqCst))
            .field("queries", &self.queries())
            .finish()
    }
}

impl Drop for TestDns {
    fn drop(&mut self) {
        self.server_task.abort();
    }
}

/// A UDP socket and a TCP listener on the same `127.0.0.1` port (port 0 picks the UDP
/// one; the TCP port of that number is almost always free, else try another).
async fn bind_pair() -> (UdpSocket, TcpListener) {
    let any_port = SocketAddr::new(Ipv4Addr::LOCALHOST.into(), 0);
    for _ in 0..20 {
        let udp = UdpSocket::bind(any_port)
            .await
            .expect("bind test DNS on 127.0.0.1:0/udp");
        let addr = udp.local_addr().expect("test DNS local addr");
        if let Ok(tcp) = TcpListener::bind(addr).await {
            return (udp, tcp);
        }
    }
    panic!("no 127.0.0.1 port was free for both UDP and TCP");
}

/// Lowercase, without the trailing dot.
fn normalize(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

struct Handler(Arc<State>);

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        let state = &self.0;
        state.queries.fetch_add(1, SeqCst);
        state.changed.notify_waiters();

        let builder = MessageResponseBuilder::from_message_request(request);
        let sent = if state.failing.load(SeqCst) {
            let response = builder.error_msg(request.header(), ResponseCode::ServFail);
            response_handle.send_response(response).await
        } else if let Ok(info) = request.request_info() {
            let query = info.query.original();
            let answer = state
                .names
                .lock()
                .get(&normalize(&query.name().to_ascii()))
                .cloned();
            let mut header = Header::response_from_request(request.header());
            header.set_authoritative(true);
            header.set_recursion_available(true);
            let records = match answer {
                None => {
                    header.set_response_code(ResponseCode::NXDomain);
                    Vec::new()
                }
                Some(answer) => records(query.name(), query.query_type(), &answer),
            };
            let response = builder.build(header, records.iter(), None, None, None);
            response_handle.send_response(response).await
        } else {
            // Not exactly one query in the message.
            let response = builder.error_msg(request.header(), ResponseCode::FormErr);
            response_handle.send_response(response).await
        };
        sent.unwrap_or_else(|_| {
            let mut header = Header::response_from_request(request.header());
            header.set_response_code(ResponseCode::ServFail);
            header.into()
        })
    }
}

/// The records of `answer` that match the query type (A or AAAA; nothing for others).
fn records(name: &Name, query_type: RecordType, answer: &Answer) -> Vec<Record> {
    answer
        .ips
        .iter()
        .filter_map(|ip| match (ip, query_type) {
            (IpAddr::V4(v4), RecordType::A) => Some(RData::A(A(*v4))),
            (IpAddr::V6(v6), RecordType::AAAA) => Some(RData::AAAA(AAAA(*v6))),
            _ => None,
        })
        .map(|rdata| Record::from_rdata(name.clone(), answer.ttl, rdata))
        .collect()
}
