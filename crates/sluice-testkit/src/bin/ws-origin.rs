//! The WebSocket echo origin of the tunnel soak, as a process: prints its address,
//! then serves until killed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[tokio::main]
async fn main() {
    let origin = sluice_testkit::WsOrigin::start().await;
    println!("{}", origin.server_spec());
    std::future::pending::<()>().await;
}
