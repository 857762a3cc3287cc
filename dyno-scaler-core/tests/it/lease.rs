//! Several scalers of one process type sharing a lease: one acts, the others follow warm; pauses hold them all.

use std::sync::Arc;
use std::time::Duration;

use dyno_scaler_core::*;

const TTL: Duration = Duration::from_secs(12);

struct Pair {
    clock: Arc<ManualClock>,
    queue: InMemoryQueue,
    platform: InMemoryPlatform,
    store: InMemoryLease,
}

impl Pair {
    fn new() -> Self {
        let clock = Arc::new(ManualClock::at_secs(1_700_000_000));
        Self {
            queue: InMemoryQueue::new(clock.clone()),
            platform: InMemoryPlatform::new(),
            store: InMemoryLease::new(clock.clone(), "worker"),
            clock,
        }
    }

    /// An instance with its own handle on the lease.
    fn instance(&self, name: &str, exclusive: bool) -> (Scaler, InMemoryLease) {
        let lease = self.store.other("worker");
        let policy =
            Policy::new(PolicyConfig { max_workers: 5, down_delay: Duration::ZERO, ..PolicyConfig::classic() })
                .unwrap();
        let opts = LeaseOptions { exclusive, ttl: TTL, identity: name.into() };
        let scaler = Scaler::builder("worker", Arc::new(self.queue.clone()), Arc::new(self.platform.clone()), policy)
            .clock(self.clock.clone())
            .lease(Arc::new(lease.clone()), opts)
            .build();
        (scaler, lease)
    }

    async fn advance(&self, d: Duration) {
        self.clock.advance(d);
        tokio::time::advance(d).await;
    }
}

#[tokio::test(start_paused = true)]
async fn only_the_holder_acts_and_a_follower_takes_over_when_it_dies() {
    let p = Pair::new();
    let (a, _) = p.instance("a", true);
    let (b, _) = p.instance("b", true);
    p.queue.push_many("default", 30);
    let ra = a.reconcile().await.unwrap();
    let rb = b.reconcile().await.unwrap();
    assert!(ra.acting && ra.applied && ra.leader.as_deref() == Some("a"), "{ra:?}");
    assert!(!rb.acting && !rb.applied && rb.leader.as_deref() == Some("a"), "{rb:?}");
    assert_eq!(rb.decision.to, rb.decision.from, "a follower holds");
    assert!(
        matches!(&rb.decision.gate, Some(Gate::Following { leader }) if leader.as_deref() == Some("a")),
        "{:?}",
        rb.decision
    );
    assert_eq!(p.platform.set_calls(), vec![("worker".to_string(), 2)]);

    // More work: the leader scales again, the follower sees the same figures and does nothing.
    p.queue.push_many("default", 30);
    let rb = b.reconcile().await.unwrap();
    assert_eq!((rb.decision.to, rb.decision.would), (2, Some(3)), "{:?}", rb.decision);
    a.reconcile().await.unwrap();
    assert_eq!(p.platform.set_calls().len(), 2);
    assert_eq!(p.platform.quantity("worker"), 3);

    // `a` dies without releasing: `b` keeps following until the lease runs out, then acts.
    drop(a);
    p.queue.clear();
    p.advance(TTL / 2).await;
    assert!(!b.reconcile().await.unwrap().acting, "the lease still holds");
    assert_eq!(p.platform.quantity("worker"), 3);
    p.advance(TTL / 2).await;
    let rb = b.reconcile().await.unwrap();
    assert!(rb.acting && rb.applied && rb.leader.as_deref() == Some("b"), "{rb:?}");
    assert_eq!(p.platform.quantity("worker"), 0);
}

#[tokio::test(start_paused = true)]
async fn a_holder_cut_from_the_store_stops_before_another_takes_over() {
    let p = Pair::new();
    let (a, a_lease) = p.instance("a", true);
    let (b, _) = p.instance("b", true);
    assert!(a.reconcile().await.unwrap().acting);
    assert!(!b.reconcile().await.unwrap().acting);
    a_lease.set_failure(Some("connection reset"));
    p.queue.push_many("default", 30);
    // Within the renewal period `a` trusts its lease; at the next renewal it fails and `a` stops at once.
    p.advance(TTL / 3).await;
    let ra = a.reconcile().await.unwrap();
    assert!(!ra.acting && !ra.applied, "{ra:?}");
    assert!(
        matches!(&ra.decision.gate, Some(Gate::StoreUnreachable { store, error }) if store == "memory" && error.contains("connection reset")),
        "{:?}",
        ra.decision
    );
    assert!(p.platform.set_calls().is_empty());
    // `b` acts only once the lease `a` can no longer renew has run out.
    assert!(!b.reconcile().await.unwrap().acting);
    p.advance(TTL * 2 / 3).await;
    let rb = b.reconcile().await.unwrap();
    assert!(rb.acting && rb.applied, "{rb:?}");
    a_lease.set_failure(None);
    p.advance(TTL / 3).await;
    let ra = a.reconcile().await.unwrap();
    assert!(!ra.acting && ra.leader.as_deref() == Some("b"), "back, `a` follows: {ra:?}");
}

#[tokio::test(start_paused = true)]
async fn a_pause_holds_every_instance_until_it_ends_or_is_resumed() {
    let p = Pair::new();
    let (a, _) = p.instance("a", true);
    let (b, _) = p.instance("b", false);
    p.store.set_pause(Some(&Pause::new("ops", p.clock.now(), Some(Duration::from_secs(60))))).await.unwrap();
    p.queue.push_many("default", 30);
    for s in [&a, &b] {
        let r = s.reconcile().await.unwrap();
        assert!(!r.acting && r.paused.is_some(), "{r:?}");
        assert!(
            matches!(&r.decision.gate, Some(Gate::Paused { pause }) if pause.by == "ops" && pause.until.is_some()),
            "{:?}",
            r.decision
        );
    }
    assert!(p.platform.set_calls().is_empty(), "a paused process type is never scaled");
    // The pause ends by itself.
    p.advance(Duration::from_secs(61)).await;
    let r = a.reconcile().await.unwrap();
    assert!(r.acting && r.applied && r.paused.is_none(), "{r:?}");
    // An open pause, then resume: the non-exclusive instance acts again (it needs no lease).
    p.store.set_pause(Some(&Pause::new("ops", p.clock.now(), None))).await.unwrap();
    p.queue.push_many("default", 60);
    p.advance(TTL / 3).await;
    assert!(!b.reconcile().await.unwrap().acting);
    assert!(!a.reconcile().await.unwrap().acting);
    assert_eq!(p.platform.set_calls().len(), 1);
    p.store.set_pause(None).await.unwrap();
    p.advance(TTL / 3).await;
    let r = b.reconcile().await.unwrap();
    assert!(r.acting && r.applied, "{r:?}");
}

#[tokio::test(start_paused = true)]
async fn the_loop_renews_and_releases_the_lease_when_stopped() {
    let p = Pair::new();
    let (a, _) = p.instance("a", true);
    let (b, _) = p.instance("b", true);
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let (tx, mut rx) = tokio::sync::mpsc::channel(64);
    // A poll interval far longer than the TTL: the loop still wakes to renew every TTL / 3.
    let task = tokio::spawn(a.clone().run_loop(Duration::from_secs(600), 0.0, stop, tx));
    rx.recv().await.unwrap().unwrap();
    let before = p.store.campaigns();
    for _ in 0..6 {
        p.advance(TTL / 3).await;
        tokio::task::yield_now().await;
    }
    assert!(rx.try_recv().is_err(), "no cycle ran meanwhile: the keeper renewed on its own");
    assert!(p.store.campaigns() >= before + 6, "renewed every ttl/3: {} -> {}", before, p.store.campaigns());
    assert!(!b.reconcile().await.unwrap().acting, "the lease held all along");
    stop_tx.send(true).unwrap();
    task.await.unwrap();
    p.advance(TTL / 3).await;
    assert!(b.reconcile().await.unwrap().acting, "released on stop: taken at once");
}

#[tokio::test(start_paused = true)]
async fn a_preview_while_paused_holds_as_the_daemon_does_and_says_what_it_would_do() {
    let p = Pair::new();
    let (a, _) = p.instance("a", true);
    p.platform.set("worker", 3);
    p.queue.push_many("default", 80);
    // Unpaused, the preview wants 4 (the seed's table: 75 => 4): the figure the pause must hold.
    let r = a.preview().await.unwrap();
    assert_eq!((r.decision.from, r.decision.to), (3, 4), "{r:?}");
    p.store.set_pause(Some(&Pause::new("ops", p.clock.now(), Some(Duration::from_secs(60))))).await.unwrap();
    let r = a.preview().await.unwrap();
    assert_eq!((r.decision.from, r.decision.to), (3, 3), "paused: {r:?}");
    assert!(r.paused.is_some(), "{r:?}");
    assert!(matches!(r.decision.gate, Some(Gate::Paused { .. })) && r.decision.would == Some(4), "{:?}", r.decision);
    // The daemon's cycle holds the same way.
    let d = a.reconcile().await.unwrap();
    assert_eq!((d.decision.from, d.decision.to), (r.decision.from, r.decision.to));
    assert!(p.platform.set_calls().is_empty());
}

/// A holder that cannot reach its platform (a stalled API, a frozen connection) for longer than the lease's TTL
/// gives the lease up, and an instance that reaches the platform acts.
#[tokio::test(start_paused = true)]
async fn a_holder_cut_from_its_platform_hands_the_lease_over() {
    let p = Pair::new();
    let healthy = InMemoryPlatform::new();
    let cut = InMemoryPlatform::new();
    for _ in 0..1_000 {
        cut.fail_next(PlatformError::Unavailable { message: "no answer within 10s".into(), cause: None });
    }
    let instance = |name: &str, platform: &InMemoryPlatform| {
        let policy =
            Policy::new(PolicyConfig { max_workers: 5, down_delay: Duration::ZERO, ..PolicyConfig::classic() })
                .unwrap();
        let opts = LeaseOptions { exclusive: true, ttl: TTL, identity: name.into() };
        Scaler::builder("worker", Arc::new(p.queue.clone()), Arc::new(platform.clone()), policy)
            .clock(p.clock.clone())
            .lease(Arc::new(p.store.other("worker")), opts)
            .build()
    };
    let (a, b) = (instance("a", &cut), instance("b", &healthy));
    p.queue.push_many("default", 30);
    assert!(a.reconcile().await.is_err(), "a holds the lease and its platform fails");
    assert!(!b.reconcile().await.unwrap().acting, "b follows");
    // Within the TTL a keeps the lease (a blip is not a reason to hand over).
    for _ in 0..3 {
        p.advance(TTL / 4).await;
        assert!(a.reconcile().await.is_err());
        assert!(!b.reconcile().await.unwrap().acting, "still a's lease");
    }
    // Past the TTL it gives the lease up, and b takes it at its next campaign and scales.
    p.advance(TTL / 2).await;
    assert!(a.reconcile().await.is_err());
    p.advance(TTL / 3).await;
    let rb = b.reconcile().await.unwrap();
    assert!(rb.acting && rb.applied && rb.leader.as_deref() == Some("b"), "{rb:?}");
    assert_eq!(healthy.quantity("worker"), 2);
    // a stands aside (it reads, it does not campaign): b keeps the lease.
    for _ in 0..3 {
        p.advance(TTL / 3).await;
        assert!(a.reconcile().await.is_err(), "a's platform is still cut");
        assert!(b.reconcile().await.unwrap().acting, "b still holds the lease");
    }
}

/// A holder whose lease runs out while its platform call hangs abandons the call (no retry of it goes out from a
/// scaler that may no longer act) and says so.
#[tokio::test(start_paused = true)]
async fn a_platform_call_is_abandoned_when_the_lease_runs_out_under_it() {
    let p = Pair::new();
    let (a, _) = p.instance("a", true);
    p.platform.set_write_delay(Duration::from_secs(3_600));
    p.queue.push_many("default", 30);
    let started = tokio::time::Instant::now();
    let cycle = tokio::spawn(async move { a.reconcile().await });
    // Nobody renews the lease (no loop runs): it ends a quarter TTL before the store would let it go.
    let report = cycle.await.unwrap().unwrap();
    assert!(
        started.elapsed() < TTL,
        "abandoned when the lease ran out, not when the call ended: {:?} {report:?}",
        started.elapsed()
    );
    assert!(!report.applied && report.decision.to == report.decision.from, "{report:?}");
    assert_eq!(report.decision.gate, Some(Gate::Abandoned), "{:?}", report.decision);
    assert_eq!(p.platform.quantity("worker"), 0, "the abandoned call never completed");
}

/// A platform that answers, if only to refuse (a preboot lock), is reachable: its holder keeps the lease however
/// long the refusals last, since another instance would be refused the same.
#[tokio::test(start_paused = true)]
async fn a_holder_whose_platform_refuses_keeps_the_lease() {
    let p = Pair::new();
    let refusing = InMemoryPlatform::new();
    for _ in 0..1_000 {
        refusing.fail_next(PlatformError::Locked { message: "preboot".into() });
    }
    let policy = Policy::new(PolicyConfig { max_workers: 5, ..PolicyConfig::classic() }).unwrap();
    let opts = LeaseOptions { exclusive: true, ttl: TTL, identity: "a".into() };
    let a = Scaler::builder("worker", Arc::new(p.queue.clone()), Arc::new(refusing), policy)
        .clock(p.clock.clone())
        .lease(Arc::new(p.store.other("worker")), opts)
        .build();
    let (b, _) = p.instance("b", true);
    p.queue.push_many("default", 30);
    for _ in 0..8 {
        assert!(a.reconcile().await.is_err(), "refused");
        assert!(!b.reconcile().await.unwrap().acting, "b follows: a keeps the lease");
        p.advance(TTL / 4).await;
    }
}
