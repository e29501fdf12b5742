//! The TCP sockets of this network namespace (`/proc/net/tcp`, `/proc/net/tcp6`), and
//! how many local ports each destination holds: ESTABLISHED ones, and the TIME_WAIT
//! ones a closed connection leaves behind for 60 s.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

pub const ESTABLISHED: u8 = 0x01;
pub const TIME_WAIT: u8 = 0x06;
pub const LISTEN: u8 = 0x0A;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Socket {
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub state: u8,
    /// `rx_queue`: for a listening socket, the connections waiting to be accepted.
    pub queued: u64,
}

/// Every socket listed in both tables (a missing table, say without IPv6, is empty).
pub fn all() -> Vec<Socket> {
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .flat_map(|text| parse(&text))
        .collect()
}

/// The rows of one table; the header and lines that do not parse are skipped.
pub fn parse(text: &str) -> Vec<Socket> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let mut f = line.split_whitespace();
            let (_, local, remote, state) = (f.next()?, f.next()?, f.next()?, f.next()?);
            let queues = f.next().unwrap_or("0:0");
            let rx = queues.split_once(':').map_or("0", |(_, rx)| rx);
            Some(Socket {
                local: addr(local)?,
                remote: addr(remote)?,
                state: u8::from_str_radix(state, 16).ok()?,
                queued: u64::from_str_radix(rx, 16).unwrap_or(0),
            })
        })
        .collect()
}

/// `0100007F:1F90` (IPv4) or 32 hex digits and a port (IPv6). The kernel prints each
/// 32-bit word of the address as a number in the host's byte order; the port is
/// printed as the number it is.
fn addr(s: &str) -> Option<SocketAddr> {
    let (ip, port) = s.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let word = |i: usize| -> Option<[u8; 4]> {
        let w = u32::from_str_radix(ip.get(i * 8..i * 8 + 8)?, 16).ok()?;
        Some(w.to_ne_bytes())
    };
    let ip = match ip.len() {
        8 => IpAddr::V4(Ipv4Addr::from(word(0)?)),
        32 => {
            let mut b = [0u8; 16];
            for i in 0..4 {
                b[i * 4..i * 4 + 4].copy_from_slice(&word(i)?);
            }
            let v6 = Ipv6Addr::from(b);
            // A v4 peer of a dual-stack socket: the same destination as its v4 form.
            v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4)
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// Local ports a destination holds.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Held {
    pub established: u64,
    pub time_wait: u64,
}

impl Held {
    pub fn ports(&self) -> u64 {
        self.established + self.time_wait
    }
}

/// Outgoing connections by destination: those whose local port is in the ephemeral
/// range `lo..=hi` and not a listening port (a listener bound to port 0 takes its port
/// from that range too, and the connections it accepted are not outgoing).
pub fn by_destination(sockets: &[Socket], (lo, hi): (u16, u16)) -> BTreeMap<SocketAddr, Held> {
    let listening: std::collections::BTreeSet<u16> = sockets
        .iter()
        .filter(|s| s.state == LISTEN)
        .map(|s| s.local.port())
        .collect();
    let mut out: BTreeMap<SocketAddr, Held> = BTreeMap::new();
    let outgoing =
        |s: &&Socket| (lo..=hi).contains(&s.local.port()) && !listening.contains(&s.local.port());
    for s in sockets.iter().filter(outgoing) {
        let held = out.entry(s.remote).or_default();
        match s.state {
            ESTABLISHED => held.established += 1,
            TIME_WAIT => held.time_wait += 1,
            _ => {}
        }
    }
    out.retain(|_, h| h.ports() > 0);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_net_tcp_rows_parse_and_group_by_destination() {
        let v4 = "  sl  local_address rem_address   st tx_queue\n\
           0: 00000000:07E8 00000000:0000 0A 00000000:00000000\n\
           1: 0100007F:9C40 0100007F:01BB 01 00000000:00000000\n\
           2: 0100007F:9C41 0100007F:01BB 06 00000000:00000000\n\
           3: 0100007F:01BB 0100007F:9C40 01 00000000:00000000\n\
           4: 0100007F:9C50 00000000:0000 0A 00000000:0000000C\n\
           5: 0100007F:9C50 0100007F:C350 01 00000000:00000000\n";
        let socks = parse(v4);
        assert_eq!(socks.len(), 6);
        assert_eq!(socks[4].queued, 12, "a listener's accept queue");
        assert_eq!(socks[1].local, "127.0.0.1:40000".parse().unwrap());
        assert_eq!(socks[1].remote, "127.0.0.1:443".parse().unwrap());
        let d = by_destination(&socks, (40000, 40099));
        let held = d[&"127.0.0.1:443".parse().unwrap()];
        assert_eq!((held.established, held.time_wait), (1, 1));
        assert_eq!(
            d.len(),
            1,
            "listeners and what they accepted (even on a port of the range) are not outgoing"
        );
        // ::ffff:127.0.0.1 as a v6 row.
        let v6 = "header\n 0: 0000000000000000FFFF00000100007F:9C42 0000000000000000FFFF00000100007F:01BB 06 0\n";
        assert_eq!(parse(v6)[0].remote, "127.0.0.1:443".parse().unwrap());
    }
}
