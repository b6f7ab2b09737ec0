//! The `ingest_v1_webhook` handler: a v1 webhook is a hint that something changed,
//! never fetched itself. One run takes every runnable hint of the connection (up to
//! [`HINTS_PER_RUN`]) once a burst has settled — the newest hint has waited the
//! policy's `webhook_coalesce` (5 s), or the oldest `webhook_coalesce_max` (30 s) — and
//! answers them all with **one** incremental poll of what they can have changed, from
//! the configured ShipStation API: labels created since the watermark (less the
//! overlap) for `SHIP_NOTIFY` and `ITEM_SHIP_NOTIFY` ([`shipments::poll_labels`]),
//! orders marked shipped elsewhere for `FULFILLMENT_SHIPPED`
//! ([`shipments::poll_fulfillments`]). So 200 hints cost a page of shipments, not 200
//! requests, and nothing is ever requested from a hint's `resource_url`. Other kinds
//! (`ORDER_NOTIFY`: orders we pushed) need nothing and are finished at once.
//!
//! Every hint a poll covered is finished done after what the poll found is committed;
//! a hint stored after the run's claim is not covered (its label may have come too
//! late for the poll) and waits for the next run. A hint whose `resource_url` is
//! longer than [`MAX_RESOURCE_URL_LEN`], is not a URL, or points off the configured
//! API is finished dead at once, never retried, and nothing is polled for it; the
//! last also raises the admin's `webhook_foreign_host` exception ([`foreign_webhook`],
//! shared with the receiver) in the same commit. A poll that the configured API
//! redirects to another origin is refused the same way (reason `redirect`) for each
//! hint it was for. A poll that fails otherwise leaves its hints to be retried per the
//! kind's policy through [`jobs`] (a named wait, such as a 429's, spends no attempt);
//! one given up raises nothing, since the scheduled poll still finds what it pointed
//! at, unless an admin must fix the connection ([`jobs::fail_hint`]).

use jiff::{SignedDuration, Timestamp};
use serde_json::json;
use shipledger_core::exception::ExceptionKind;
use shipledger_shipstation::{ForeignReason, MAX_RESOURCE_URL_LEN};
use shipledger_store::{
    Change, EventKind, ExceptionFilter, Job, JobKind, JobSpec, NewEvent, RecordType, RunnableJobs, Store,
    StoreError,
};

use crate::config::Policy;
use crate::flows::shipments::{self, Polled, ShipmentReport};
use crate::jobs;
use crate::{Connection, Engine, EngineError};

/// The most hints one run takes (and one poll answers).
pub const HINTS_PER_RUN: u32 = 500;

/// Run `ingest_v1_webhook` jobs until none is runnable and settled.
pub async fn run(engine: &Engine, conn: &Connection) -> Result<ShipmentReport, EngineError> {
    let mut report = ShipmentReport::default();
    while step(engine, conn, &mut report).await? {}
    Ok(report)
}

/// One bounded step: when the connection's runnable hints have settled
/// ([`settled`]), claim up to [`HINTS_PER_RUN`] of them, refuse the bad ones, run one
/// poll for what the others can have changed and finish each. The hints are held for
/// as long as the step runs ([`jobs::claim_held`]: a poll that waits out a spent rate
/// window outlasts one lease, while a worker that dies leaves them only a lease), and
/// a poll is made only for the hints still held when it starts: those whose lease
/// was lost are answered by the worker that took them. `false` when no hint was
/// runnable, or the burst is still arriving.
pub async fn step(engine: &Engine, conn: &Connection, report: &mut ShipmentReport) -> Result<bool, EngineError> {
    let now = engine.clock.now();
    let waiting = engine.store.runnable_jobs(&conn.name, JobKind::IngestV1Webhook, now).await?;
    if !settled(&conn.policy, &waiting, now) {
        return Ok(false);
    }
    let (hints, lease) = jobs::claim_held(engine, conn, JobKind::IngestV1Webhook, HINTS_PER_RUN).await?;
    if hints.is_empty() {
        return Ok(false);
    }
    let held = |hints: Vec<Job>| -> Vec<Job> { hints.into_iter().filter(|job| lease.still_holds(conn, job, "webhook hint")).collect() };
    let (mut labels, mut fulfillments) = (Vec::new(), Vec::new());
    for job in hints {
        match judge(engine, conn, &job).await? {
            Hint::Labels => labels.push(job),
            Hint::Fulfillments => fulfillments.push(job),
            Hint::Nothing => jobs::done(engine, &job, jobs::change(engine, conn)).await?,
            Hint::Refused { change, why } => refuse(engine, conn, &job, *change, why).await?,
        }
    }
    // One poll per part the hints ask for; its hints are finished after it.
    let mut polled = Polled::default();
    let labels = held(labels);
    if !labels.is_empty() {
        let outcome = shipments::poll_labels(engine, conn, &mut polled).await;
        finish(engine, conn, labels, outcome).await?;
    }
    let fulfillments = held(fulfillments);
    if !fulfillments.is_empty() {
        let outcome = shipments::poll_fulfillments(engine, conn, &mut polled).await;
        finish(engine, conn, fulfillments, outcome).await?;
    }
    report.add(&polled.report);
    Ok(true)
}

/// Whether the hints `waiting` at `now` are to be taken now: there is one, and it is
/// not still arriving ([`jobs::still_arriving`], the claim coalescing every kind
/// shares). A burst is still arriving while fewer than a full run
/// ([`HINTS_PER_RUN`]) wait, the newest came less than `webhook_coalesce` ago (5 s)
/// and the oldest less than `webhook_coalesce_max` ago (30 s, so a steady stream is
/// still answered). A hint put back after a failed poll counts from when it was
/// stored, so its retry is not delayed.
pub fn settled(policy: &Policy, waiting: &RunnableJobs, now: Timestamp) -> bool {
    let full = u64::from(HINTS_PER_RUN);
    let patience = |d: std::time::Duration| SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX);
    let burst_going_on = jobs::still_arriving(waiting, full, waiting.last_planned_at, patience(policy.webhook_coalesce), now);
    let within_the_cap = jobs::still_arriving(waiting, full, waiting.first_planned_at, patience(policy.webhook_coalesce_max), now);
    waiting.count > 0 && !(burst_going_on && within_the_cap)
}

/// What a hint asks for.
enum Hint {
    /// Labels created since the watermark.
    Labels,
    /// Orders marked shipped elsewhere.
    Fulfillments,
    /// Nothing ShipStation can tell us (new orders there are ours).
    Nothing,
    /// Refused for good: finished dead with `change` (an exception, an event) and why.
    Refused { change: Box<Change>, why: String },
}

/// Check a hint as the receiver did (it may have been stored by an older receiver, or
/// planned by hand): its `resource_url` is never fetched, but one that is too long,
/// not a URL or off the configured API is refused, not answered.
async fn judge(engine: &Engine, conn: &Connection, job: &Job) -> Result<Hint, EngineError> {
    let JobSpec::IngestV1Webhook(hook) = &job.spec else {
        return Ok(Hint::Refused {
            change: Box::new(jobs::change(engine, conn)),
            why: format!("job {} is a {} job, not an ingest_v1_webhook", job.id, job.kind()),
        });
    };
    let raw = hook.resource_url.as_str();
    let base = conn.shipstation.base_url();
    let refused = |why: String| Ok(Hint::Refused { change: Box::new(jobs::change(engine, conn)), why });
    let len = raw.chars().count();
    if len > MAX_RESOURCE_URL_LEN {
        return refused(format!(
            "the webhook's resource_url is {len} characters long, more than the {MAX_RESOURCE_URL_LEN} accepted; not fetched"
        ));
    }
    let Ok(url) = url::Url::parse(raw) else {
        return refused(format!("the webhook's resource_url {raw:?} is not a URL; not fetched"));
    };
    if let Some(reason) = shipledger_shipstation::resource_url_mismatch(&url, base) {
        // The receiver checks this too; credentials never leave for another host.
        let why = format!("refused: {raw} is not fetched because {}", reason.explain());
        let foreign = ForeignWebhook { resource_url: raw, resource_type: &hook.resource_type, reason, redirect_to: None, base };
        let change = foreign_webhook(engine.store.as_ref(), &conn.name, engine.clock.now(), &foreign).await?;
        return Ok(Hint::Refused { change: Box::new(change), why });
    }
    Ok(match hook.resource_type.as_str() {
        "SHIP_NOTIFY" | "ITEM_SHIP_NOTIFY" => Hint::Labels,
        "FULFILLMENT_SHIPPED" => Hint::Fulfillments,
        _ => Hint::Nothing,
    })
}

async fn refuse(engine: &Engine, conn: &Connection, job: &Job, change: Change, why: String) -> Result<(), EngineError> {
    tracing::warn!(connection = %conn.name, job = job.id, reason = %why, "webhook inbox job refused; not retried");
    jobs::dead(engine, job, change, why).await
}

/// Finish the hints one poll answered: done when it worked (what it found is already
/// committed), refused when the configured API redirected it off its origin, retried
/// per the kind's policy when it failed otherwise. A store failure stops the run (the
/// leases expire and the hints run again).
async fn finish(engine: &Engine, conn: &Connection, hints: Vec<Job>, outcome: Result<(), EngineError>) -> Result<(), EngineError> {
    match outcome {
        Ok(()) => {
            for job in &hints {
                jobs::done(engine, job, jobs::change(engine, conn)).await?;
            }
            Ok(())
        }
        Err(EngineError::Store(e)) => Err(EngineError::Store(e)),
        Err(EngineError::ShipStation(err @ shipledger_shipstation::Error::RedirectRefused { .. })) => {
            let shipledger_shipstation::Error::RedirectRefused { to, .. } = &err else { unreachable!("matched above") };
            for job in &hints {
                let JobSpec::IngestV1Webhook(hook) = &job.spec else { continue };
                let refused = ForeignWebhook {
                    resource_url: &hook.resource_url,
                    resource_type: &hook.resource_type,
                    reason: ForeignReason::Redirect,
                    redirect_to: Some(to.clone()),
                    base: conn.shipstation.base_url(),
                };
                let change = foreign_webhook(engine.store.as_ref(), &conn.name, engine.clock.now(), &refused).await?;
                refuse(engine, conn, job, change, format!("refused: {err}")).await?;
            }
            Ok(())
        }
        Err(e) => {
            let what = "the poll a ShipStation webhook asked for failed";
            for job in &hints {
                jobs::fail_hint(engine, conn, job, &e, what, "the scheduled poll still finds what it pointed at").await?;
            }
            Ok(())
        }
    }
}

/// The most distinct offending URLs one `webhook_foreign_host` exception keeps (the
/// latest; every refusal is also an event on the timeline).
pub const FOREIGN_URLS_KEPT: usize = 50;

/// A v1 webhook URL that was refused, or a webhook whose poll the configured
/// ShipStation API redirected to another origin.
#[derive(Debug, Clone)]
pub struct ForeignWebhook<'a> {
    /// The webhook's `resource_url`, as it came.
    pub resource_url: &'a str,
    pub resource_type: &'a str,
    pub reason: ForeignReason,
    /// For [`ForeignReason::Redirect`]: where the redirect of the poll pointed.
    pub redirect_to: Option<String>,
    /// The configured ShipStation API.
    pub base: &'a url::Url,
}

/// The change that raises (or refreshes) the admin's `webhook_foreign_host` exception
/// for `refused`, with a `refused` event on the webhook's timeline; the caller commits
/// it (with the job it finishes, if any).
///
/// The exception is on the offending host (`host[:port]` as named; a redirect's
/// target host); its message names the reason (`scheme`, `userinfo`, `host`, `port`
/// or `redirect`) and its detail keeps the reasons seen and the distinct offending
/// URLs, the latest [`FOREIGN_URLS_KEPT`] of them (a redirect's target, else the
/// `resource_url`), each cut to [`MAX_RESOURCE_URL_LEN`] characters with any password
/// blanked, so the detail stays bounded however often it is refreshed. The earlier
/// list is read before the commit, outside its transaction: of two refusals of one
/// host committed at the same moment, the list may keep only the later one's URL;
/// the `refused` events keep every one.
pub async fn foreign_webhook(store: &dyn Store, connection: &str, now: Timestamp, refused: &ForeignWebhook<'_>) -> Result<Change, StoreError> {
    let resource_url = shown_url(refused.resource_url);
    let offending = shown_url(refused.redirect_to.as_deref().unwrap_or(refused.resource_url));
    let host = url::Url::parse(refused.redirect_to.as_deref().unwrap_or(refused.resource_url))
        .ok()
        .and_then(|u| u.host_str().map(|h| match u.port() { Some(p) => format!("{h}:{p}"), None => h.to_string() }))
        .unwrap_or_else(|| "(no host)".to_string());
    let previous = store
        .list_exceptions(ExceptionFilter {
            connection: Some(connection.to_string()),
            live: true,
            kind: Some(ExceptionKind::WebhookForeignHost),
            record_type: Some("webhook".into()),
            record_id: Some(host.clone()),
            limit: 1,
            ..Default::default()
        })
        .await?;
    let earlier = |field: &str| -> Vec<String> {
        previous
            .first()
            .and_then(|e| e.detail[field].as_array())
            .map(|items| items.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
            .unwrap_or_default()
    };
    let mut urls = earlier("offending_urls");
    urls.retain(|u| *u != offending);
    urls.push(offending.clone());
    let drop = urls.len().saturating_sub(FOREIGN_URLS_KEPT);
    urls.drain(..drop);
    let mut reasons = earlier("reasons");
    let reason = refused.reason.code();
    if !reasons.iter().any(|r| r == reason) {
        reasons.push(reason.to_string());
    }
    let base = refused.base;
    let message = match refused.reason {
        ForeignReason::Redirect => format!(
            "asking the configured ShipStation API {base} for what a v1 webhook ({resource_url}) announced, it answered with a \
             redirect to {offending}, another origin; the redirect was not followed, nothing was sent there (no credentials either) \
             and nothing was ingested. If ShipStation moved, set base_url to its new address; otherwise something between shipledger \
             and ShipStation (a proxy, DNS) is redirecting its requests: find it before trusting this connection's webhooks again."
        ),
        reason => format!(
            "a v1 webhook with a valid token pointed at {resource_url}, which is refused because {}; the configured ShipStation \
             API is {base}; nothing was fetched and no credentials were sent. Someone who knows this connection's webhook token \
             may be probing the endpoint: rotate the token (webhook_token_env) and subscribe the webhooks again with the new URL.",
            reason.explain()
        ),
    };
    let mut detail = json!({
        "message": message,
        "reason": reason,
        "reasons": reasons,
        "resource_url": resource_url,
        "resource_type": refused.resource_type,
        "allowed_base": base.as_str(),
        "offending_urls": urls,
    });
    if refused.reason == ForeignReason::Redirect {
        detail["redirect_to"] = json!(offending);
    }
    let mut change = Change::new(connection, now);
    change.raise(ExceptionKind::WebhookForeignHost, "webhook", host.clone(), detail);
    change.events.push(NewEvent::new(
        RecordType::Webhook,
        host,
        EventKind::Refused,
        json!({"reason": reason, "resource_url": resource_url, "offending_url": offending}),
    ));
    Ok(change)
}

/// A URL as an exception may show it: any password blanked, at most
/// [`MAX_RESOURCE_URL_LEN`] characters.
fn shown_url(raw: &str) -> String {
    let blanked = match url::Url::parse(raw) {
        Ok(mut url) if url.password().is_some() => {
            let _ = url.set_password(Some("redacted"));
            url.to_string()
        }
        _ => raw.to_string(),
    };
    if blanked.chars().count() <= MAX_RESOURCE_URL_LEN {
        return blanked;
    }
    let mut cut: String = blanked.chars().take(MAX_RESOURCE_URL_LEN).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flows::test_support::at;

    fn waiting(count: u64, first: i64, last: i64) -> RunnableJobs {
        RunnableJobs { count, first_planned_at: Some(at(first)), last_planned_at: Some(at(last)) }
    }

    #[test]
    fn hints_are_taken_once_the_newest_has_waited_five_seconds_or_the_oldest_thirty() {
        let p = Policy::default();
        assert!(!settled(&p, &RunnableJobs::default(), at(100)), "no hint, nothing to take");
        assert!(!settled(&p, &waiting(200, 90, 96), at(100)), "the newest came 4 s ago: the burst may go on");
        assert!(settled(&p, &waiting(200, 90, 95), at(100)), "5 s of quiet: the burst is over");
        assert!(!settled(&p, &waiting(200, 71, 100), at(100)), "a stream for 29 s: still waiting");
        assert!(settled(&p, &waiting(200, 70, 100), at(100)), "the oldest has waited 30 s: taken however busy the stream");
        let eager = Policy { webhook_coalesce: std::time::Duration::ZERO, ..Policy::default() };
        assert!(settled(&eager, &waiting(1, 100, 100), at(100)), "no quiet asked for: taken at once");
        let full = u64::from(HINTS_PER_RUN);
        assert!(!settled(&p, &waiting(full - 1, 99, 100), at(100)), "a run not yet full, still arriving: waiting");
        assert!(settled(&p, &waiting(full, 99, 100), at(100)), "a full run of hints is answered at once, like a full run of pushes");
    }
}
