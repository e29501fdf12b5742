//! The YAML config: parse + validate, canonicalize, diff. Invariants: canonical form
//! is a fixed point; reordering the lists whose order has no meaning changes neither
//! the canonical form nor the diff; the canonical form written back out as YAML
//! parses to the same config.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_config::{canonical, diff, parse, same};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(config) = parse("fuzz.yaml", text) else {
        return;
    };
    let canon = canonical(&config);
    assert_eq!(canonical(&canon), canon, "canonical is a fixed point");
    let mut shuffled = config.clone();
    shuffled.routes.reverse();
    shuffled.backends.reverse();
    shuffled.listeners.reverse();
    for b in &mut shuffled.backends {
        b.servers.reverse();
    }
    assert!(same(&shuffled, &config), "order of lists is not meaning");
    assert!(
        diff(&config, &shuffled).is_empty(),
        "no diff between reorderings"
    );
    let yaml = serde_yaml_ng::to_string(&canon).expect("a parsed config serializes");
    match parse("fuzz-again.yaml", &yaml) {
        Ok(again) => assert!(same(&again, &config), "round trip changed it:\n{yaml}"),
        Err(e) => panic!("its own YAML is refused: {e}\n{yaml}"),
    }
});
