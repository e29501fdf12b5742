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
            if sa.is_ipv6() {
                s.set_only_v6(true)?;
            }
            s.set_nonblocking(true)?;
            s.bind(&(*sa).into())?;
            s.listen(backlog)?;
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
    /// Accepts one client; sets TCP_NODELAY on TCP clients.
    pub async fn accept(&self) -> io::Result<(ClientStream, ClientAddr)> {
        match self {
            Self::Tcp(l) => {
                let (s, peer) = l.accept().await?;
                let _ = s.set_nodelay(true);
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
