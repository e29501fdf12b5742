//! Live reload, the config side (issue 8, interface in `reload-spec.md`): a reload that
//! only edits routes takes effect at the next request and opens no upstream connection;
//! a reordered config is `unchanged`; a bad config (by SIGHUP, `POST /reload` or the file
//! watch) is rejected with file, field and reason everywhere it is reported while the old
//! config keeps serving; and the file watch follows an atomic rename. The live-traffic
//! side (streams, removed backends, listeners) is in `reload_live.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::reload_support;

use reload_support::{
    backend, changed, config, generation, metric_sum, reload_expecting, tls_origin, EGRESS, SLUICE,
};
use sluice_testkit::{
    check_config, get, serde_json::Value as Json, Certs, Origin, ReloadCounts, Sluice,
};

/// Edits one route from backend `a` to `b`: the next request goes to `b`, and as both
/// backends are unchanged their pools survive: neither origin sees a new connection, and
/// sluice opens none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_that_edits_a_route_moves_the_next_request_and_opens_no_connection() {
    let certs = Certs::new(&["127.0.0.1"]);
    let (a, b) = (tls_origin(&certs).await, tls_origin(&certs).await);
    let backends = [
        backend("a", &[&a], &certs, ""),
        backend("b", &[&b], &certs, ""),
    ];
    let before = config(
        "",
        &[EGRESS],
        &[
            r#"{host: "edit.test", backend: a}"#,
            r#"{host: "keep.test", backend: a}"#,
            r#"{host: "b.test", backend: b}"#,
        ],
        &backends,
    );
    let after = before.replace(
        r#"{host: "edit.test", backend: a}"#,
        r#"{host: "edit.test", backend: b}"#,
    );
    let sluice = Sluice::start(SLUICE, &before).await;
    let egress = sluice.listener_addr("egress");

    // Warm both pools, and see edit.test on a.
    for host in ["edit.test", "keep.test", "b.test"] {
        assert_eq!(get(egress, host, "/").await.status, 200, "{host}");
    }
    assert_eq!((a.requests(), b.requests()), (2, 1));
    let accepted = (a.accepted(), b.accepted());
    let opened = metric_sum(&sluice, "sluice_upstream_connections_opened_total").await;
    assert!(opened >= 2.0, "both pools were used: opened {opened}");

    sluice.write_config(&after);
    let answer = reload_expecting(&sluice, 200, "applied").await;
    assert_eq!(answer["generation"], 2, "{answer}");
    assert_eq!(changed(&answer, "routes", "changed"), ["edit.test/"]);
    for what in ["added", "removed", "changed"] {
        assert!(
            changed(&answer, "backends", what).is_empty(),
            "no backend {what}: {answer}"
        );
    }
    assert_eq!(answer["changes"]["pools"]["kept"], 2, "{answer}");
    assert_eq!(answer["changes"]["pools"]["added"], 0, "{answer}");

    let r = get(egress, "edit.test", "/").await;
    assert_eq!(r.status, 200);
    assert_eq!(
        (a.requests(), b.requests()),
        (2, 2),
        "the next edit.test request went to b"
    );
    assert_eq!(get(egress, "keep.test", "/").await.status, 200);
    assert_eq!(a.requests(), 3, "keep.test still goes to a");
    assert_eq!(
        (a.accepted(), b.accepted()),
        accepted,
        "no origin saw a new connection across the reload"
    );
    assert_eq!(
        metric_sum(&sluice, "sluice_upstream_connections_opened_total").await,
        opened,
        "a route-only reload opens no upstream connection"
    );
    assert_eq!(generation(&sluice).await, 2);
    sluice
        .wait_for_log("config reload applied", |e| {
            e["fields"]["trigger"] == "admin" && e["fields"]["generation"] == 2
        })
        .await;
}

/// A small deterministic shuffle (no RNG crate): rotate by `seed`, reverse on odd seeds.
fn shuffled<T: Clone>(items: &[T], seed: usize) -> Vec<T> {
    let mut v = items.to_vec();
    let len = v.len();
    v.rotate_left(seed % len);
    if seed % 2 == 1 {
        v.reverse();
    }
    v
}

/// The same config written in `seed`-dependent ways: routes, backends, servers and
/// listeners in another order, map keys in another order, defaults written out or left
/// implicit. Every variant has the same canonical form.
fn reordered(seed: usize, o1: &Origin, o2: &Origin, certs: &Certs) -> String {
    let explicit = |i: usize| (seed + i) % 2 == 1;
    let listeners = [
        ("egress", "127.0.0.1:0"),
        ("second", "127.0.0.2:0"),
        ("third", "127.0.0.3:0"),
    ];
    let listeners: Vec<String> = listeners
        .iter()
        .enumerate()
        .map(|(i, (name, bind))| {
            if explicit(i) {
                format!(r#"{{bind: "{bind}", keepalive_timeout: 60s, name: {name}}}"#)
            } else {
                format!(r#"{{name: {name}, bind: "{bind}"}}"#)
            }
        })
        .collect();
    let routes = [
        ("a.test", "/", "a"),
        ("a.test", "/v2", "b"),
        ("b.test", "/", "b"),
        ("*", "/", "c"),
    ];
    let routes: Vec<String> = routes
        .iter()
        .enumerate()
        .map(
            |(i, (host, prefix, backend))| match (explicit(i), *prefix) {
                (false, "/") => format!(r#"{{host: "{host}", backend: {backend}}}"#),
                _ => format!(r#"{{backend: {backend}, path_prefix: "{prefix}", host: "{host}"}}"#),
            },
        )
        .collect();
    let ca = certs.ca_file().display().to_string();
    let (s1, s2) = (o1.server_spec(), o2.server_spec());
    let backends = [
        ("a", vec![&s1, &s2]),
        ("b", vec![&s2, &s1]),
        ("c", vec![&s1]),
    ];
    let backends: Vec<String> = backends
        .iter()
        .enumerate()
        .map(|(i, (name, servers))| {
            let servers = shuffled(servers, seed + i)
                .iter()
                .map(|s| format!("\"{s}\""))
                .collect::<Vec<_>>()
                .join(", ");
            if explicit(i) {
                format!(
                    "  - tls: {{verify: true, ca_file: \"{ca}\"}}\n    servers: [{servers}]\n    name: {name}\n    \
                     balance: least_request\n    protocol: http1\n    \
                     timeouts: {{response: 30s, connect: 2s}}\n    \
                     pool: {{idle_timeout: 60s, max_idle_per_server: 64}}\n"
                )
            } else {
                format!("  - name: {name}\n    servers: [{servers}]\n    tls: {{ca_file: \"{ca}\"}}\n")
            }
        })
        .collect();
    let listeners = shuffled(&listeners, seed);
    let routes = shuffled(&routes, seed + 1);
    let listeners: Vec<&str> = listeners.iter().map(String::as_str).collect();
    let routes: Vec<&str> = routes.iter().map(String::as_str).collect();
    config("", &listeners, &routes, &shuffled(&backends, seed + 2))
}

/// Ten reorderings of the running config, reloaded by `POST /reload` and one by SIGHUP:
/// every one is `unchanged`, and the generation stays 1 in the answer, in `GET /config`
/// and in the log; the metric counts them as unchanged and nothing as applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reordered_config_is_unchanged_and_keeps_the_generation() {
    let certs = Certs::new(&["127.0.0.1"]);
    let (o1, o2) = (tls_origin(&certs).await, tls_origin(&certs).await);
    let sluice = Sluice::start(SLUICE, &reordered(0, &o1, &o2, &certs)).await;
    let egress = sluice.listener_addr("egress");
    assert_eq!(get(egress, "a.test", "/").await.status, 200);
    assert_eq!(
        sluice.reload_counts().await,
        ReloadCounts {
            applied: 0.0,
            unchanged: 0.0,
            rejected: 0.0
        },
        "all three series exist from start"
    );

    for seed in 1..=10 {
        let yaml = reordered(seed, &o1, &o2, &certs);
        assert_ne!(yaml, reordered(seed - 1, &o1, &o2, &certs), "a new text");
        sluice.write_config(&yaml);
        let answer = reload_expecting(&sluice, 200, "unchanged").await;
        assert_eq!(answer["generation"], 1, "variant {seed}: {answer}");
    }
    sluice.write_config(&reordered(11, &o1, &o2, &certs));
    let event = sluice.sighup_and_wait().await;
    assert_eq!(
        event["fields"]["message"], "config reload unchanged",
        "{event}"
    );
    assert_eq!(event["fields"]["trigger"], "sighup", "{event}");
    assert_eq!(event["fields"]["generation"], 1, "{event}");

    let config = sluice.admin_get_json("/config").await;
    assert_eq!(config["generation"], 1, "{config}");
    assert_eq!(config["last_reload"]["result"], "unchanged", "{config}");
    assert_eq!(config["last_reload"]["error"], Json::Null, "{config}");
    assert_eq!(
        sluice.reload_counts().await,
        ReloadCounts {
            applied: 0.0,
            unchanged: 11.0,
            rejected: 0.0
        }
    );
    assert_eq!(sluice.metric("sluice_config_generation").await, Some(1.0));
    assert_eq!(get(egress, "a.test", "/").await.status, 200);
}

/// A config that fails validation: the only route names a backend that does not exist.
fn bad_config(good: &str) -> String {
    good.replace(
        r#"{host: "*", backend: app}"#,
        r#"{host: "*", backend: missing}"#,
    )
}

/// Starts sluice on one backend `app` (with `top` sections), checks it serves, writes a
/// bad config over its file, and returns it with what `sluice check` says about that
/// file (the error every report of the rejection must carry).
async fn serving_then_bad_config(origin: &Origin, certs: &Certs, top: &str) -> (Sluice, String) {
    let good = config(
        top,
        &[EGRESS],
        &[r#"{host: "*", backend: app}"#],
        &[backend("app", &[origin], certs, "")],
    );
    let sluice = Sluice::start(SLUICE, &good).await;
    assert_eq!(
        get(sluice.listener_addr("egress"), "app.test", "/")
            .await
            .status,
        200
    );
    sluice.write_config(&bad_config(&good));
    let (valid, verdict) = check_config(SLUICE, sluice.config_path());
    assert!(!valid, "the bad config passes `sluice check`: {verdict}");
    (sluice, verdict)
}

/// The rejection is reported everywhere with the file, the field and the reason, and
/// the old config still serves. `event` is the rejection's log event; `rejections` how
/// many there have been (the SIGHUP and watch tests add a `POST /reload` to see its
/// answer).
async fn assert_rejected_everywhere(sluice: &Sluice, event: &Json, trigger: &str, verdict: &str) {
    let error = event["fields"]["error"]
        .as_str()
        .unwrap_or_else(|| panic!("the rejection log event has no error field: {event}"));
    let file = sluice.config_path().display().to_string();
    assert!(
        error.contains(&file),
        "the error names the file {file}: {error}"
    );
    assert!(
        error.contains("routes[0].backend"),
        "the error names the field: {error}"
    );
    assert!(error.contains("missing"), "the error says why: {error}");
    assert!(
        verdict.contains(error),
        "the reload error is the one `sluice check` gives ({verdict}): {error}"
    );
    assert_eq!(event["fields"]["trigger"], trigger, "{event}");
    assert_eq!(event["fields"]["generation"], 1, "{event}");

    // The old config keeps serving.
    let r = get(sluice.listener_addr("egress"), "app.test", "/").await;
    assert_eq!(r.status, 200, "the old config still serves: {}", r.text());

    let config = sluice.admin_get_json("/config").await;
    assert_eq!(config["generation"], 1, "{config}");
    let last = &config["last_reload"];
    assert_eq!(last["result"], "rejected", "{config}");
    assert_eq!(
        last["error"], error,
        "GET /config last_reload.error: {config}"
    );
    assert_eq!(sluice.metric("sluice_config_generation").await, Some(1.0));

    // The POST /reload answer (the file is still bad).
    let before = sluice.reload_counts().await;
    let answer = reload_expecting(sluice, 400, "rejected").await;
    assert_eq!(answer["error"], error, "{answer}");
    assert_eq!(answer["generation"], 1, "{answer}");
    let after = sluice.reload_counts().await;
    assert_eq!(after.rejected, before.rejected + 1.0, "counted as rejected");
    assert_eq!(after.applied, 0.0, "nothing applied");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_config_by_sighup_is_rejected_and_the_old_one_keeps_serving() {
    let certs = Certs::new(&["127.0.0.1"]);
    let origin = tls_origin(&certs).await;
    let (sluice, verdict) = serving_then_bad_config(&origin, &certs, "").await;
    let event = sluice.sighup_and_wait().await;
    assert_eq!(
        event["fields"]["message"], "config reload rejected",
        "{event}"
    );
    assert_eq!(sluice.reload_counts().await.rejected, 1.0);
    assert_rejected_everywhere(&sluice, &event, "sighup", &verdict).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_config_by_post_reload_is_rejected_with_400_and_the_old_one_keeps_serving() {
    let certs = Certs::new(&["127.0.0.1"]);
    let origin = tls_origin(&certs).await;
    let (sluice, verdict) = serving_then_bad_config(&origin, &certs, "").await;
    let answer = reload_expecting(&sluice, 400, "rejected").await;
    assert_eq!(sluice.reload_counts().await.rejected, 1.0);
    let event = sluice
        .wait_for_log("config reload rejected", |e| {
            e["fields"]["trigger"] == "admin"
        })
        .await;
    assert_eq!(
        event["fields"]["error"], answer["error"],
        "{answer} / {event}"
    );
    assert_rejected_everywhere(&sluice, &event, "admin", &verdict).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_config_by_file_watch_is_rejected_and_the_old_one_keeps_serving() {
    let certs = Certs::new(&["127.0.0.1"]);
    let origin = tls_origin(&certs).await;
    let top = "config: {watch: true, watch_debounce: 50ms}";
    // serving_then_bad_config's write is the trigger.
    let (sluice, verdict) = serving_then_bad_config(&origin, &certs, top).await;
    let event = sluice
        .wait_for_log("config reload rejected", |e| {
            e["fields"]["trigger"] == "watch"
        })
        .await;
    assert_eq!(sluice.reload_counts().await.rejected, 1.0);
    assert_rejected_everywhere(&sluice, &event, "watch", &verdict).await;
}

/// `config.watch: true` and a config replaced by rename (a new inode each time, as
/// editors and ConfigMap updates do): the change applies with no signal and no admin
/// call, and so does a second one (the watch follows the path, not the first inode).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_watch_applies_a_config_replaced_by_atomic_rename() {
    let certs = Certs::new(&["127.0.0.1"]);
    let (a, b) = (tls_origin(&certs).await, tls_origin(&certs).await);
    let backends = [
        backend("a", &[&a], &certs, ""),
        backend("b", &[&b], &certs, ""),
    ];
    let top = "config: {watch: true, watch_debounce: 50ms}";
    let to = |name: &str| {
        let route = format!(r#"{{host: "*", backend: {name}}}"#);
        config(top, &[EGRESS], &[route.as_str()], &backends)
    };
    let sluice = Sluice::start(SLUICE, &to("a")).await;
    let egress = sluice.listener_addr("egress");
    assert_eq!(get(egress, "app.test", "/").await.status, 200);
    assert_eq!((a.requests(), b.requests()), (1, 0));

    let inode = |sluice: &Sluice| {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(sluice.config_path()).unwrap().ino()
    };
    let first_inode = inode(&sluice);
    sluice.write_config(&to("b"));
    assert_ne!(
        inode(&sluice),
        first_inode,
        "the file was replaced, not rewritten"
    );
    let event = sluice
        .wait_for_log("config reload applied", |e| e["fields"]["generation"] == 2)
        .await;
    assert_eq!(event["fields"]["trigger"], "watch", "{event}");
    assert_eq!(get(egress, "app.test", "/").await.status, 200);
    assert_eq!((a.requests(), b.requests()), (1, 1), "now routed to b");

    sluice.write_config(&to("a"));
    let event = sluice
        .wait_for_log("config reload applied", |e| e["fields"]["generation"] == 3)
        .await;
    assert_eq!(event["fields"]["trigger"], "watch", "{event}");
    assert_eq!(get(egress, "app.test", "/").await.status, 200);
    assert_eq!((a.requests(), b.requests()), (2, 1), "back to a");

    let config = sluice.admin_get_json("/config").await;
    assert_eq!(config["generation"], 3, "{config}");
    assert_eq!(config["last_reload"]["trigger"], "watch", "{config}");
    assert_eq!(config["last_reload"]["result"], "applied", "{config}");
    assert_eq!(sluice.reload_counts().await.applied, 2.0);
}
