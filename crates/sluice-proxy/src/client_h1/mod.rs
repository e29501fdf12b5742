//! sluice's HTTP/1.1 server side, on `httparse`: request heads ([`head`]), the
//! connection's socket and request bodies ([`wire`]), and response heads and framing
//! ([`write`]). `client_respond` writes a response through them; the connection's
//! life (timers, parking, tunnels) is `client_conn`'s.
//!
//! It replaced hyper's server connection, whose per-connection setup, header map
//! round trips and buffers held for the connection's life were most of what a client
//! connection cost sluice (bench/RESULTS.md, issue 9).

pub mod head;
pub mod wire;
pub mod write;
