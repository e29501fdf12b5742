//! Routes that match request headers (`routes[].headers`): within a host and path
//! prefix, the route with the most conditions that all hold wins, the longest path
//! prefix still comes first, and a request matching no condition falls to the route
//! without any.

use sluice_testkit::{http, http_body_util::Empty, send, Origin, Sluice};

const SLUICE: &str = env!("CARGO_BIN_EXE_sluice");

async fn reached(
    origins: &[&Origin],
    addr: std::net::SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> usize {
    let before: Vec<u64> = origins.iter().map(|o| o.requests()).collect();
    let mut req = sluice_testkit::request(http::Method::GET, "api.test", path, Empty::new());
    for (k, v) in headers {
        req.headers_mut().insert(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    let r = send(addr, req).await.unwrap();
    assert_eq!(r.status, 200, "{path} {headers:?}: {}", r.text());
    let after: Vec<u64> = origins.iter().map(|o| o.requests()).collect();
    (0..origins.len())
        .find(|&i| after[i] != before[i])
        .unwrap_or_else(|| panic!("{path} {headers:?} reached no origin"))
}

#[tokio::test]
async fn header_conditions_pick_the_most_specific_route() {
    let (plain, canary, beta, admin) = (
        Origin::start().await,
        Origin::start().await,
        Origin::start().await,
        Origin::start().await,
    );
    let origins = [&plain, &canary, &beta, &admin];
    let backend = |name: &str, o: &Origin| {
        format!("  - {{name: {name}, servers: [\"{}\"]}}\n", o.server_spec())
    };
    let yaml = format!(
        r#"
log: {{format: json}}
admin: {{bind: "127.0.0.1:0"}}
listeners: [{{name: egress, bind: "127.0.0.1:0"}}]
routes:
  - {{host: api.test, backend: plain}}
  - {{host: api.test, backend: canary, headers: {{X-Env: canary}}}}
  - {{host: api.test, backend: beta, headers: {{x-env: canary, x-beta: "1"}}}}
  - {{host: api.test, path_prefix: /admin, backend: admin}}
backends:
{}{}{}{}"#,
        backend("plain", &plain),
        backend("canary", &canary),
        backend("beta", &beta),
        backend("admin", &admin),
    );
    let sluice = Sluice::start(SLUICE, &yaml).await;
    let addr = sluice.listener_addr("egress");
    assert_eq!(reached(&origins, addr, "/", &[]).await, 0);
    assert_eq!(
        reached(&origins, addr, "/", &[("x-env", "canary")]).await,
        1
    );
    assert_eq!(
        reached(&origins, addr, "/", &[("x-env", "Canary")]).await,
        0,
        "values are exact"
    );
    assert_eq!(
        reached(&origins, addr, "/", &[("x-env", "canary"), ("x-beta", "1")]).await,
        2,
        "two conditions beat one"
    );
    assert_eq!(
        reached(&origins, addr, "/admin/x", &[("x-env", "canary")]).await,
        3,
        "a longer path prefix comes before header conditions"
    );
}
