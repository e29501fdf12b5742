//! Client-facing listeners.

use crate::stream::ClientStream;
use sluice_config::{BindAddr, FileMode};
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use tokio::net::{TcpListener, UnixListener};

/// Who connected: a TCP peer address, or a Unix-socket peer (no address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAddr {
    Tcp(SocketAddr),
    Unix,
}

/// A bound listening socket.
#[derive(Debug)]
pub enum Listener {
    Tcp(TcpListener),
    /// The path is removed again when the listener is dropped.
    Unix(UnixListener, UnixPathGuard),
}

/// Removes a Unix socket file when dropped.
#[derive(Debug)]
pub struct UnixPathGuard(PathBuf);

impl Drop for UnixPathGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Binds a listener. A stale Unix socket file (nobody listening) is replaced; a live one
/// is an error, so two instances never steal each other's socket.
pub fn bind(addr: &BindAddr, backlog: u32, mode: Option<FileMode>) -> io::Result<Listener> {
    let backlog = i32::try_from(backlog).unwrap_or(i32::MAX);
    match addr {
        BindAddr::Tcp(sa) => {
            let domain = socket2::Domain::for_address(*sa);
            let s =
                socket2::Socket::new(domain, socket2::Type::STREAM, Some(socket2::Protocol::TCP))?;
            s.set_reuse_address(true)?;
            // Accepted sockets inherit TCP_NODELAY from the listener on Linux: set once
            // here instead of one setsockopt per client connection.
            s.set_nodelay(true)?;
            if sa.is_ipv6() {
                s.set_only_v6(true)?;
            }
            s.set_nonblocking(true)?;
            s.bind(&(*sa).into())?;
            s.listen(backlog)?;
            // Delayed ACKs from the start (like HAProxy's tcp-smart-accept): the kernel
            // then ACKs a request together with its response instead of in a segment
            // of its own; one segment less per close-per-request client. Must follow
            // listen(), which resets the socket's ACK state; accepted sockets inherit it.
            #[cfg(any(target_os = "linux", target_os = "android"))]
            s.set_quickack(false)?;
            Ok(Listener::Tcp(TcpListener::from_std(s.into())?))
        }
        BindAddr::Unix(path) => {
            if path.exists() {
                if std::os::unix::net::UnixStream::connect(path).is_ok() {
                    return Err(io::Error::new(
                        io::ErrorKind::AddrInUse,
                        format!("{} is in use by a running process", path.display()),
                    ));
                }
                std::fs::remove_file(path)?;
            }
            if let Some(dir) = path.parent() {
                if !dir.as_os_str().is_empty() {
                    std::fs::create_dir_all(dir)?;
                }
            }
            let s = socket2::Socket::new(socket2::Domain::UNIX, socket2::Type::STREAM, None)?;
            s.set_nonblocking(true)?;
            s.bind(&socket2::SockAddr::unix(path)?)?;
            let guard = UnixPathGuard(path.clone());
            s.listen(backlog)?;
            if let Some(FileMode(m)) = mode {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(m))?;
            }
            let std_listener: std::os::unix::net::UnixListener = s.into();
            Ok(Listener::Unix(UnixListener::from_std(std_listener)?, guard))
        }
    }
}

impl Listener {
    /// Accepts one client (TCP clients have TCP_NODELAY, inherited from the listener).
    pub async fn accept(&self) -> io::Result<(ClientStream, ClientAddr)> {
        match self {
            Self::Tcp(l) => {
                let (s, peer) = l.accept().await?;
                Ok((ClientStream::Tcp(s), ClientAddr::Tcp(peer)))
            }
            Self::Unix(l, _) => {
                let (s, _) = l.accept().await?;
                Ok((ClientStream::Unix(s), ClientAddr::Unix))
            }
        }
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> io::Result<BindAddr> {
        match self {
            Self::Tcp(l) => l.local_addr().map(BindAddr::Tcp),
            Self::Unix(_, g) => Ok(BindAddr::Unix(g.0.clone())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn accepted_tcp_clients_have_nodelay() {
        let listener = bind(&BindAddr::Tcp("127.0.0.1:0".parse().unwrap()), 16, None).unwrap();
        let BindAddr::Tcp(addr) = listener.local_addr().unwrap() else {
            panic!("tcp")
        };
        let _client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (stream, peer) = listener.accept().await.unwrap();
        assert!(matches!(peer, ClientAddr::Tcp(_)));
        let ClientStream::Tcp(s) = stream else {
            panic!("tcp")
        };
        assert!(
            s.nodelay().unwrap(),
            "TCP_NODELAY must be on for accepted clients"
        );
    }

    #[tokio::test]
    async fn a_live_unix_socket_is_not_stolen_and_a_stale_one_is_replaced() {
        let dir = std::env::temp_dir().join(format!("sluice-net-test-{}", std::process::id()));
        let path = dir.join("l.sock");
        let addr = BindAddr::Unix(path.clone());
        let first = bind(&addr, 16, None).unwrap();
        let err = bind(&addr, 16, None).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse);
        drop(first);
        assert!(
            !path.exists(),
            "the socket file is removed with the listener"
        );
        std::os::unix::net::UnixListener::bind(&path)
            .map(drop)
            .unwrap();
        assert!(path.exists(), "a stale socket file left by a dead process");
        let _again = bind(&addr, 16, None).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
