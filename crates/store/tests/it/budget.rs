//! The shared ShipStation rate budget.

use jiff::SignedDuration;

use crate::harness::{TestDb, t};

const KEY: &str = "ss:acme-key";

pub async fn the_rate_budget_grants_until_the_reserve_then_waits_for_the_reset(
    db: &TestDb,
) -> anyhow::Result<()> {
    let store = &db.store;
    // Nothing known yet: go ahead (the response will tell).
    assert_eq!(store.rate_take(KEY, 2, t(0)).await?, None);

    store.rate_observe(KEY, 40, 5, t(10), t(0)).await?;
    for _ in 0..3 {
        assert_eq!(store.rate_take(KEY, 2, t(1)).await?, None);
    }
    // Two left: that is the reserve.
    assert_eq!(store.rate_take(KEY, 2, t(1)).await?, Some(t(10)));
    assert_eq!(store.rate_take(KEY, 2, t(9)).await?, Some(t(10)));
    // Another key has its own budget.
    assert_eq!(store.rate_take("ss:beta-key", 2, t(1)).await?, None);

    // The window reset: granted again, without knowing the new remaining.
    assert_eq!(store.rate_take(KEY, 2, t(10)).await?, None);
    assert_eq!(store.rate_take(KEY, 2, t(11)).await?, None);

    // A 429 is "nothing left until reset".
    store.rate_observe(KEY, 40, 0, t(70), t(12)).await?;
    assert_eq!(store.rate_take(KEY, 0, t(12)).await?, Some(t(70)));
    assert_eq!(store.rate_take(KEY, 0, t(70)).await?, None);
    Ok(())
}

pub async fn concurrent_rate_takes_never_grant_more_than_remaining(
    db: &TestDb,
) -> anyhow::Result<()> {
    db.store.rate_observe(KEY, 40, 20, t(60), t(0)).await?;
    let other = db.open_another().await?;
    let mut tasks = Vec::new();
    for i in 0..50 {
        let store = if i % 2 == 0 {
            db.store.clone()
        } else {
            other.clone()
        };
        tasks.push(tokio::spawn(
            async move { store.rate_take(KEY, 2, t(1)).await },
        ));
    }
    let mut granted = 0;
    for task in tasks {
        match task.await?? {
            None => granted += 1,
            Some(wait) => assert_eq!(wait, t(60)),
        }
    }
    assert_eq!(granted, 18, "20 remaining, 2 kept in reserve");
    Ok(())
}

pub async fn a_late_response_never_gives_back_requests_already_spent(
    db: &TestDb,
) -> anyhow::Result<()> {
    let store = &db.store;
    store.rate_observe(KEY, 40, 10, t(60), t(0)).await?;
    // A response to an earlier request arrives late, claiming more left, with the
    // reset rounded half a second later: same window, the smaller count stands.
    store
        .rate_observe(KEY, 40, 15, t(60) + SignedDuration::from_millis(500), t(1))
        .await?;
    assert_eq!(store.rate_take(KEY, 9, t(2)).await?, None);
    assert!(store.rate_take(KEY, 9, t(2)).await?.is_some());

    // Fewer left than we thought (another process spent them): believed at once.
    store.rate_observe(KEY, 40, 3, t(60), t(3)).await?;
    assert!(store.rate_take(KEY, 3, t(4)).await?.is_some());

    // A new window (the reset moved well past the old one): its count is believed.
    store.rate_observe(KEY, 40, 39, t(120), t(61)).await?;
    assert_eq!(store.rate_take(KEY, 38, t(62)).await?, None);
    assert_eq!(store.rate_take(KEY, 38, t(62)).await?, Some(t(120)));
    Ok(())
}

const V2_KEY: &str = "ss:v2:acme-key";

pub async fn a_counted_budget_grants_its_limit_per_window_and_a_429_makes_everyone_wait(db: &TestDb) -> anyhow::Result<()> {
    let store = &db.store;
    let minute = SignedDuration::from_secs(60);
    // No window yet: the first take starts one (5 a minute here), and it is counted.
    for _ in 0..5 {
        assert_eq!(store.rate_take_counted(V2_KEY, 5, minute, 0, t(0)).await?, None);
    }
    assert_eq!(store.rate_take_counted(V2_KEY, 5, minute, 0, t(30)).await?, Some(t(60)), "five a minute");
    // The next window starts at the first take after the reset.
    assert_eq!(store.rate_take_counted(V2_KEY, 5, minute, 0, t(61)).await?, None);
    for _ in 0..3 {
        assert_eq!(store.rate_take_counted(V2_KEY, 5, minute, 1, t(62)).await?, None);
    }
    assert_eq!(store.rate_take_counted(V2_KEY, 5, minute, 1, t(62)).await?, Some(t(121)), "one kept in reserve");
    // A 429 naming a wait (Retry-After) holds every taker until it has passed.
    store.rate_observe(V2_KEY, 0, 0, t(200), t(130)).await?;
    assert_eq!(store.rate_take_counted(V2_KEY, 5, minute, 0, t(131)).await?, Some(t(200)));
    assert_eq!(store.rate_take_counted(V2_KEY, 5, minute, 0, t(200)).await?, None);
    // The v1 budget of the same account is another key.
    assert_eq!(store.rate_take(KEY, 0, t(131)).await?, None);
    Ok(())
}

pub async fn concurrent_counted_takes_from_two_processes_never_grant_more_than_the_limit(db: &TestDb) -> anyhow::Result<()> {
    let other = db.open_another().await?;
    let mut tasks = Vec::new();
    for i in 0..60 {
        let store = if i % 2 == 0 { db.store.clone() } else { other.clone() };
        tasks.push(tokio::spawn(async move {
            store.rate_take_counted(V2_KEY, 20, SignedDuration::from_secs(60), 0, t(1)).await
        }));
    }
    let mut granted = 0;
    for task in tasks {
        match task.await?? {
            None => granted += 1,
            Some(wait) => assert_eq!(wait, t(61)),
        }
    }
    assert_eq!(granted, 20, "one window of 20 however many takers race for its first request");
    Ok(())
}
