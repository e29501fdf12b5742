use super::*;
use std::sync::atomic::AtomicUsize;

#[derive(Default)]
struct Srv {
    inflight: AtomicUsize,
}
impl Member for Srv {
    fn inflight(&self) -> &AtomicUsize {
        &self.inflight
    }
    fn available(&self) -> bool {
        true
    }
}

#[derive(Default)]
struct Depth(AtomicUsize);
impl QueueObserver for Depth {
    fn depth(&self, waiting: usize) {
        self.0.store(waiting, Ordering::Relaxed);
    }
    fn waited(&self, _: Duration) {}
}

struct Two {
    servers: Arc<[Arc<Srv>]>,
    limiter: Limiter<Two>,
    depth: Arc<Depth>,
}
impl Group for Two {
    type Member = Srv;
    fn limiter(&self) -> &Limiter<Self> {
        &self.limiter
    }
    fn members(&self) -> Arc<[Arc<Srv>]> {
        self.servers.clone()
    }
    /// The least loaded usable member (first on ties).
    fn pick(
        &self,
        members: &[Arc<Srv>],
        usable: &dyn Fn(&Srv) -> bool,
        _: Option<u64>,
    ) -> Option<Arc<Srv>> {
        members
            .iter()
            .filter(|s| usable(s))
            .min_by_key(|s| s.inflight.load(Ordering::Relaxed))
            .cloned()
    }
}

fn group(per_member: usize, total: usize, max_queue: usize, state: SharedQueue<Two>) -> Arc<Two> {
    group_with(
        per_member,
        total,
        max_queue,
        Duration::from_millis(50),
        state,
    )
}

fn group_with(
    per_member: usize,
    total: usize,
    max_queue: usize,
    queue_timeout: Duration,
    state: SharedQueue<Two>,
) -> Arc<Two> {
    let depth = Arc::new(Depth::default());
    Arc::new(Two {
        servers: vec![Arc::new(Srv::default()), Arc::new(Srv::default())].into(),
        limiter: Limiter::new(
            Limits {
                per_member,
                total,
                max_queue,
                queue_timeout,
            },
            state,
            depth.clone(),
        ),
        depth,
    })
}

async fn queued(g: &Two) {
    while g.depth.0.load(Ordering::Relaxed) == 0 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn group_limit_caps_the_sum_and_hands_slots_over_in_order() {
    let g = group(0, 2, 10, Default::default());
    let s1 = Limiter::acquire(&g, None, None).await.unwrap();
    let s2 = Limiter::acquire(&g, None, None).await.unwrap();
    assert!(!Arc::ptr_eq(s1.member(), s2.member()), "spread over both");
    let e = Limiter::acquire(&g, None, None).await.err();
    assert_eq!(e, Some(Refusal::QueueTimeout(Duration::from_millis(50))));
    let waiter = tokio::spawn({
        let g = g.clone();
        async move {
            Limiter::acquire(&g, None, None)
                .await
                .map(|s| s.member().clone())
        }
    });
    queued(&g).await;
    let freed = s1.member().clone();
    drop(s1);
    let got = waiter.await.unwrap().unwrap();
    assert!(Arc::ptr_eq(&got, &freed), "the waiter got the freed slot");
    drop(s2);
    assert_eq!(g.limiter.state.lock().inflight(), 0);
    assert!(g
        .servers
        .iter()
        .all(|s| s.inflight.load(Ordering::Relaxed) == 0));
}

#[tokio::test]
async fn per_member_limit_and_queue_full() {
    let g = group(1, 0, 1, Default::default());
    let _a = Limiter::acquire(&g, None, None).await.unwrap();
    let _b = Limiter::acquire(&g, None, None).await.unwrap();
    let waiter = tokio::spawn({
        let g = g.clone();
        async move { Limiter::acquire(&g, None, None).await.err() }
    });
    queued(&g).await;
    assert_eq!(
        Limiter::acquire(&g, None, None).await.err(),
        Some(Refusal::QueueFull(1))
    );
    assert!(matches!(
        waiter.await.unwrap(),
        Some(Refusal::QueueTimeout(_))
    ));
}

#[tokio::test]
async fn a_new_version_of_the_group_shares_the_in_flight_total() {
    let state: SharedQueue<Two> = Default::default();
    let old = group(0, 1, 0, state.clone());
    let held = Limiter::acquire(&old, None, None).await.unwrap();
    let new = group(0, 1, 0, state);
    assert_eq!(
        Limiter::acquire(&new, None, None).await.err(),
        Some(Refusal::QueueFull(0)),
        "the request in flight on the old version still counts"
    );
    drop(held);
    assert!(Limiter::acquire(&new, None, None).await.is_ok());
}

/// Slots held 100 ms each, two servers with one slot each: a slot frees every 50 ms,
/// so the n-th waiter expects to wait n × 50 ms.
async fn learned_100ms_holds(queue_timeout: Duration) -> (Arc<Two>, Slot<Two>, Slot<Two>) {
    let g = group_with(1, 0, 10, queue_timeout, Default::default());
    let a = Limiter::acquire(&g, None, None).await.unwrap();
    tokio::time::advance(Duration::from_millis(100)).await;
    drop(a);
    assert_eq!(
        g.limiter.state.lock().mean_hold(),
        Duration::from_millis(100)
    );
    let a = Limiter::acquire(&g, None, None).await.unwrap();
    let b = Limiter::acquire(&g, None, None).await.unwrap();
    (g, a, b)
}

#[tokio::test(start_paused = true)]
async fn a_request_that_would_wait_past_the_timeout_is_refused_at_once() {
    let (g, _a, _b) = learned_100ms_holds(Duration::from_millis(120)).await;
    // The first two waiters expect 50 and 100 ms: they queue.
    let waiters: Vec<_> = (0..2)
        .map(|_| {
            let g = g.clone();
            tokio::spawn(async move { Limiter::acquire(&g, None, None).await.err() })
        })
        .collect();
    while g.limiter.waiting() < 2 {
        tokio::task::yield_now().await;
    }
    // The third would wait 150 ms: refused now, without time passing.
    let before = Instant::now();
    assert_eq!(
        Limiter::acquire(&g, None, None).await.err(),
        Some(Refusal::WouldTimeout {
            predicted: Duration::from_millis(150),
            timeout: Duration::from_millis(120),
        })
    );
    assert_eq!(Instant::now(), before);
    for w in waiters {
        assert_eq!(
            w.await.unwrap(),
            Some(Refusal::QueueTimeout(Duration::from_millis(120)))
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_request_expected_to_make_it_queues_and_gets_a_slot() {
    let (g, a, _b) = learned_100ms_holds(Duration::from_millis(60)).await;
    let waiter = tokio::spawn({
        let g = g.clone();
        async move { Limiter::acquire(&g, None, None).await.is_ok() }
    });
    queued(&g).await;
    tokio::time::advance(Duration::from_millis(40)).await;
    drop(a);
    assert!(waiter.await.unwrap(), "expected 50 ms < 60 ms: it waited");
    // `a` held 40 ms, the waiter's slot none: 100 → 92.5 → 80.9375 ms.
    assert_eq!(
        g.limiter.state.lock().mean_hold(),
        Duration::from_micros(80_937)
    );
}
