//! Server weights (`backends[].weights`) split traffic in proportion under every
//! balancing rule: a 1:3 split stays 1:3 whether servers are picked in turn, at
//! random, or by a request's hash key.

use sluice_testkit::{app_config, request, send, Origin, Sluice};

const SLUICE: &str = env!("CARGO_BIN_EXE_sluice");

async fn shares(balance: &str, requests: usize, header: bool) -> (u64, u64) {
    let (light, heavy) = (Origin::start().await, Origin::start().await);
    let hash_on = if header {
        "\n    hash_on: \"header:X-User\""
    } else {
        ""
    };
    let extra = format!(
        "    weights: {{\"{}\": 3}}\n    balance: {balance}{hash_on}",
        heavy.server_spec()
    );
    let yaml = app_config(&[light.server_spec(), heavy.server_spec()], &extra);
    let sluice = Sluice::start(SLUICE, &yaml).await;
    let egress = sluice.listener_addr("egress");
    for i in 0..requests {
        let mut req = request(
            http::Method::GET,
            "api.test",
            "/",
            http_body_util::Empty::new(),
        );
        if header {
            let user = format!("user-{i}").parse().unwrap();
            req.headers_mut().insert("x-user", user);
        }
        let r = send(egress, req).await.unwrap();
        assert_eq!(r.status, 200, "request {i}: {}", r.text());
    }
    (light.requests(), heavy.requests())
}

#[tokio::test]
async fn round_robin_follows_the_weights_exactly() {
    assert_eq!(shares("round_robin", 400, false).await, (100, 300));
}

#[tokio::test]
async fn least_request_p2c_and_hash_split_in_proportion() {
    // 400 draws at 3/4: the heavy share is within 0.62-0.88 with odds far below 1e-6
    // of failing by chance (5 standard deviations).
    for (balance, header) in [("least_request", false), ("p2c", false), ("hash", true)] {
        let (light, heavy) = shares(balance, 400, header).await;
        let share = heavy as f64 / (light + heavy) as f64;
        assert!(
            (0.62..=0.88).contains(&share),
            "{balance}: {light} light, {heavy} heavy"
        );
    }
}
