//! v1 list filters and their query strings. Instants are sent as v1's Pacific
//! `yyyy-mm-dd hh:mm:ss`; `pageSize` is checked against the documented maximum (500)
//! before anything is sent.

use jiff::Timestamp;
use jiff::civil::Date;
use shipledger_core::time::pacific::format_v1_query;

use super::model::OrderStatus;
use crate::error::{Error, Result};

/// The largest `pageSize` v1 accepts.
pub const MAX_PAGE_SIZE: u32 = 500;

/// `sortDir`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortDir {
    Asc,
    Desc,
}

impl SortDir {
    fn as_str(self) -> &'static str {
        match self {
            SortDir::Asc => "ASC",
            SortDir::Desc => "DESC",
        }
    }
}

/// `sortBy` of `GET /orders` (default: ascending `orderId`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderSortBy {
    OrderDate,
    ModifyDate,
    CreateDate,
}

/// `sortBy` of `GET /shipments` and `GET /fulfillments` (default: `CreateDate`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShipmentSortBy {
    ShipDate,
    CreateDate,
}

pub(crate) type Query = Vec<(&'static str, String)>;

struct Builder(Query);

impl Builder {
    fn text(&mut self, key: &'static str, value: &Option<String>) {
        if let Some(v) = value {
            self.0.push((key, v.clone()));
        }
    }
    fn num(&mut self, key: &'static str, value: Option<i64>) {
        if let Some(v) = value {
            self.0.push((key, v.to_string()));
        }
    }
    fn time(&mut self, key: &'static str, value: Option<Timestamp>) {
        if let Some(ts) = value {
            self.0.push((key, format_v1_query(ts)));
        }
    }
    fn date(&mut self, key: &'static str, value: Option<Date>) {
        if let Some(d) = value {
            self.0.push((key, d.to_string()));
        }
    }
    fn paging(
        &mut self,
        sort_dir: Option<SortDir>,
        page: Option<u32>,
        page_size: Option<u32>,
    ) -> Result<()> {
        if let Some(dir) = sort_dir {
            self.0.push(("sortDir", dir.as_str().to_owned()));
        }
        if let Some(page) = page {
            self.0.push(("page", page.to_string()));
        }
        if let Some(size) = page_size {
            if size == 0 || size > MAX_PAGE_SIZE {
                return Err(Error::InvalidRequest(format!(
                    "pageSize {size} is outside ShipStation's 1..={MAX_PAGE_SIZE}; ask for at most {MAX_PAGE_SIZE} per page"
                )));
            }
            self.0.push(("pageSize", size.to_string()));
        }
        Ok(())
    }
}

/// Filters of `GET /orders`. All optional; instants are UTC and converted to Pacific.
///
/// `order_number` is a *starts-with* match on ShipStation's side: compare exactly on
/// yours.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OrderFilter {
    pub customer_name: Option<String>,
    /// Searches SKU, description and options.
    pub item_keyword: Option<String>,
    pub create_date_start: Option<Timestamp>,
    pub create_date_end: Option<Timestamp>,
    pub modify_date_start: Option<Timestamp>,
    pub modify_date_end: Option<Timestamp>,
    pub order_date_start: Option<Timestamp>,
    pub order_date_end: Option<Timestamp>,
    pub order_number: Option<String>,
    pub order_status: Option<OrderStatus>,
    pub payment_date_start: Option<Timestamp>,
    pub payment_date_end: Option<Timestamp>,
    pub store_id: Option<i64>,
    pub sort_by: Option<OrderSortBy>,
    pub sort_dir: Option<SortDir>,
    /// First page to read (1-based).
    pub page: Option<u32>,
    /// 1..=500.
    pub page_size: Option<u32>,
}

impl OrderFilter {
    pub(crate) fn to_query(&self) -> Result<Query> {
        let mut q = Builder(Vec::new());
        q.text("customerName", &self.customer_name);
        q.text("itemKeyword", &self.item_keyword);
        q.time("createDateStart", self.create_date_start);
        q.time("createDateEnd", self.create_date_end);
        q.time("modifyDateStart", self.modify_date_start);
        q.time("modifyDateEnd", self.modify_date_end);
        q.time("orderDateStart", self.order_date_start);
        q.time("orderDateEnd", self.order_date_end);
        q.text("orderNumber", &self.order_number);
        q.text(
            "orderStatus",
            &self.order_status.as_ref().map(|s| s.as_str().to_owned()),
        );
        q.time("paymentDateStart", self.payment_date_start);
        q.time("paymentDateEnd", self.payment_date_end);
        q.num("storeId", self.store_id);
        if let Some(by) = self.sort_by {
            let by = match by {
                OrderSortBy::OrderDate => "OrderDate",
                OrderSortBy::ModifyDate => "ModifyDate",
                OrderSortBy::CreateDate => "CreateDate",
            };
            q.0.push(("sortBy", by.to_owned()));
        }
        q.paging(self.sort_dir, self.page, self.page_size)?;
        Ok(q.0)
    }
}

/// Filters of `GET /shipments`. Set `include_shipment_items` to get
/// `shipmentItems` (they are `null` otherwise).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ShipmentFilter {
    pub recipient_name: Option<String>,
    pub recipient_country_code: Option<String>,
    pub order_number: Option<String>,
    pub order_id: Option<i64>,
    pub carrier_code: Option<String>,
    pub service_code: Option<String>,
    pub tracking_number: Option<String>,
    pub create_date_start: Option<Timestamp>,
    pub create_date_end: Option<Timestamp>,
    pub ship_date_start: Option<Date>,
    pub ship_date_end: Option<Date>,
    /// Poll voids with this window: there is no void webhook.
    pub void_date_start: Option<Timestamp>,
    pub void_date_end: Option<Timestamp>,
    pub store_id: Option<i64>,
    /// The `batchId` of SHIP_NOTIFY resource URLs.
    pub batch_id: Option<i64>,
    pub include_shipment_items: bool,
    pub sort_by: Option<ShipmentSortBy>,
    pub sort_dir: Option<SortDir>,
    pub page: Option<u32>,
    pub page_size: Option<u32>,
}

impl ShipmentFilter {
    pub(crate) fn to_query(&self) -> Result<Query> {
        let mut q = Builder(Vec::new());
        q.text("recipientName", &self.recipient_name);
        q.text("recipientCountryCode", &self.recipient_country_code);
        q.text("orderNumber", &self.order_number);
        q.num("orderId", self.order_id);
        q.text("carrierCode", &self.carrier_code);
        q.text("serviceCode", &self.service_code);
        q.text("trackingNumber", &self.tracking_number);
        q.time("createDateStart", self.create_date_start);
        q.time("createDateEnd", self.create_date_end);
        q.date("shipDateStart", self.ship_date_start);
        q.date("shipDateEnd", self.ship_date_end);
        q.time("voidDateStart", self.void_date_start);
        q.time("voidDateEnd", self.void_date_end);
        q.num("storeId", self.store_id);
        q.num("batchId", self.batch_id);
        if self.include_shipment_items {
            q.0.push(("includeShipmentItems", "true".to_owned()));
        }
        shipment_sort(&mut q, self.sort_by);
        q.paging(self.sort_dir, self.page, self.page_size)?;
        Ok(q.0)
    }
}

fn shipment_sort(q: &mut Builder, sort_by: Option<ShipmentSortBy>) {
    if let Some(by) = sort_by {
        let by = match by {
            ShipmentSortBy::ShipDate => "ShipDate",
            ShipmentSortBy::CreateDate => "CreateDate",
        };
        q.0.push(("sortBy", by.to_owned()));
    }
}

/// Filters of `GET /fulfillments` (orders marked shipped without a ShipStation label).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FulfillmentFilter {
    pub fulfillment_id: Option<i64>,
    pub order_id: Option<i64>,
    pub order_number: Option<String>,
    pub tracking_number: Option<String>,
    pub recipient_name: Option<String>,
    pub create_date_start: Option<Timestamp>,
    pub create_date_end: Option<Timestamp>,
    pub ship_date_start: Option<Date>,
    pub ship_date_end: Option<Date>,
    pub sort_by: Option<ShipmentSortBy>,
    pub sort_dir: Option<SortDir>,
    pub page: Option<u32>,
    pub page_size: Option<u32>,
}

impl FulfillmentFilter {
    pub(crate) fn to_query(&self) -> Result<Query> {
        let mut q = Builder(Vec::new());
        q.num("fulfillmentId", self.fulfillment_id);
        q.num("orderId", self.order_id);
        q.text("orderNumber", &self.order_number);
        q.text("trackingNumber", &self.tracking_number);
        q.text("recipientName", &self.recipient_name);
        q.time("createDateStart", self.create_date_start);
        q.time("createDateEnd", self.create_date_end);
        q.date("shipDateStart", self.ship_date_start);
        q.date("shipDateEnd", self.ship_date_end);
        shipment_sort(&mut q, self.sort_by);
        q.paging(self.sort_dir, self.page, self.page_size)?;
        Ok(q.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_windows_are_sent_as_pacific_wall_clock() {
        let filter = OrderFilter {
            modify_date_start: Some("2024-07-01T07:00:00Z".parse().unwrap()),
            modify_date_end: Some("2024-12-01T08:00:00Z".parse().unwrap()),
            order_status: Some(OrderStatus::AwaitingShipment),
            page_size: Some(500),
            ..Default::default()
        };
        let q = filter.to_query().unwrap();
        assert!(
            q.contains(&("modifyDateStart", "2024-07-01 00:00:00".to_owned())),
            "{q:?}"
        );
        assert!(
            q.contains(&("modifyDateEnd", "2024-12-01 00:00:00".to_owned())),
            "{q:?}"
        );
        assert!(q.contains(&("orderStatus", "awaiting_shipment".to_owned())));
    }

    #[test]
    fn a_page_size_above_500_is_refused_before_sending() {
        let err = OrderFilter {
            page_size: Some(501),
            ..Default::default()
        }
        .to_query()
        .unwrap_err();
        assert!(err.to_string().contains("500"), "{err}");
    }
}
