//! The ShipStation v2 API (`api.shipstation.com/v2`), the parts shipledger uses:
//! labels, tracking (the only carrier-scan signal ShipStation has), webhooks and
//! inventory; plus v2 webhook signature verification ([`signature`]).

pub mod model;
pub mod signature;

use std::collections::HashSet;
use std::sync::Arc;

use jiff::Timestamp;
use reqwest::Method;
use url::Url;

use crate::budget::{InMemoryRateBudget, RateBudget};
use shipledger_core::clock::{Clock, SystemClock};
use crate::config::ClientConfig;
use crate::error::{Error, Result};
use crate::retry::Idempotency;
use crate::transport::{Api, Transport};
use model::*;

/// Filters of `GET /v2/labels`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LabelFilter {
    pub label_status: Option<LabelStatus>,
    pub service_code: Option<String>,
    pub carrier_id: Option<String>,
    pub tracking_number: Option<String>,
    pub batch_id: Option<String>,
    pub rate_id: Option<String>,
    pub shipment_id: Option<String>,
    pub warehouse_id: Option<String>,
    pub created_at_start: Option<Timestamp>,
    pub created_at_end: Option<Timestamp>,
    pub page: Option<u32>,
    pub page_size: Option<u32>,
    /// `asc` or `desc`.
    pub sort_dir: Option<String>,
    /// `modified_at` or `created_at`.
    pub sort_by: Option<String>,
}

impl LabelFilter {
    fn to_query(&self) -> Vec<(&'static str, String)> {
        let mut q = Vec::new();
        let mut text = |k: &'static str, v: &Option<String>| {
            if let Some(v) = v {
                q.push((k, v.clone()));
            }
        };
        text(
            "label_status",
            &self.label_status.as_ref().map(|s| s.as_str().to_owned()),
        );
        text("service_code", &self.service_code);
        text("carrier_id", &self.carrier_id);
        text("tracking_number", &self.tracking_number);
        text("batch_id", &self.batch_id);
        text("rate_id", &self.rate_id);
        text("shipment_id", &self.shipment_id);
        text("warehouse_id", &self.warehouse_id);
        text(
            "created_at_start",
            &self.created_at_start.map(|t| t.to_string()),
        );
        text(
            "created_at_end",
            &self.created_at_end.map(|t| t.to_string()),
        );
        text("page", &self.page.map(|p| p.to_string()));
        text("page_size", &self.page_size.map(|p| p.to_string()));
        text("sort_dir", &self.sort_dir);
        text("sort_by", &self.sort_by);
        q
    }
}

/// Filters of `GET /v2/inventory`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InventoryFilter {
    pub sku: Option<String>,
    pub inventory_warehouse_id: Option<String>,
    pub inventory_location_id: Option<String>,
    /// `warehouse` or `location`.
    pub group_by: Option<String>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

/// A ShipStation v2 client. Cheap to clone; clones share the rate budget.
#[derive(Debug, Clone)]
pub struct V2Client {
    transport: Arc<Transport>,
}

impl V2Client {
    /// A client with its own in-memory budget on the real clock.
    pub fn new(config: ClientConfig) -> Result<Self> {
        Self::with_budget(
            config,
            Arc::new(InMemoryRateBudget::new()),
            Arc::new(SystemClock),
        )
    }

    /// A client that consults `budget` and waits on `clock`.
    pub fn with_budget(
        config: ClientConfig,
        budget: Arc<dyn RateBudget>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self> {
        Ok(V2Client {
            transport: Arc::new(Transport::new(Api::V2, config, budget, clock)?),
        })
    }

    /// The key this client's requests are counted under in the budget.
    pub fn budget_key(&self) -> String {
        self.transport.config().budget_key("v2")
    }

    fn url(&self, segments: &[&str], query: &[(&str, String)]) -> Url {
        let mut all = vec!["v2"];
        all.extend_from_slice(segments);
        let mut url = self.transport.endpoint(&all);
        if !query.is_empty() {
            let mut pairs = url.query_pairs_mut();
            for (k, v) in query {
                pairs.append_pair(k, v);
            }
        }
        url
    }

    /// `GET /v2/labels`: one page.
    pub async fn list_labels(&self, filter: &LabelFilter) -> Result<LabelList> {
        self.transport
            .get(self.url(&["labels"], &filter.to_query()))
            .await
    }

    /// `GET /v2/labels/{label_id}` (`se-<v1 shipmentId>`).
    pub async fn get_label(&self, label_id: &str) -> Result<Label> {
        self.transport
            .get(self.url(&["labels", label_id], &[]))
            .await
    }

    /// `GET /v2/labels/{label_id}/track`.
    pub async fn track_label(&self, label_id: &str) -> Result<TrackingInfo> {
        self.transport
            .get(self.url(&["labels", label_id, "track"], &[]))
            .await
    }

    /// `GET /v2/tracking?carrier_code=&tracking_number=`.
    pub async fn get_tracking(
        &self,
        carrier_code: &str,
        tracking_number: &str,
    ) -> Result<TrackingInfo> {
        let query = [
            ("carrier_code", carrier_code.to_owned()),
            ("tracking_number", tracking_number.to_owned()),
        ];
        self.transport.get(self.url(&["tracking"], &query)).await
    }

    /// `POST /v2/tracking/start`: subscribe to track webhooks for this parcel (also
    /// for labels bought outside ShipStation, if the carrier is connected).
    pub async fn start_tracking(&self, carrier_code: &str, tracking_number: &str) -> Result<()> {
        let query = [
            ("carrier_code", carrier_code.to_owned()),
            ("tracking_number", tracking_number.to_owned()),
        ];
        let url = self.url(&["tracking", "start"], &query);
        self.transport
            .send_no_content(Method::POST, url, None, Idempotency::Idempotent)
            .await
    }

    /// `POST /v2/tracking/stop`.
    pub async fn stop_tracking(&self, carrier_code: &str, tracking_number: &str) -> Result<()> {
        let query = [
            ("carrier_code", carrier_code.to_owned()),
            ("tracking_number", tracking_number.to_owned()),
        ];
        let url = self.url(&["tracking", "stop"], &query);
        self.transport
            .send_no_content(Method::POST, url, None, Idempotency::Idempotent)
            .await
    }

    /// `GET /v2/environment/webhooks`.
    pub async fn list_webhooks(&self) -> Result<Vec<Webhook>> {
        self.transport
            .get(self.url(&["environment", "webhooks"], &[]))
            .await
    }

    /// `POST /v2/environment/webhooks`. A second webhook for the same event answers
    /// 409 (`webhook_event_type_conflict`) as [`Error::Api`], so a retry cannot
    /// duplicate it.
    pub async fn create_webhook(&self, request: &CreateWebhook) -> Result<Webhook> {
        self.transport
            .send(
                Method::POST,
                self.url(&["environment", "webhooks"], &[]),
                request,
                Idempotency::Idempotent,
            )
            .await
    }

    /// `DELETE /v2/environment/webhooks/{webhook_id}`.
    pub async fn delete_webhook(&self, webhook_id: &str) -> Result<()> {
        let url = self.url(&["environment", "webhooks", webhook_id], &[]);
        self.transport
            .send_no_content(Method::DELETE, url, None, Idempotency::Idempotent)
            .await
    }

    /// `GET /v2/inventory`: one page.
    pub async fn list_inventory(&self, filter: &InventoryFilter) -> Result<InventoryList> {
        let mut q = Vec::new();
        let mut text = |k: &'static str, v: &Option<String>| {
            if let Some(v) = v {
                q.push((k, v.clone()));
            }
        };
        text("sku", &filter.sku);
        text("inventory_warehouse_id", &filter.inventory_warehouse_id);
        text("inventory_location_id", &filter.inventory_location_id);
        text("group_by", &filter.group_by);
        text("limit", &filter.limit.map(|l| l.to_string()));
        text("cursor", &filter.cursor);
        self.transport.get(self.url(&["inventory"], &q)).await
    }

    /// Every inventory record, following `links.next` until it is absent (or repeats).
    pub async fn all_inventory(&self, filter: &InventoryFilter) -> Result<Vec<InventoryItem>> {
        let mut page = self.list_inventory(filter).await?;
        let mut all = std::mem::take(&mut page.inventory);
        let mut followed = HashSet::new();
        while let Some(next) = page.links.next_href().map(str::to_owned) {
            if !followed.insert(next.clone()) {
                break;
            }
            let url = self.transport.endpoint(&[]).join(&next).map_err(|e| {
                Error::InvalidRequest(format!("inventory links.next {next:?} is not a URL: {e}"))
            })?;
            page = self.transport.get(url).await?;
            if page.inventory.is_empty() {
                break;
            }
            all.append(&mut page.inventory);
        }
        Ok(all)
    }
}
