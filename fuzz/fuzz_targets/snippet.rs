//! The `backend-config-snippet` subset. Invariants: it never fails; every line it
//! does not understand is reported verbatim, never silently dropped.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let s = sluice_k8s::parse_snippet(text);
    for raw in text.lines() {
        let line = raw.split('#').next().unwrap_or("").trim();
        let first = line.split_whitespace().next().unwrap_or("");
        match first {
            // Its options are checked one by one; bare, it sets nothing (as in HAProxy).
            "" | "default-server" | "server-defaults" => {}
            "http-reuse" => assert!(
                s.reuse.is_some() || s.ignored.iter().any(|l| l == line),
                "{line:?} neither applied nor reported: {s:?}"
            ),
            _ => assert!(
                s.ignored.iter().any(|l| l == line),
                "{line:?} not reported: {s:?}"
            ),
        }
    }
});
