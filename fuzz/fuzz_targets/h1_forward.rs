//! Whole HTTP/1.1 requests through sluice's client-side parser and body decoder, the
//! upstream head preparation and the upstream writer (the code the proxy runs for a
//! request, without its sockets). Invariant: what the origin would be sent is read by
//! an independent strict parser (`sluice-testkit`'s `strict_h1`) as exactly one
//! request, using every byte, with the body sluice read from the client.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_proxy::HeadLimits;

#[path = "../../crates/sluice-testkit/src/strict_h1.rs"]
#[allow(dead_code)]
mod strict_h1;

fuzz_target!(|data: &[u8]| {
    let Some(f) = sluice_proxy::fuzzing::forward_h1(data, &HeadLimits::default()) else {
        return;
    };
    match strict_h1::frame(&f.wire) {
        Ok(Some((m, used))) => {
            assert_eq!(
                used,
                f.wire.len(),
                "bytes after the request: {:?}",
                String::from_utf8_lossy(&f.wire)
            );
            assert_eq!(m.body, f.body, "the origin would read another body");
        }
        Ok(None) => panic!(
            "incomplete upstream request: {:?}",
            String::from_utf8_lossy(&f.wire)
        ),
        Err(e) => panic!(
            "ambiguous upstream request ({e}): {:?}",
            String::from_utf8_lossy(&f.wire)
        ),
    }
});
