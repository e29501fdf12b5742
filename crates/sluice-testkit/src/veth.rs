//! A non-loopback address on this host, for what refuses loopback: the Kubernetes
//! API server rejects EndpointSlice addresses in 127.0.0.0/8. A veth pair the test
//! creates (needs root, as CI runs), holding one address of 198.18.0.0/15 (RFC 2544's
//! benchmarking range, never routed); the pair is deleted on drop.

use std::net::{IpAddr, Ipv4Addr};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

pub struct Veth {
    name: String,
    pub ip: IpAddr,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip {}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl Veth {
    /// Errs (with the `ip` command's message) without root.
    pub fn create() -> Result<Veth, String> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        // Interface names are at most 15 bytes; pid and counter keep parallel test
        // processes apart.
        let name = format!("slv{}x{n}", pid % 1_000_000);
        let addr = Ipv4Addr::new(198, 18, (pid % 256) as u8, (n % 254 + 1) as u8);
        let peer = format!("{name}p");
        ip(&["link", "add", &name, "type", "veth", "peer", "name", &peer])?;
        let veth = Veth {
            name: name.clone(),
            ip: IpAddr::V4(addr),
        };
        ip(&["addr", "add", &format!("{addr}/32"), "dev", &name])?;
        ip(&["link", "set", &peer, "up"])?;
        ip(&["link", "set", &name, "up"])?;
        Ok(veth)
    }
}

impl Drop for Veth {
    fn drop(&mut self) {
        // Deleting one end deletes the pair and its address.
        let _ = ip(&["link", "del", &self.name]);
    }
}
