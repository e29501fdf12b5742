//! A raw-TCP origin that keeps every byte a proxy sends it: for request-smuggling
//! tests, which must show that what reached the origin can be read only one way.
//! Each connection's bytes are split into requests by [`frame`] (see
//! [`crate::strict_h1`]). A request it can frame gets `200` with `x-recorded: <n>`
//! (its number, from 1); anything else gets a `400` and the connection is closed, and
//! [`RecordingOrigin::messages`] reports why.

use parking_lot::Mutex;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use crate::strict_h1::{frame, Message};

type Conns = Arc<Mutex<Vec<Arc<Mutex<Vec<u8>>>>>>;

pub struct RecordingOrigin {
    addr: SocketAddr,
    conns: Conns,
    task: JoinHandle<()>,
}

impl RecordingOrigin {
    pub async fn start() -> RecordingOrigin {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("recording origin: bind 127.0.0.1:0: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("recording origin: local_addr: {e}"));
        let conns: Conns = Arc::default();
        let all = conns.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let bytes = Arc::new(Mutex::new(Vec::new()));
                all.lock().push(bytes.clone());
                tokio::spawn(serve(stream, bytes));
            }
        });
        RecordingOrigin { addr, conns, task }
    }

    pub fn server_spec(&self) -> String {
        self.addr.to_string()
    }

    /// The raw bytes received, per connection (in accept order).
    pub fn received(&self) -> Vec<Vec<u8>> {
        self.conns.lock().iter().map(|c| c.lock().clone()).collect()
    }

    /// Every byte received, as requests: an error names the connection and why its
    /// bytes could not be read strictly (or that bytes were left over after the last
    /// whole request, which is where a smuggled request would sit). A connection
    /// that ends inside a request (the proxy gave up on it) is not an error: its
    /// partial request is not counted, since no origin would act on it.
    pub fn messages(&self) -> Result<Vec<Message>, String> {
        let mut out = Vec::new();
        for (i, bytes) in self.received().iter().enumerate() {
            let mut at = 0;
            loop {
                match frame(&bytes[at..]) {
                    Ok(Some((m, used))) => {
                        out.push(m);
                        at += used;
                    }
                    Ok(None) => break,
                    Err(e) => return Err(format!("connection {i}, byte {at}: {e}")),
                }
            }
        }
        Ok(out)
    }
}

impl Drop for RecordingOrigin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(mut stream: tokio::net::TcpStream, bytes: Arc<Mutex<Vec<u8>>>) {
    let mut buf = Vec::new();
    let mut answered = 0usize;
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        let n = match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        bytes.lock().extend_from_slice(&chunk[..n]);
        buf.extend_from_slice(&chunk[..n]);
        loop {
            match frame(&buf) {
                Ok(Some((_, used))) => {
                    buf.drain(..used);
                    answered += 1;
                    let answer = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nx-recorded: {answered}\r\n\r\nok"
                    );
                    if stream.write_all(answer.as_bytes()).await.is_err() {
                        return;
                    }
                }
                Ok(None) => break,
                Err(_) => {
                    let _ = stream
                        .write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                        .await;
                    return;
                }
            }
        }
    }
}
