//! The egress policy: host normalisation (including numeric IPv4 forms) and rules.
//! Invariants: normalising a normalised host changes nothing; a host that is an
//! address literal is decided by its address; a built-in range is never opened by a
//! host rule.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_policy::{builtin_denied, Host, Policy, RuleSpec, Verdict};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut parts = text.splitn(3, '\n');
    let (raw, rule, port) = (
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
        parts.next(),
    );
    let Ok(host) = Host::parse(raw) else {
        return;
    };
    let again = Host::parse(&host.to_string()).expect("a normalised host parses");
    assert_eq!(again, host, "normalisation is idempotent for {raw:?}");
    let port = port
        .and_then(|p| p.trim().parse::<u16>().ok())
        .unwrap_or(443);
    // The rule line: `host-pattern cidr port...`, `-` for none.
    let mut words = rule.split(' ');
    let word = |w: Option<&str>| w.filter(|w| *w != "-").map(str::to_string);
    let spec = RuleSpec {
        host: word(words.next()),
        cidr: word(words.next()),
        ports: words.filter_map(|p| p.parse().ok()).collect(),
    };
    let Ok(policy) = Policy::new(std::slice::from_ref(&spec), &[], false) else {
        return;
    };
    if let Some(ip) = host.ip() {
        let verdict = policy.check(&host, port, ip);
        assert_eq!(
            policy.precheck(&host, port).map(|v| v.is_allowed()),
            Some(verdict.is_allowed())
        );
        if builtin_denied(ip).is_some() && spec.cidr.is_none() {
            assert!(
                matches!(verdict, Verdict::Denied(_)),
                "{raw:?} opened a built-in range"
            );
        }
    }
});
