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
    let depth = Arc::new(Depth::default());
    Arc::new(Two {
        servers: vec![Arc::new(Srv::default()), Arc::new(Srv::default())].into(),
        limiter: Limiter::new(
            Limits {
                per_member,
                total,
                max_queue,
                queue_timeout: Duration::from_millis(50),
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
