//! The request loop shared by [`V1Client`](crate::V1Client) and
//! [`V2Client`](crate::V2Client): ask the rate budget, send, report the rate headers,
//! classify the answer, and retry what [`is_retriable`] allows.
//!
//! Credentials are marked sensitive on the request so no `Debug` output of a request
//! shows them, and the tracing spans carry only the method, the path and the attempt.
//!
//! A request follows a redirect only inside the origins it may [`Reach`] (see
//! [`crate::redirect`]): one off them is never sent, so credentials never cross
//! origins, and it fails as [`Error::RedirectRefused`], which is never retried.
//!
//! Every attempt is counted ([`ExternalRequest`]: requests by templated endpoint and
//! status, latency, 429s, retries) and every rate header sets the budget key's
//! remaining-requests gauge.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::Instrument as _;
use shipledger_core::metrics::{ExternalRequest, System, endpoint_template};
use url::Url;

use crate::budget::{Admission, RateBudget, RateObservation};
use shipledger_core::clock::Clock;
use crate::config::ClientConfig;
use crate::error::{Error, Result, TransportKind, error_message, snippet};
use crate::redirect;
use crate::retry::{self, Idempotency, is_retriable};
use crate::v1::resource_url_allowed;

/// Which ShipStation API a transport talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Api {
    V1,
    V2,
}

impl Api {
    fn label(self) -> &'static str {
        match self {
            Api::V1 => "v1",
            Api::V2 => "v2",
        }
    }

    fn system(self) -> System {
        match self {
            Api::V1 => System::ShipStationV1,
            Api::V2 => System::ShipStationV2,
        }
    }
}

/// Which origins a request may reach, by redirect as well as directly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reach {
    /// The configured `base_url`'s origin only: every request the client builds.
    Configured,
    /// A v1 webhook's `resource_url`: the configured origin and, when it is
    /// `ssapi.<domain>`, its numbered shards ([`resource_url_allowed`]).
    WebhookResource,
}

pub(crate) struct Transport {
    /// Follows redirects within the configured origin only.
    http: reqwest::Client,
    /// Follows redirects within the origins a webhook's `resource_url` may name.
    resource_http: reqwest::Client,
    config: ClientConfig,
    auth_name: HeaderName,
    auth_value: HeaderValue,
    partner: Option<HeaderValue>,
    budget: Arc<dyn RateBudget>,
    clock: Arc<dyn Clock>,
    budget_key: String,
    api: Api,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("api", &self.api)
            .field("config", &self.config)
            .field("budget", &self.budget)
            .field("budget_key", &self.budget_key)
            .finish_non_exhaustive()
    }
}

fn sensitive(value: &str, what: &str) -> Result<HeaderValue> {
    let mut header = HeaderValue::from_str(value).map_err(|_| {
        Error::Config(format!(
            "the {what} contains characters that cannot go in an HTTP header"
        ))
    })?;
    header.set_sensitive(true);
    Ok(header)
}

impl Transport {
    /// The same API, key and endpoints, counted against `budget` instead.
    pub(crate) fn rebudgeted(&self, budget: Arc<dyn RateBudget>) -> Result<Self> {
        Transport::new(self.api, self.config.clone(), budget, self.clock.clone())
    }

    pub(crate) fn new(
        api: Api,
        config: ClientConfig,
        budget: Arc<dyn RateBudget>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self> {
        if !matches!(config.base_url.scheme(), "http" | "https")
            || config.base_url.cannot_be_a_base()
        {
            return Err(Error::Config(format!(
                "base_url {} is not an http(s) URL; use e.g. https://ssapi.shipstation.com",
                config.base_url
            )));
        }
        let (auth_name, auth_value) = match api {
            Api::V1 => {
                let secret = config.api_secret.as_ref().ok_or_else(|| {
                    Error::Config(
                        "a v1 client needs api_secret as well as api_key (HTTP Basic auth)"
                            .to_owned(),
                    )
                })?;
                let pair = format!("{}:{}", config.api_key.expose(), secret.expose());
                let encoded = base64::engine::general_purpose::STANDARD.encode(pair);
                (
                    reqwest::header::AUTHORIZATION,
                    sensitive(&format!("Basic {encoded}"), "API key or secret")?,
                )
            }
            Api::V2 => (
                HeaderName::from_static("api-key"),
                sensitive(config.api_key.expose(), "v2 API key")?,
            ),
        };
        let partner = match &config.partner_key {
            Some(p) => Some(sensitive(p.expose(), "partner key")?),
            None => None,
        };
        let client = |redirects: reqwest::redirect::Policy| {
            reqwest::Client::builder()
                .timeout(config.timeout)
                .connect_timeout(config.timeout.min(Duration::from_secs(10)))
                .user_agent(config.user_agent.clone())
                .redirect(redirects)
                .build()
                .map_err(|e| Error::Config(format!("cannot build the HTTP client: {e}")))
        };
        let base = config.base_url.clone();
        let http = client(redirect::policy(move |target, _| redirect::same_origin(target, &base)))?;
        let base = config.base_url.clone();
        let resource_http = client(redirect::policy(move |target, from| resource_url_allowed(target, &base) && redirect::same_origin(target, from)))?;
        let budget_key = config.budget_key(api.label());
        Ok(Transport {
            http,
            resource_http,
            config,
            auth_name,
            auth_value,
            partner,
            budget,
            clock,
            budget_key,
            api,
        })
    }

    pub(crate) fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// `base_url` plus path segments, each percent-encoded.
    pub(crate) fn endpoint(&self, segments: &[&str]) -> Url {
        let mut url = self.config.base_url.clone();
        url.set_query(None);
        {
            // Checked in `new`: the base URL can be a base.
            let mut path = url.path_segments_mut().expect("base_url is an http(s) URL");
            path.pop_if_empty();
            path.extend(segments);
        }
        url
    }

    pub(crate) async fn get<T: DeserializeOwned>(&self, url: Url) -> Result<T> {
        self.get_within(Reach::Configured, url).await
    }

    /// `GET url`, following redirects only within `reach`.
    pub(crate) async fn get_within<T: DeserializeOwned>(&self, reach: Reach, url: Url) -> Result<T> {
        let request = describe(&Method::GET, &url);
        let body = self
            .call_within(reach, Method::GET, url.clone(), None, Idempotency::Idempotent)
            .await?;
        decode(&request, &url, &body)
    }

    pub(crate) async fn send<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        method: Method,
        url: Url,
        body: &B,
        idempotency: Idempotency,
    ) -> Result<T> {
        let request = describe(&method, &url);
        let payload = serde_json::to_vec(body).map_err(|e| {
            Error::InvalidRequest(format!("cannot encode the body of {request}: {e}"))
        })?;
        let answer = self
            .call(method, url.clone(), Some(payload), idempotency)
            .await?;
        decode(&request, &url, &answer)
    }

    /// A request whose answer has no body worth reading (204, or `{success,...}` we ignore).
    pub(crate) async fn send_no_content(
        &self,
        method: Method,
        url: Url,
        body: Option<Vec<u8>>,
        idempotency: Idempotency,
    ) -> Result<()> {
        self.call(method, url, body, idempotency).await.map(|_| ())
    }

    /// The request loop for a request the client built (on the configured origin).
    /// Returns the body of a 2xx answer.
    pub(crate) async fn call(
        &self,
        method: Method,
        url: Url,
        body: Option<Vec<u8>>,
        idempotency: Idempotency,
    ) -> Result<Vec<u8>> {
        self.call_within(Reach::Configured, method, url, body, idempotency)
            .await
    }

    /// The request loop, following redirects only within `reach`.
    pub(crate) async fn call_within(
        &self,
        reach: Reach,
        method: Method,
        url: Url,
        body: Option<Vec<u8>>,
        idempotency: Idempotency,
    ) -> Result<Vec<u8>> {
        let request = describe(&method, &url);
        let span = tracing::debug_span!("shipstation.request", api = self.api.label(), method = %method, path = %url.path());
        let backoff = retry::policy(self.config.backoff_base, self.config.backoff_max);
        let metric = ExternalRequest::new(
            self.api.system(),
            method.as_str(),
            endpoint_template(self.config.base_url.path(), url.path()),
        );
        async {
            let mut attempt: u32 = 0;
            loop {
                self.wait_for_budget(&request).await?;
                let outcome = self
                    .attempt(reach, &method, &url, body.as_deref(), &request, &metric)
                    .await;
                let err = match outcome {
                    Ok(body) => return Ok(body),
                    Err(err) => err,
                };
                if attempt >= self.config.max_retries || !is_retriable(&err, idempotency) {
                    tracing::debug!(attempt, error = %err, "shipstation request failed, not retrying");
                    return Err(err);
                }
                let delay = match &err {
                    Error::RateLimited { retry_after: Some(wait), .. } => {
                        if *wait > self.config.max_rate_wait {
                            return Err(err);
                        }
                        *wait
                    }
                    _ => retry::delay(&backoff, attempt),
                };
                tracing::warn!(attempt, delay_ms = delay.as_millis() as u64, error = %err, "retrying shipstation request");
                metric.retried();
                self.clock.sleep(delay).await;
                attempt += 1;
            }
        }
        .instrument(span)
        .await
    }

    async fn wait_for_budget(&self, request: &str) -> Result<()> {
        loop {
            match self.budget.acquire(&self.budget_key).await {
                Admission::Proceed => return Ok(()),
                Admission::Wait(wait) if wait > self.config.max_rate_wait => {
                    return Err(Error::RateLimited {
                        request: request.to_owned(),
                        retry_after: Some(wait),
                    });
                }
                Admission::Wait(wait) => {
                    tracing::debug!(
                        wait_ms = wait.as_millis() as u64,
                        "rate window spent, waiting before sending"
                    );
                    self.clock.sleep(wait).await;
                }
            }
        }
    }

    async fn attempt(
        &self,
        reach: Reach,
        method: &Method,
        url: &Url,
        body: Option<&[u8]>,
        request: &str,
        metric: &ExternalRequest,
    ) -> Result<Vec<u8>> {
        let http = match reach {
            Reach::Configured => &self.http,
            Reach::WebhookResource => &self.resource_http,
        };
        let mut builder = http
            .request(method.clone(), url.clone())
            .header(self.auth_name.clone(), self.auth_value.clone())
            .header(ACCEPT, "application/json");
        if let Some(partner) = &self.partner {
            builder = builder.header("x-partner", partner.clone());
        }
        if let Some(body) = body {
            builder = builder
                .header(CONTENT_TYPE, "application/json")
                .body(body.to_vec());
        }
        let transport = |source: reqwest::Error| Error::Transport {
            request: request.to_owned(),
            kind: TransportKind::of(&source),
            source: source.without_url(),
        };
        // Latency is real elapsed time, whatever clock paces the retries.
        let started = std::time::Instant::now();
        let response = match builder.send().await {
            Ok(response) => response,
            Err(e) => {
                metric.failed(started.elapsed());
                return Err(transport(e));
            }
        };
        let status = response.status();
        let headers = response.headers().clone();
        if let Some(observation) = rate_headers(&headers) {
            shipledger_core::metrics::rate_budget_remaining(&self.budget_key, observation.remaining);
            self.budget.observe(&self.budget_key, observation).await;
        }
        if let Some((from, to)) = redirect::refused(&response) {
            metric.answered(status.as_u16(), started.elapsed());
            // The policy stopped here: the target is off the allowed origins.
            tracing::warn!(
                status = status.as_u16(),
                "shipstation request redirected off its allowed origin; not followed"
            );
            return Err(Error::RedirectRefused {
                request: request.to_owned(),
                from,
                to,
            });
        }
        let body = match response.bytes().await {
            Ok(body) => body,
            Err(e) => {
                metric.failed(started.elapsed());
                return Err(transport(e));
            }
        };
        metric.answered(status.as_u16(), started.elapsed());
        tracing::debug!(
            status = status.as_u16(),
            bytes = body.len(),
            "shipstation answered"
        );
        if status.is_success() {
            return Ok(body.to_vec());
        }
        Err(match status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Error::Unauthorized {
                request: request.to_owned(),
                status: status.as_u16(),
                message: error_message(&body),
            },
            StatusCode::NOT_FOUND => Error::NotFound {
                request: request.to_owned(),
                path: url.path().to_owned(),
            },
            StatusCode::TOO_MANY_REQUESTS => {
                let wait = retry_wait(&headers, self.clock.now());
                if let Some(wait) = wait {
                    // Pause every caller sharing this key, not just this one.
                    let limit = header_u32(&headers, "x-rate-limit-limit");
                    shipledger_core::metrics::rate_budget_remaining(&self.budget_key, 0);
                    self.budget
                        .observe(
                            &self.budget_key,
                            RateObservation {
                                limit,
                                remaining: 0,
                                reset_after: wait,
                            },
                        )
                        .await;
                }
                Error::RateLimited {
                    request: request.to_owned(),
                    retry_after: wait,
                }
            }
            _ => Error::Api {
                request: request.to_owned(),
                status: status.as_u16(),
                message: error_message(&body),
            },
        })
    }
}

/// `GET /orders/123`: what the error messages call a request (no query: it may hold
/// customer names).
pub(crate) fn describe(method: &Method, url: &Url) -> String {
    format!("{method} {}", url.path())
}

pub(crate) fn decode<T: DeserializeOwned>(request: &str, url: &Url, body: &[u8]) -> Result<T> {
    // An empty 2xx body reads as JSON null, so `()` and `Option<_>` answers work.
    let body_for_parse: &[u8] = if body.iter().all(u8::is_ascii_whitespace) {
        b"null"
    } else {
        body
    };
    serde_json::from_slice(body_for_parse).map_err(|source| Error::Decode {
        request: request.to_owned(),
        path: url.path().to_owned(),
        snippet: snippet(body, 300),
        source,
    })
}

fn header_str<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

fn header_u32(headers: &HeaderMap, name: &str) -> Option<u32> {
    header_str(headers, name).and_then(|v| v.parse().ok())
}

fn seconds(value: &str) -> Option<Duration> {
    let secs: f64 = value.parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(86_400.0)))
}

/// `X-Rate-Limit-Remaining` and `-Reset` (and `-Limit` when present).
pub(crate) fn rate_headers(headers: &HeaderMap) -> Option<RateObservation> {
    let remaining = header_u32(headers, "x-rate-limit-remaining")?;
    let reset_after = header_str(headers, "x-rate-limit-reset").and_then(seconds)?;
    Some(RateObservation {
        limit: header_u32(headers, "x-rate-limit-limit"),
        remaining,
        reset_after,
    })
}

/// How long a 429 asks us to wait: `X-Rate-Limit-Reset` seconds (v1), else
/// `Retry-After` as seconds or an HTTP-date (v2).
pub(crate) fn retry_wait(headers: &HeaderMap, now: jiff::Timestamp) -> Option<Duration> {
    if let Some(reset) = header_str(headers, "x-rate-limit-reset").and_then(seconds) {
        return Some(reset);
    }
    let retry_after = header_str(headers, "retry-after")?;
    if let Some(secs) = seconds(retry_after) {
        return Some(secs);
    }
    let at = jiff::fmt::rfc2822::DateTimeParser::new()
        .parse_timestamp(retry_after)
        .ok()?;
    let wait = at.duration_since(now);
    Some(Duration::try_from(wait).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        map
    }

    #[test]
    fn v1_reset_wins_over_retry_after() {
        let h = headers(&[("x-rate-limit-reset", "7"), ("retry-after", "30")]);
        assert_eq!(
            retry_wait(&h, jiff::Timestamp::now()),
            Some(Duration::from_secs(7))
        );
    }

    #[test]
    fn retry_after_may_be_seconds_or_an_http_date() {
        let now: jiff::Timestamp = "2015-10-21T07:27:00Z".parse().unwrap();
        assert_eq!(
            retry_wait(&headers(&[("retry-after", "12")]), now),
            Some(Duration::from_secs(12))
        );
        assert_eq!(
            retry_wait(
                &headers(&[("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT")]),
                now
            ),
            Some(Duration::from_secs(60))
        );
        // A date in the past means "now".
        assert_eq!(
            retry_wait(
                &headers(&[("retry-after", "Wed, 21 Oct 2015 07:20:00 GMT")]),
                now
            ),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_wait(&headers(&[]), now), None);
    }

    #[test]
    fn rate_headers_are_read_when_complete() {
        let h = headers(&[
            ("x-rate-limit-limit", "40"),
            ("x-rate-limit-remaining", "29"),
            ("x-rate-limit-reset", "22"),
        ]);
        assert_eq!(
            rate_headers(&h),
            Some(RateObservation {
                limit: Some(40),
                remaining: 29,
                reset_after: Duration::from_secs(22)
            })
        );
        assert_eq!(
            rate_headers(&headers(&[("x-rate-limit-remaining", "3")])),
            None
        );
    }
}
