//! The client side's HTTP/1.1 head parser, under limits taken from the input.
//! Invariants (checked inside `forward_h1`'s use of it, and here): no panic; an
//! accepted head names one framing and at most one Content-Length value; the parser
//! never consumes past its input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_proxy::HeadLimits;

fuzz_target!(|data: &[u8]| {
    let (limits, input) = match data {
        [a, b, c, rest @ ..] => (
            HeadLimits {
                line: 64 + usize::from(*a) * 64,
                head: 1024 + usize::from(*b) * 256,
                headers: 1 + usize::from(*c),
            },
            rest,
        ),
        _ => return,
    };
    let Some(f) = sluice_proxy::fuzzing::forward_h1(input, &limits) else {
        return;
    };
    assert!(f.used <= input.len());
    let wire = String::from_utf8_lossy(&f.wire).to_ascii_lowercase();
    let head = wire.split("\r\n\r\n").next().unwrap_or_default();
    let lengths = head.matches("\r\ncontent-length:").count();
    let chunked = head.matches("\r\ntransfer-encoding:").count();
    assert!(
        lengths <= 1 && chunked <= 1 && lengths + chunked <= 1,
        "{head}"
    );
});
