//! The `ingest_v1_webhook` handler: a v1 webhook's hint, stored by the receiver,
//! whose resource is fetched only from the configured ShipStation API (checked again
//! here) and never through a redirect to another origin; the labels and fulfillments
//! it names are ingested like polled ones ([`shipments`](crate::flows::shipments)).
//!
//! A job whose `resource_url` is longer than [`MAX_RESOURCE_URL_LEN`], is not a URL,
//! points off the configured API, or whose fetch is redirected off it, is finished
//! dead at once, never retried and nothing ingested; the last two also raise the
//! admin's `webhook_foreign_host` exception ([`foreign_webhook`], shared with the
//! receiver) in the same commit. Other failed fetches are retried per the kind's
//! policy; one given up raises nothing, since polling still finds what it pointed at.

use std::collections::HashMap;

use jiff::Timestamp;
use serde_json::json;
use shipledger_core::exception::ExceptionKind;
use shipledger_shipstation::v1::model as ss;
use shipledger_shipstation::{ForeignReason, MAX_RESOURCE_URL_LEN};
use shipledger_store::{
    Change, EventKind, ExceptionFilter, ExceptionState, Job, JobKind, JobSpec, NewEvent, RecordType, Store, StoreError,
};

use crate::flows::shipments::{ShipmentReport, WM_CREATED, ingest_fulfillment, ingest_label};
use crate::jobs;
use crate::{Connection, Engine, EngineError};

/// Run `ingest_v1_webhook` jobs until none is runnable.
pub async fn run(engine: &Engine, conn: &Connection) -> Result<ShipmentReport, EngineError> {
    let mut report = ShipmentReport::default();
    while step(engine, conn, &mut report).await? {}
    Ok(report)
}

/// One bounded step: claim up to 20 runnable `ingest_v1_webhook` jobs and ingest
/// each. `false` when none was runnable.
pub async fn step(engine: &Engine, conn: &Connection, report: &mut ShipmentReport) -> Result<bool, EngineError> {
    let mut parents = HashMap::new();
    let jobs = jobs::claim(engine, conn, JobKind::IngestV1Webhook, 20).await?;
    if jobs.is_empty() {
        return Ok(false);
    }
    for job in jobs {
        let outcome = ingest(engine, conn, &job, &mut parents, report).await;
        settle(engine, conn, job, outcome).await?;
    }
    Ok(true)
}

/// What became of an inbox job that did not fail in a way worth retrying.
enum Inboxed {
    /// Ingested (or nothing to ingest).
    Done,
    /// Refused for good: finished dead with `change` (an exception, an event) and why.
    Refused { change: Change, why: String },
}

async fn ingest(
    engine: &Engine,
    conn: &Connection,
    job: &Job,
    parents: &mut HashMap<i64, Option<String>>,
    report: &mut ShipmentReport,
) -> Result<Inboxed, EngineError> {
    let JobSpec::IngestV1Webhook(hook) = &job.spec else {
        return Ok(Inboxed::Refused {
            change: jobs::change(engine, conn),
            why: format!("job {} is a {} job, not an ingest_v1_webhook", job.id, job.kind()),
        });
    };
    let raw = hook.resource_url.as_str();
    let kind = hook.resource_type.as_str();
    let base = conn.shipstation.base_url();
    let refused = |why: String| Ok(Inboxed::Refused { change: jobs::change(engine, conn), why });
    let len = raw.chars().count();
    if len > MAX_RESOURCE_URL_LEN {
        return refused(format!(
            "the webhook's resource_url is {len} characters long, more than the {MAX_RESOURCE_URL_LEN} accepted; not fetched"
        ));
    }
    let Ok(url) = url::Url::parse(raw) else {
        return refused(format!("the webhook's resource_url {raw:?} is not a URL; not fetched"));
    };
    let foreign = |reason: ForeignReason, redirect_to: Option<&str>| ForeignWebhook {
        resource_url: raw,
        resource_type: kind,
        reason,
        redirect_to: redirect_to.map(str::to_string),
        base,
    };
    if let Some(reason) = shipledger_shipstation::resource_url_mismatch(&url, base) {
        // The receiver checks this too; credentials never leave for another host.
        let why = format!("refused: {raw} is not fetched because {}", reason.explain());
        let change = foreign_webhook(engine.store.as_ref(), &conn.name, engine.clock.now(), &foreign(reason, None)).await?;
        return Ok(Inboxed::Refused { change, why });
    }
    let fetched = match kind {
        "SHIP_NOTIFY" | "ITEM_SHIP_NOTIFY" => conn
            .shipstation
            .get_resource::<ss::Page<ss::Shipment>>(&shipledger_shipstation::with_shipment_items(&url))
            .await
            .map(|page| (page.items, Vec::new())),
        "FULFILLMENT_SHIPPED" => conn.shipstation.get_resource::<ss::Page<ss::Fulfillment>>(&url).await.map(|page| (Vec::new(), page.items)),
        // New orders in ShipStation are ours (we pushed them): nothing to learn.
        _ => Ok((Vec::new(), Vec::new())),
    };
    let (labels, fulfillments) = match fetched {
        Ok(found) => found,
        Err(err) => {
            let shipledger_shipstation::Error::RedirectRefused { to, .. } = &err else { return Err(err.into()) };
            let refused = foreign(ForeignReason::Redirect, Some(to));
            let change = foreign_webhook(engine.store.as_ref(), &conn.name, engine.clock.now(), &refused).await?;
            return Ok(Inboxed::Refused { change, why: format!("refused: {err}") });
        }
    };
    for label in &labels {
        ingest_label(engine, conn, label, WM_CREATED, None, parents, report).await?;
    }
    for f in &fulfillments {
        // A webhook's fulfillment moves no poll's watermark (an older one may still be unseen).
        ingest_fulfillment(engine, conn, f, None, parents, report).await?;
    }
    Ok(Inboxed::Done)
}

/// Finish an inbox job (dead at once when it was refused), or retry it later when
/// the fetch failed. A store failure stops the pass (the lease expires and the job
/// runs again).
async fn settle(engine: &Engine, conn: &Connection, job: Job, outcome: Result<Inboxed, EngineError>) -> Result<(), EngineError> {
    match outcome {
        Ok(Inboxed::Done) => jobs::done(engine, &job, jobs::change(engine, conn)).await,
        Ok(Inboxed::Refused { change, why }) => {
            tracing::warn!(connection = %conn.name, job = job.id, reason = %why, "webhook inbox job refused; not retried");
            jobs::dead(engine, &job, change, why).await
        }
        Err(EngineError::Store(e)) => Err(EngineError::Store(e)),
        Err(e) => {
            // Polling will still find what this webhook pointed at.
            let what = "a ShipStation webhook's resource could not be fetched";
            jobs::fail_hint(engine, conn, &job, &e, what, "polling still finds what it pointed at").await?;
            Ok(())
        }
    }
}

/// The most distinct offending URLs one `webhook_foreign_host` exception keeps (the
/// latest; every refusal is also an event on the timeline).
pub const FOREIGN_URLS_KEPT: usize = 50;

/// A v1 webhook URL that was not fetched, or whose fetch was redirected off the
/// configured ShipStation API.
#[derive(Debug, Clone)]
pub struct ForeignWebhook<'a> {
    /// The webhook's `resource_url`, as it came.
    pub resource_url: &'a str,
    pub resource_type: &'a str,
    pub reason: ForeignReason,
    /// For [`ForeignReason::Redirect`]: where the redirect pointed.
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
            state: Some(ExceptionState::Open),
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
            "fetching a v1 webhook's resource {resource_url} from the configured ShipStation API {base}, it answered with a redirect \
             to {offending}, another origin; the redirect was not followed, nothing was sent there (no credentials either) and \
             nothing was ingested. If ShipStation moved, set base_url to its new address; otherwise something between shipledger \
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
