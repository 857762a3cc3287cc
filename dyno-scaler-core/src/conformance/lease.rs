//! The contract every [`Lease`] keeps, run by the in-memory lease and by each store's against the real server.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::lease::{Lease, Pause};

/// Runs every case of the lease contract with `ttl` (short: the suite waits it out once), on leases made by
/// `make(process_type)`, each a separate handle on the store as a separate scaler instance would hold it (the
/// process types are `alpha` and `beta`; the store is empty of them at the start). Pauses are checked when
/// `pauses` is set (a Postgres lease keeps them only with a learned table).
pub async fn run_lease_conformance(make: &(dyn Fn(&str) -> Arc<dyn Lease> + Sync), ttl: Duration, pauses: bool) {
    let (a, b, other) = (make("alpha"), make("alpha"), make("beta"));
    let st = a.read().await.expect("read a free lease");
    assert_eq!((st.held, st.holder.as_deref(), st.pause.as_ref()), (false, None, None), "a lease starts free");

    let st = a.campaign("one", ttl).await.expect("campaign");
    assert!(st.held && st.holder.as_deref() == Some("one"), "a free lease is taken: {st:?}");
    let st = b.campaign("two", ttl).await.expect("campaign");
    assert!(!st.held && st.holder.as_deref() == Some("one"), "a held lease is not taken, its holder is named: {st:?}");
    let st = b.read().await.expect("read");
    assert!(!st.held && st.holder.as_deref() == Some("one"), "read names the holder: {st:?}");
    assert!(a.campaign("one", ttl).await.expect("renew").held, "the holder renews");
    let st = other.campaign("two", ttl).await.expect("campaign");
    assert!(st.held, "another process type's lease is its own: {st:?}");

    b.release("two").await.expect("release by another");
    assert_eq!(b.read().await.unwrap().holder.as_deref(), Some("one"), "only the holder releases");
    a.release("one").await.expect("release");
    assert_eq!(a.read().await.unwrap().holder, None, "a released lease is free");
    assert!(b.campaign("two", ttl).await.unwrap().held, "a released lease is taken at the next campaign");

    // "two" stops renewing (killed): the lease frees itself within the TTL.
    let started = std::time::Instant::now();
    loop {
        let st = a.campaign("one", ttl).await.expect("campaign");
        if st.held {
            break;
        }
        assert_eq!(st.holder.as_deref(), Some("two"));
        assert!(
            // The store frees it at the TTL; the margin is for a loaded machine (a Postgres session's
            // `idle_session_timeout` is checked by a busy server a little late).
            started.elapsed() < ttl * 5,
            "a lease not renewed for {ttl:?} is still held after {:?}",
            started.elapsed()
        );
        tokio::time::sleep(ttl / 10).await;
    }
    assert!(started.elapsed() >= ttl / 2, "the lease was free before its TTL: {:?}", started.elapsed());
    assert!(!b.campaign("two", ttl).await.unwrap().held, "the old holder does not get it back");
    a.release("one").await.unwrap();
    other.release("two").await.unwrap();

    if !pauses {
        return;
    }
    let now = SystemTime::now();
    let until = Pause::new("ops@laptop", now, Some(Duration::from_secs(3_600)));
    a.set_pause(Some(&until)).await.expect("pause");
    assert_eq!(b.read().await.unwrap().pause, Some(until.clone()), "every instance sees the pause");
    assert_eq!(b.campaign("two", ttl).await.unwrap().pause, Some(until), "a campaign reads the pause too");
    assert_eq!(other.read().await.unwrap().pause, None, "a pause is per process type");
    let open = Pause::new("ops@laptop", now, None);
    b.set_pause(Some(&open)).await.expect("pause until resumed");
    assert_eq!(a.read().await.unwrap().pause, Some(open));
    a.set_pause(None).await.expect("resume");
    assert_eq!(b.read().await.unwrap().pause, None, "resume clears it everywhere");
    b.release("two").await.unwrap();
}
