use super::*;
use std::time::Duration;
use tokio::time::timeout;

/// Resolves once the lot tells `ticket`'s connection to close.
async fn closed(lot: &ParkLot, ticket: &Ticket) {
    std::future::poll_fn(|cx| {
        if lot.poll_closed(ticket, cx) {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await
}

#[tokio::test(start_paused = true)]
async fn connections_close_at_their_deadlines_whatever_order_they_parked_in() {
    let (_tx, rx) = watch::channel(false);
    let lot = ParkLot::new(rx);
    let t0 = Instant::now();
    let late = lot.park(t0 + Duration::from_secs(30)).expect("parks");
    let early = lot.park(t0 + Duration::from_secs(10)).expect("parks");
    let middle = lot.park(t0 + Duration::from_secs(20)).expect("parks");
    assert_eq!(lot.len(), 3);

    timeout(Duration::from_secs(11), closed(&lot, &early))
        .await
        .expect("the earliest closes at its deadline");
    assert!(Instant::now() >= t0 + Duration::from_secs(10));
    assert_eq!(lot.len(), 2, "only the expired one closed");
    timeout(Duration::from_secs(11), closed(&lot, &middle))
        .await
        .expect("then the middle one");
    assert!(Instant::now() >= t0 + Duration::from_secs(20));
    timeout(Duration::from_secs(11), closed(&lot, &late))
        .await
        .expect("then the last");
    assert!(Instant::now() >= t0 + Duration::from_secs(30));
    for t in [early, middle, late] {
        lot.leave(t);
    }
    assert!(lot.inner.lock().slots.is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_connection_that_leaves_is_never_closed_and_the_sweeper_ends_when_empty() {
    let (_tx, rx) = watch::channel(false);
    let lot = ParkLot::new(rx);
    let t0 = Instant::now();
    let woke = lot.park(t0 + Duration::from_secs(5)).expect("parks");
    let stays = lot.park(t0 + Duration::from_secs(5)).expect("parks");
    lot.leave(woke);
    timeout(Duration::from_secs(6), closed(&lot, &stays))
        .await
        .expect("the one still parked closes");
    lot.leave(stays);
    // The sweeper sees the lot empty and ends; the next park starts a new one.
    timeout(Duration::from_secs(1), async {
        while lot.inner.lock().sweeping {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the sweeper ends once nothing is parked");
    let next = lot
        .park(Instant::now() + Duration::from_secs(1))
        .expect("parks");
    assert!(lot.inner.lock().sweeping);
    timeout(Duration::from_secs(2), closed(&lot, &next))
        .await
        .expect("and a new sweeper closes it");
}

#[tokio::test(start_paused = true)]
async fn shutdown_closes_every_parked_connection_at_once_and_refuses_new_ones() {
    let (tx, rx) = watch::channel(false);
    let lot = ParkLot::new(rx);
    let far = Instant::now() + Duration::from_secs(3600);
    let a = lot.park(far).expect("parks");
    let b = lot.park(far).expect("parks");
    let t0 = Instant::now();
    tx.send(true).expect("the lot listens");
    timeout(Duration::from_millis(10), async {
        closed(&lot, &a).await;
        closed(&lot, &b).await;
    })
    .await
    .expect("both close on shutdown, not at their deadline");
    assert!(Instant::now() < t0 + Duration::from_secs(1));
    assert!(lot.park(far).is_none(), "nothing parks while shutting down");
}

#[tokio::test(start_paused = true)]
async fn a_lot_whose_server_is_gone_closes_its_connections() {
    let (tx, rx) = watch::channel(false);
    let lot = ParkLot::new(rx);
    let a = lot
        .park(Instant::now() + Duration::from_secs(3600))
        .expect("parks");
    drop(tx);
    timeout(Duration::from_millis(10), closed(&lot, &a))
        .await
        .expect("closed with the channel");
}
