//! `/metrics` as the receivers keep it: every delivery to a configured connection
//! counted by what became of it, and the jobs and exceptions it stored on the gauges
//! at once (the store is metered, as `serve` wires it).

use crate::{Shipledger, TOKEN, ship_notify};

#[tokio::test]
async fn every_delivery_is_counted_by_what_became_of_it_and_what_it_stored_shows_at_once() {
    let sl = Shipledger::v1("https://ssapi.shipstation.com").await;
    let body = ship_notify("https://ssapi.shipstation.com/shipments?storeID=12&batchId=7");
    assert_eq!(sl.post(&sl.v1_url(TOKEN), body.clone()).await, 200);
    assert_eq!(sl.post(&sl.v1_url(TOKEN), body).await, 200, "ShipStation sends it again");
    assert_eq!(sl.post(&sl.v1_url("a-guessed-token"), "{}").await, 404);
    assert_eq!(sl.post(&sl.v1_url(TOKEN), "not json").await, 400);
    assert_eq!(sl.post(&sl.v1_url(TOKEN), ship_notify("https://collector.example/shipments?batchId=7")).await, 400);
    assert_eq!(sl.post(&sl.v2_url(), "{}").await, 404, "no v2 keys on this connection");
    // A connection nobody configured: refused, and not a label.
    assert_eq!(sl.post(&format!("{}/webhooks/shipstation/someone-else/{TOKEN}", sl.url), "{}").await, 404);

    let metrics = sl.http.get(format!("{}/metrics", sl.url)).send().await.unwrap().text().await.unwrap();
    for (source, outcome) in
        [("v1", "accepted"), ("v1", "duplicate"), ("v1", "refused_token"), ("v1", "bad_request"), ("v1", "foreign_host"), ("v2", "not_configured")]
    {
        let line = format!(r#"shipledger_webhooks_received_total{{connection="acme",source="{source}",outcome="{outcome}"}} 1"#);
        assert!(metrics.lines().any(|l| l == line), "no {line} in\n{metrics}");
    }
    assert!(!metrics.contains("someone-else"), "{metrics}");
    // What the deliveries stored: one inbox job, one admin exception for the foreign host.
    assert!(metrics.lines().any(|l| l == r#"shipledger_jobs{connection="acme",kind="ingest_v1_webhook",state="pending"} 1"#), "{metrics}");
    assert!(
        metrics.lines().any(|l| l == r#"shipledger_exceptions_open{connection="acme",kind="webhook_foreign_host",owner="admin"} 1"#),
        "{metrics}"
    );
}
