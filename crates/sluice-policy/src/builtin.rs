//! The addresses a forward proxy must not reach unless told to: where an SSRF goes
//! (the host itself, the cloud metadata endpoint, the cluster's private networks),
//! and the IPv6 forms that carry an IPv4 address inside (so `::ffff:169.254.169.254`
//! is the metadata address too).

use ipnet::{Ipv4Net, Ipv6Net};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// (name, range): the name is what a denial cites.
const V4: [(&str, [u8; 4], u8); 12] = [
    ("cloud-metadata", [169, 254, 169, 254], 32),
    ("unspecified", [0, 0, 0, 0], 8),
    ("private", [10, 0, 0, 0], 8),
    ("cgnat", [100, 64, 0, 0], 10),
    ("loopback", [127, 0, 0, 0], 8),
    ("link-local", [169, 254, 0, 0], 16),
    ("private", [172, 16, 0, 0], 12),
    ("ietf-protocol", [192, 0, 0, 0], 24),
    ("private", [192, 168, 0, 0], 16),
    ("benchmarking", [198, 18, 0, 0], 15),
    ("multicast", [224, 0, 0, 0], 4),
    ("reserved-and-broadcast", [240, 0, 0, 0], 4),
];

const V6: [(&str, &str); 6] = [
    ("unspecified", "::/128"),
    ("loopback", "::1/128"),
    ("unique-local", "fc00::/7"),
    ("link-local", "fe80::/10"),
    ("site-local", "fec0::/10"),
    ("multicast", "ff00::/8"),
];

/// The built-in range `ip` falls in, as `name cidr` (e.g. `loopback 127.0.0.0/8`), or
/// of the IPv4 address it embeds (IPv4-mapped, IPv4-compatible, NAT64, 6to4).
pub fn builtin_denied(ip: IpAddr) -> Option<String> {
    match ip {
        IpAddr::V4(v4) => v4_denied(v4),
        IpAddr::V6(v6) => v6_denied(v6).or_else(|| {
            let (form, v4) = embedded_ipv4(v6)?;
            v4_denied(v4).map(|d| format!("{d} (as {form})"))
        }),
    }
}

fn v4_denied(ip: Ipv4Addr) -> Option<String> {
    V4.iter().find_map(|(name, net, len)| {
        let net = Ipv4Net::new(Ipv4Addr::from(*net), *len).ok()?;
        net.contains(&ip).then(|| format!("{name} {net}"))
    })
}

fn v6_denied(ip: Ipv6Addr) -> Option<String> {
    V6.iter().find_map(|(name, net)| {
        let net: Ipv6Net = net.parse().ok()?;
        net.contains(&ip).then(|| format!("{name} {net}"))
    })
}

/// The IPv4 address an IPv6 address carries, and the form that carries it:
/// `::ffff:a.b.c.d` (mapped), `::a.b.c.d` (compatible, deprecated but routable on
/// some stacks), `64:ff9b::a.b.c.d` (NAT64, RFC 6052), `2002:AABB:CCDD::/48` (6to4).
pub fn embedded_ipv4(ip: Ipv6Addr) -> Option<(&'static str, Ipv4Addr)> {
    let s = ip.segments();
    let low = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(("IPv4-mapped", v4));
    }
    if s[..6] == [0; 6] && (s[6] != 0 || s[7] > 1) {
        return Some(("IPv4-compatible", low));
    }
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return Some(("NAT64", low));
    }
    if s[0] == 0x2002 {
        let v4 = Ipv4Addr::new((s[1] >> 8) as u8, s[1] as u8, (s[2] >> 8) as u8, s[2] as u8);
        return Some(("6to4", v4));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn denied(ip: &str) -> Option<String> {
        builtin_denied(ip.parse().unwrap())
    }

    #[test]
    fn the_ranges_an_ssrf_aims_at_are_denied_and_named() {
        assert_eq!(
            denied("169.254.169.254").unwrap(),
            "cloud-metadata 169.254.169.254/32"
        );
        assert_eq!(denied("127.0.0.1").unwrap(), "loopback 127.0.0.0/8");
        assert_eq!(denied("10.0.0.1").unwrap(), "private 10.0.0.0/8");
        assert_eq!(denied("172.31.255.255").unwrap(), "private 172.16.0.0/12");
        assert_eq!(denied("192.168.1.1").unwrap(), "private 192.168.0.0/16");
        assert_eq!(denied("100.100.100.200").unwrap(), "cgnat 100.64.0.0/10");
        assert_eq!(denied("0.0.0.0").unwrap(), "unspecified 0.0.0.0/8");
        assert_eq!(
            denied("255.255.255.255").unwrap(),
            "reserved-and-broadcast 240.0.0.0/4"
        );
        assert_eq!(denied("239.1.1.1").unwrap(), "multicast 224.0.0.0/4");
        assert_eq!(denied("::1").unwrap(), "loopback ::1/128");
        assert_eq!(denied("fd00:ec2::254").unwrap(), "unique-local fc00::/7");
        assert_eq!(denied("fe80::1").unwrap(), "link-local fe80::/10");
        assert_eq!(denied("::").unwrap(), "unspecified ::/128");
        for public in ["93.184.215.14", "8.8.8.8", "172.32.0.1", "2606:4700::1111"] {
            assert_eq!(denied(public), None, "{public}");
        }
    }

    #[test]
    fn ipv6_forms_that_embed_a_denied_ipv4_are_denied() {
        assert_eq!(
            denied("::ffff:169.254.169.254").unwrap(),
            "cloud-metadata 169.254.169.254/32 (as IPv4-mapped)"
        );
        assert_eq!(
            denied("::127.0.0.1").unwrap(),
            "loopback 127.0.0.0/8 (as IPv4-compatible)"
        );
        assert_eq!(
            denied("64:ff9b::10.0.0.1").unwrap(),
            "private 10.0.0.0/8 (as NAT64)"
        );
        assert_eq!(
            denied("2002:a9fe:a9fe::1").unwrap(),
            "cloud-metadata 169.254.169.254/32 (as 6to4)"
        );
        assert_eq!(denied("::ffff:8.8.8.8"), None);
        assert_eq!(denied("64:ff9b::8.8.8.8"), None);
    }
}
