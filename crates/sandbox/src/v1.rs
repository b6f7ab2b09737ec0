//! ShipStation v1 (`ssapi.shipstation.com`): orders (and the users assigned to them),
//! shipments (rates, labels with or without an order, voids), fulfillments, webhooks,
//! and the account a client configures itself from: stores (update, deactivate,
//! reactivate, refresh status, marketplaces), warehouses (create, update, soft
//! delete), carriers (services, packages, funds), products (one per SKU, made when an
//! order line first shows it, with an id that never moves; `PUT` replaces one),
//! customers (`stateCode`, `countryCode`, `sortBy`, `sortDir`) and users.
//!
//! Times go out as US Pacific wall-clock strings without an offset (7 fractional
//! digits on orders and shipments, 3 on items, dates alone for `shipDate`) and come in
//! the same way. Money and weights go out as bare JSON numbers with no currency, from
//! exact decimals (`weightOz` is the line's weight converted on decimals, never
//! through milligrams). Bodies that do not parse get ASP.NET's `{"Message",
//! "ModelState"}`.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use jiff::Timestamp;
use rust_decimal::Decimal;
use serde_json::{Map, Value, json};
use shipledger_core::time::pacific::{
    Bound, format_v1_timestamp, format_v1_timestamp_millis, parse_v1_date, parse_v1_datetime,
};

use crate::Shared;
use crate::delivery;
use crate::error::V1Error;
use crate::query::{Query, page_of};
use crate::state::{
    ALL_STATUSES, Advanced, Fulfillment, Item, LabelRequest, Order, Product, Shipment, World, uuid_like, weight_in_ounces,
};

type Shared_ = State<Arc<Shared>>;

pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/orders", get(list_orders))
        .route("/orders/listbytag", get(list_orders_by_tag))
        .route("/orders/{order_id}", get(get_order).delete(delete_order))
        .route("/orders/createorder", post(create_order))
        .route("/orders/createorders", post(create_orders))
        .route("/orders/holduntil", post(hold_until))
        .route("/orders/restorefromhold", post(restore_from_hold))
        .route("/orders/markasshipped", post(mark_as_shipped))
        .route("/orders/addtag", post(add_tag))
        .route("/orders/removetag", post(remove_tag))
        .route("/orders/createlabelfororder", post(create_label_for_order))
        .route("/orders/assignuser", post(assign_user))
        .route("/orders/unassignuser", post(unassign_user))
        .route("/shipments", get(list_shipments))
        .route("/shipments/getrates", post(get_rates))
        .route("/shipments/createlabel", post(create_label))
        .route("/shipments/voidlabel", post(void_label))
        .route("/fulfillments", get(list_fulfillments))
        .route("/webhooks", get(list_webhooks))
        .route("/webhooks/subscribe", post(subscribe))
        .route("/webhooks/{webhook_id}", delete(unsubscribe))
        .route("/stores", get(list_stores))
        .route("/stores/marketplaces", get(list_marketplaces))
        .route("/stores/getrefreshstatus", get(get_refresh_status))
        .route("/stores/deactivate", post(deactivate_store))
        .route("/stores/reactivate", post(reactivate_store))
        .route("/stores/{store_id}", get(get_store).put(update_store))
        .route("/warehouses", get(list_warehouses))
        .route("/warehouses/createwarehouse", post(create_warehouse))
        .route("/warehouses/{warehouse_id}", get(get_warehouse).put(update_warehouse).delete(delete_warehouse))
        .route("/carriers", get(list_carriers))
        .route("/carriers/addfunds", post(add_funds))
        .route("/carriers/getcarrier", get(get_carrier))
        .route("/carriers/listservices", get(list_services))
        .route("/carriers/listpackages", get(list_packages))
        .route("/accounts/listtags", get(list_tags))
        .route("/products", get(list_products))
        .route("/products/{product_id}", get(get_product).put(update_product))
        .route("/customers", get(list_customers))
        .route("/customers/{customer_id}", get(get_customer))
        .route("/users", get(list_users))
}

// ---------------------------------------------------------------- rendering

fn ts(t: Option<Timestamp>) -> Value {
    t.map(|t| Value::String(format_v1_timestamp(t))).unwrap_or(Value::Null)
}

fn num(d: Option<Decimal>) -> Value {
    match d {
        Some(d) => serde_json::from_str(&d.normalize().to_string()).unwrap_or(Value::Null),
        None => Value::Null,
    }
}

fn item_json(i: &Item) -> Value {
    json!({
        "orderItemId": i.order_item_id,
        "lineItemKey": i.line_item_key,
        "sku": i.sku,
        "name": i.name,
        "imageUrl": i.image_url,
        "weight": i.weight,
        "quantity": i.quantity,
        "unitPrice": num(i.unit_price),
        "taxAmount": num(i.tax_amount),
        "shippingAmount": num(i.shipping_amount),
        "warehouseLocation": i.warehouse_location,
        "options": i.options,
        "productId": i.product_id,
        "fulfillmentSku": i.fulfillment_sku,
        "adjustment": i.adjustment,
        "upc": i.upc,
        "createDate": format_v1_timestamp_millis(i.create_date),
        "modifyDate": format_v1_timestamp_millis(i.modify_date),
    })
}

fn advanced_json(a: &Advanced) -> Value {
    let mut map = Map::new();
    for key in [
        "nonMachinable",
        "saturdayDelivery",
        "containsAlcohol",
        "customField1",
        "customField2",
        "customField3",
        "source",
        "billToParty",
        "billToAccount",
        "billToPostalCode",
        "billToCountryCode",
        "billToMyOtherAccount",
    ] {
        let default = if matches!(key, "nonMachinable" | "saturdayDelivery" | "containsAlcohol") {
            Value::Bool(false)
        } else {
            Value::Null
        };
        map.insert(key.into(), a.rest.get(key).cloned().unwrap_or(default));
    }
    map.insert("warehouseId".into(), json!(a.warehouse_id));
    map.insert("storeId".into(), json!(a.store_id));
    map.insert("mergedOrSplit".into(), json!(a.merged_or_split));
    map.insert("mergedIds".into(), json!(a.merged_ids));
    map.insert("parentId".into(), json!(a.parent_id));
    Value::Object(map)
}

pub fn order_json(o: &Order) -> Value {
    let total = order_total(o);
    json!({
        "orderId": o.order_id,
        "orderNumber": o.order_number,
        "orderKey": o.order_key,
        "orderDate": ts(o.order_date),
        "createDate": format_v1_timestamp(o.create_date),
        "modifyDate": format_v1_timestamp(o.modify_date),
        "paymentDate": ts(o.payment_date),
        "shipByDate": ts(o.ship_by_date),
        "orderStatus": o.order_status,
        "customerId": o.customer_id,
        "customerUsername": o.customer_username,
        "customerEmail": o.customer_email,
        "billTo": o.bill_to,
        "shipTo": o.ship_to,
        "items": o.items.iter().map(item_json).collect::<Vec<_>>(),
        "orderTotal": num(Some(total)),
        "amountPaid": num(o.amount_paid),
        "taxAmount": num(o.tax_amount),
        "shippingAmount": num(o.shipping_amount),
        "customerNotes": o.customer_notes,
        "internalNotes": o.internal_notes,
        "gift": o.gift,
        "giftMessage": o.gift_message,
        "paymentMethod": o.payment_method,
        "requestedShippingService": o.requested_shipping_service,
        "carrierCode": o.carrier_code,
        "serviceCode": o.service_code,
        "packageCode": o.package_code,
        "confirmation": o.confirmation,
        "shipDate": o.ship_date.map(|d| d.to_string()),
        "holdUntilDate": o.hold_until_date.map(|d| d.to_string()),
        "weight": o.weight,
        "dimensions": o.dimensions,
        "insuranceOptions": o.insurance_options,
        "internationalOptions": o.international_options,
        "advancedOptions": advanced_json(&o.advanced),
        "tagIds": o.tag_ids,
        "userId": o.user_id,
        "externallyFulfilled": o.externally_fulfilled,
        "externallyFulfilledBy": o.externally_fulfilled_by,
        "externallyFulfilledById": null,
        "externallyFulfilledByName": null,
        "labelMessages": null,
    })
}

/// ShipStation computes `orderTotal`: lines plus tax plus shipping.
fn order_total(o: &Order) -> Decimal {
    let lines: Decimal = o.items.iter().map(|i| i.unit_price.unwrap_or_default() * Decimal::from(i.quantity)).sum();
    lines + o.tax_amount.unwrap_or_default() + o.shipping_amount.unwrap_or_default()
}

pub fn shipment_json(s: &Shipment, with_items: bool) -> Value {
    let items = if with_items {
        Value::Array(
            s.items
                .iter()
                .map(|i| {
                    json!({
                        "orderItemId": i.order_item_id,
                        "lineItemKey": i.line_item_key,
                        "sku": i.sku,
                        "name": i.name,
                        "imageUrl": i.image_url,
                        "weight": i.weight,
                        "quantity": i.quantity,
                        "unitPrice": num(i.unit_price),
                        "taxAmount": null,
                        "shippingAmount": null,
                        "warehouseLocation": i.warehouse_location,
                        "options": i.options,
                        "productId": i.product_id,
                        "fulfillmentSku": i.fulfillment_sku,
                        "adjustment": i.adjustment,
                        "upc": i.upc,
                        "createDate": null,
                        "modifyDate": null,
                    })
                })
                .collect(),
        )
    } else {
        Value::Null
    };
    json!({
        "shipmentId": s.shipment_id,
        "orderId": s.order_id,
        "orderKey": s.order_key,
        "userId": s.user_id,
        "customerEmail": s.customer_email,
        "orderNumber": s.order_number,
        "createDate": format_v1_timestamp(s.create_date),
        "shipDate": s.ship_date.to_string(),
        "shipmentCost": num(Some(s.shipment_cost)),
        "insuranceCost": num(Some(s.insurance_cost)),
        "trackingNumber": s.tracking_number,
        "isReturnLabel": false,
        "batchNumber": s.batch_id.to_string(),
        "carrierCode": s.carrier_code,
        "serviceCode": s.service_code,
        "packageCode": s.package_code,
        "confirmation": s.confirmation,
        "warehouseId": s.warehouse_id,
        "voided": s.voided,
        "voidDate": ts(s.void_date),
        "marketplaceNotified": false,
        "notifyErrorMessage": null,
        "shipTo": s.ship_to,
        "weight": s.weight,
        "dimensions": s.dimensions,
        "insuranceOptions": {"provider": null, "insureShipment": false, "insuredValue": 0.0},
        "advancedOptions": {"billToParty": null, "billToAccount": null, "billToPostalCode": null, "billToCountryCode": null, "storeId": s.store_id},
        "shipmentItems": items,
        "labelData": null,
        "formData": null,
    })
}

fn fulfillment_json(f: &Fulfillment) -> Value {
    json!({
        "fulfillmentId": f.fulfillment_id,
        "orderId": f.order_id,
        "orderNumber": f.order_number,
        "userId": f.user_id,
        "customerEmail": f.customer_email,
        "trackingNumber": f.tracking_number,
        "createDate": format_v1_timestamp(f.create_date),
        "shipDate": f.ship_date.map(|d| d.to_string()),
        "voidDate": ts(f.void_date),
        "deliveryDate": ts(f.delivery_date),
        "carrierCode": f.carrier_code,
        "sellerFillProviderId": null,
        "sellerFillProviderName": null,
        "fulfillmentProviderCode": null,
        "fulfillmentServiceCode": null,
        "fulfillmentFee": 0.0,
        "voidRequested": false,
        "voided": f.voided,
        "marketplaceNotified": f.marketplace_notified,
        "notifyErrorMessage": null,
        "shipTo": f.ship_to,
    })
}

// ---------------------------------------------------------------- parsing

fn parse_body(body: &Bytes, what: &str) -> Result<Value, V1Error> {
    serde_json::from_slice(body).map_err(|e| V1Error::Invalid {
        field: what.to_string(),
        message: format!("Error converting the request body: {e}"),
    })
}

fn opt_str(v: &Value, key: &str) -> Option<String> {
    match v.get(key) {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    }
}

fn opt_i64(v: &Value, key: &str, field: &str) -> Result<Option<i64>, V1Error> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n.as_i64().map(Some).ok_or_else(|| invalid(field, key, n)),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => s.parse().map(Some).map_err(|_| invalid(field, key, s)),
        Some(other) => Err(invalid(field, key, other)),
    }
}

fn opt_bool(v: &Value, key: &str) -> bool {
    v.get(key).and_then(Value::as_bool).unwrap_or(false)
}

fn opt_decimal(v: &Value, key: &str, field: &str) -> Result<Option<Decimal>, V1Error> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => {
            let text = n.to_string();
            let parsed = if text.contains(['e', 'E']) {
                Decimal::from_scientific(&text)
            } else {
                text.parse::<Decimal>()
            };
            parsed.map(Some).map_err(|_| invalid(field, key, n))
        }
        Some(Value::String(s)) => s.parse().map(Some).map_err(|_| invalid(field, key, s)),
        Some(other) => Err(invalid(field, key, other)),
    }
}

fn invalid(field: &str, key: &str, got: impl std::fmt::Display) -> V1Error {
    V1Error::Invalid {
        field: format!("{field}.{key}"),
        message: format!("Could not convert '{got}' for {key}."),
    }
}

fn opt_time(v: &Value, key: &str, field: &str) -> Result<Option<Timestamp>, V1Error> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => parse_v1_datetime(s).map(Some).map_err(|e| V1Error::Invalid {
            field: format!("{field}.{key}"),
            message: format!("Could not convert '{s}' to a date: {e}"),
        }),
        Some(other) => Err(invalid(field, key, other)),
    }
}

fn opt_date(v: &Value, key: &str, field: &str) -> Result<Option<jiff::civil::Date>, V1Error> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => {
            let date_part = s.split(['T', ' ']).next().unwrap_or(s);
            parse_v1_date(date_part).map(Some).map_err(|e| V1Error::Invalid {
                field: format!("{field}.{key}"),
                message: format!("Could not convert '{s}' to a date: {e}"),
            })
        }
        Some(other) => Err(invalid(field, key, other)),
    }
}

fn obj_or_null(v: &Value, key: &str) -> Value {
    match v.get(key) {
        Some(Value::Object(o)) => Value::Object(o.clone()),
        Some(Value::Array(a)) => Value::Array(a.clone()),
        _ => Value::Null,
    }
}

fn address(v: &Value, key: &str, what: &str) -> Result<Value, V1Error> {
    let Some(Value::Object(obj)) = v.get(key) else {
        return Err(V1Error::Invalid {
            field: format!("{what}.{key}"),
            message: format!("The {key} field is required."),
        });
    };
    let mut out = Map::new();
    for k in [
        "name", "company", "street1", "street2", "street3", "city", "state", "postalCode", "country", "phone",
        "residential",
    ] {
        out.insert(k.into(), obj.get(k).cloned().unwrap_or(Value::Null));
    }
    out.insert("addressVerified".into(), json!("Address not yet validated"));
    Ok(Value::Object(out))
}

/// Read an order body into an [`Order`], replacing `existing` wholesale (ShipStation
/// updates are full replaces) but keeping what is fixed at creation.
fn order_from_body(world: &mut World, v: &Value, existing: Option<&Order>, now: Timestamp, batch: &str) -> Result<Order, V1Error> {
    const F: &str = "apiOrder";
    let order_number = match opt_str(v, "orderNumber") {
        Some(n) if !n.trim().is_empty() => n,
        _ => {
            return Err(V1Error::Invalid {
                field: "apiOrder.orderNumber".into(),
                message: "The orderNumber field is required.".into(),
            });
        }
    };
    if order_number.chars().count() > 50 {
        return Err(V1Error::Invalid {
            field: "apiOrder.orderNumber".into(),
            message: format!("orderNumber '{order_number}' is longer than 50 characters."),
        });
    }
    let order_date = opt_time(v, "orderDate", F)?;
    if order_date.is_none() {
        return Err(V1Error::Invalid { field: "apiOrder.orderDate".into(), message: "The orderDate field is required.".into() });
    }
    let status = opt_str(v, "orderStatus").unwrap_or_default();
    if !ALL_STATUSES.contains(&status.as_str()) {
        return Err(V1Error::Invalid {
            field: "apiOrder.orderStatus".into(),
            message: format!(
                "'{status}' is not a valid orderStatus; use one of {}.",
                ALL_STATUSES.join(", ")
            ),
        });
    }
    let bill_to = address(v, "billTo", F)?;
    let ship_to = address(v, "shipTo", F)?;

    let mut items = Vec::new();
    if let Some(list) = v.get("items").and_then(Value::as_array) {
        for (n, raw) in list.iter().enumerate() {
            let field = format!("apiOrder.items[{n}]");
            let name = opt_str(raw, "name").ok_or_else(|| V1Error::Invalid {
                field: format!("{field}.name"),
                message: "The name field is required.".into(),
            })?;
            let line_item_key = opt_str(raw, "lineItemKey");
            let kept = existing.and_then(|e| {
                e.items.iter().find(|i| i.line_item_key.is_some() && i.line_item_key == line_item_key)
            });
            let order_item_id = match kept {
                Some(k) => k.order_item_id,
                None => {
                    world.ids.item += 1;
                    world.ids.item
                }
            };
            items.push(Item {
                order_item_id,
                line_item_key,
                sku: opt_str(raw, "sku"),
                name,
                image_url: opt_str(raw, "imageUrl"),
                weight: obj_or_null(raw, "weight"),
                quantity: opt_i64(raw, "quantity", &field)?.unwrap_or(1),
                unit_price: opt_decimal(raw, "unitPrice", &field)?,
                tax_amount: opt_decimal(raw, "taxAmount", &field)?,
                shipping_amount: opt_decimal(raw, "shippingAmount", &field)?,
                warehouse_location: opt_str(raw, "warehouseLocation"),
                options: raw.get("options").cloned().filter(|o| o.is_array()).unwrap_or(json!([])),
                product_id: opt_i64(raw, "productId", &field)?,
                fulfillment_sku: opt_str(raw, "fulfillmentSku"),
                adjustment: opt_bool(raw, "adjustment"),
                upc: opt_str(raw, "upc"),
                create_date: kept.map(|k| k.create_date).unwrap_or(now),
                modify_date: now,
            });
        }
    }

    let adv_in = v.get("advancedOptions").cloned().unwrap_or(Value::Null);
    let mut rest = Map::new();
    if let Value::Object(obj) = &adv_in {
        for (k, val) in obj {
            if !matches!(k.as_str(), "storeId" | "warehouseId" | "mergedOrSplit" | "mergedIds" | "parentId") {
                rest.insert(k.clone(), val.clone());
            }
        }
    }
    let store_id = match existing {
        Some(e) => e.advanced.store_id,
        None => match opt_i64(&adv_in, "storeId", "apiOrder.advancedOptions")? {
            Some(id) if world.stores.iter().any(|s| s.store_id == id) => id,
            Some(id) => {
                return Err(V1Error::BadRequest(format!(
                    "storeId {id} is not a store of this account; see GET /stores"
                )));
            }
            None => world.default_store_id(),
        },
    };
    let advanced = Advanced {
        store_id,
        warehouse_id: opt_i64(&adv_in, "warehouseId", "apiOrder.advancedOptions")?
            .or_else(|| world.warehouses.iter().find(|w| w.is_default).map(|w| w.warehouse_id)),
        merged_or_split: existing.is_some_and(|e| e.advanced.merged_or_split),
        merged_ids: existing.map(|e| e.advanced.merged_ids.clone()).unwrap_or_default(),
        parent_id: existing.and_then(|e| e.advanced.parent_id),
        rest,
    };

    let customer_email = opt_str(v, "customerEmail");
    let customer_username = opt_str(v, "customerUsername");
    let customer_id = world.customer_id(customer_email.as_deref(), customer_username.as_deref());
    let order_key = existing
        .map(|e| e.order_key.clone())
        .or_else(|| opt_str(v, "orderKey").filter(|k| !k.is_empty()))
        .unwrap_or_default();
    Ok(Order {
        order_id: existing.map(|e| e.order_id).unwrap_or(0),
        order_number,
        order_key,
        order_date,
        create_date: existing.map(|e| e.create_date).unwrap_or(now),
        modify_date: now,
        payment_date: opt_time(v, "paymentDate", F)?,
        ship_by_date: opt_time(v, "shipByDate", F)?,
        order_status: status,
        customer_id,
        customer_username,
        customer_email,
        bill_to,
        ship_to,
        items,
        amount_paid: opt_decimal(v, "amountPaid", F)?,
        tax_amount: opt_decimal(v, "taxAmount", F)?,
        shipping_amount: opt_decimal(v, "shippingAmount", F)?,
        customer_notes: opt_str(v, "customerNotes"),
        internal_notes: opt_str(v, "internalNotes"),
        gift: opt_bool(v, "gift"),
        gift_message: opt_str(v, "giftMessage"),
        payment_method: opt_str(v, "paymentMethod"),
        requested_shipping_service: opt_str(v, "requestedShippingService"),
        carrier_code: opt_str(v, "carrierCode"),
        service_code: opt_str(v, "serviceCode"),
        package_code: opt_str(v, "packageCode"),
        confirmation: opt_str(v, "confirmation"),
        ship_date: opt_date(v, "shipDate", F)?,
        hold_until_date: opt_date(v, "holdUntilDate", F)?,
        weight: obj_or_null(v, "weight"),
        dimensions: obj_or_null(v, "dimensions"),
        insurance_options: obj_or_null(v, "insuranceOptions"),
        international_options: obj_or_null(v, "internationalOptions"),
        advanced,
        tag_ids: v.get("tagIds").and_then(|t| serde_json::from_value(t.clone()).ok()),
        user_id: existing.and_then(|e| e.user_id.clone()),
        externally_fulfilled: false,
        externally_fulfilled_by: None,
        active: true,
        merged_into: None,
        import_batch: existing.map(|e| e.import_batch.clone()).unwrap_or_else(|| batch.to_string()),
    })
}

/// Give each line without a `productId` the product of its SKU (made at the SKU's
/// first sight), once the order is accepted.
fn assign_products(world: &mut World, order: &mut Order, now: Timestamp) {
    for item in &mut order.items {
        if item.product_id.is_none() {
            item.product_id = world.product_for(item, now);
        }
    }
}

/// Create or update (by `orderKey`, else `orderId`) one order. Returns the order id and
/// whether it was new.
fn upsert(world: &mut World, v: &Value, now: Timestamp, batch: &str) -> Result<(i64, bool), V1Error> {
    if !v.is_object() {
        return Err(V1Error::Invalid { field: "apiOrder".into(), message: "An order must be a JSON object.".into() });
    }
    let by_key = opt_str(v, "orderKey").filter(|k| !k.is_empty()).and_then(|k| world.order_keys.get(&k).copied());
    let by_id = match by_key {
        Some(id) => Some(id),
        None => match opt_i64(v, "orderId", "apiOrder")? {
            Some(id) if id > 0 => match world.orders.get(&id) {
                Some(_) => Some(id),
                None => return Err(V1Error::BadRequest(format!("orderId {id} was not found; omit orderId to create an order"))),
            },
            _ => None,
        },
    };
    match by_id {
        Some(id) => {
            let existing = world.orders.get(&id).cloned().expect("indexed order exists");
            if !existing.visible() {
                return Err(V1Error::BadRequest(format!(
                    "order {id} ({}) was merged into order {} and can no longer be updated",
                    existing.order_number,
                    existing.merged_into.unwrap_or_default()
                )));
            }
            if !existing.is_open() {
                return Err(V1Error::BadRequest(format!(
                    "order {id} ({}) is {} and can no longer be updated",
                    existing.order_number, existing.order_status
                )));
            }
            let mut order = order_from_body(world, v, Some(&existing), now, batch)?;
            assign_products(world, &mut order, now);
            order.order_id = id;
            order.active = existing.active;
            world.orders.insert(id, order);
            Ok((id, false))
        }
        None => {
            let mut order = order_from_body(world, v, None, now, batch)?;
            assign_products(world, &mut order, now);
            world.ids.order += 1;
            let id = world.ids.order;
            order.order_id = id;
            if order.order_key.is_empty() {
                order.order_key = uuid_like(id);
            }
            world.order_keys.insert(order.order_key.clone(), id);
            world.orders.insert(id, order);
            Ok((id, true))
        }
    }
}

// ---------------------------------------------------------------- orders

async fn create_order(State(shared): Shared_, body: Bytes) -> Result<Json<Value>, V1Error> {
    let v = parse_body(&body, "apiOrder")?;
    let now = shared.clock.now();
    let batch = uuid_like(now.as_nanosecond() as i64);
    shared.with_world(|w| {
        let (id, created) = upsert(w, &v, now, &batch)?;
        let order = w.orders[&id].clone();
        if created {
            delivery::order_notify(&shared, w, order.store_id(), &batch);
        }
        Ok(Json(order_json(&order)))
    })
}

async fn create_orders(State(shared): Shared_, body: Bytes) -> Result<Json<Value>, V1Error> {
    let v = parse_body(&body, "apiOrders")?;
    let Value::Array(list) = v else {
        return Err(V1Error::Invalid {
            field: "apiOrders".into(),
            message: "Expected a JSON array of orders.".into(),
        });
    };
    if list.len() > 100 {
        return Err(V1Error::BadRequest(format!(
            "You may create or update at most 100 orders per request; this request had {}. Split it into batches.",
            list.len()
        )));
    }
    let now = shared.clock.now();
    let batch = uuid_like(now.as_nanosecond() as i64 ^ 0x0bad);
    let fail_share = shared.read_world(|w| {
        if w.faults.applies_to("/orders/createorders") { w.faults.createorders_fail } else { 0.0 }
    });
    shared.with_world(|w| {
        let mut results = Vec::new();
        let mut stores = std::collections::BTreeSet::new();
        for raw in &list {
            let order_number = opt_str(raw, "orderNumber");
            let order_key = opt_str(raw, "orderKey");
            let injected = fail_share > 0.0 && {
                use rand::Rng;
                shared.rng.lock().expect("rng").gen_bool(fail_share.min(1.0))
            };
            if injected {
                *w.stats.faults.entry("createorders_item".into()).or_default() += 1;
                results.push(json!({
                    "orderId": 0, "orderNumber": order_number, "orderKey": order_key, "success": false,
                    "errorMessage": "An error occurred while saving the order. Please try again."
                }));
                continue;
            }
            match upsert(w, raw, now, &batch) {
                Ok((id, created)) => {
                    let o = &w.orders[&id];
                    if created {
                        stores.insert(o.store_id());
                    }
                    results.push(json!({
                        "orderId": id, "orderNumber": o.order_number, "orderKey": o.order_key,
                        "success": true, "errorMessage": null
                    }));
                }
                Err(e) => {
                    let message = match e {
                        V1Error::Invalid { field, message } => format!("{field}: {message}"),
                        V1Error::BadRequest(m) | V1Error::NotFound(m) => m,
                    };
                    results.push(json!({
                        "orderId": 0, "orderNumber": order_number, "orderKey": order_key,
                        "success": false, "errorMessage": message
                    }));
                }
            }
        }
        for store in stores {
            delivery::order_notify(&shared, w, store, &batch);
        }
        let has_errors = results.iter().any(|r| r["success"] == json!(false));
        Ok(Json(json!({"hasErrors": has_errors, "results": results})))
    })
}

/// A path segment that should be an id but is not a number: to ShipStation's router
/// that is no resource at all.
fn no_resource(path: &str) -> V1Error {
    V1Error::NotFound(format!(
        "No HTTP resource was found that matches the request URI 'https://ssapi.shipstation.com{path}'."
    ))
}

async fn get_order(State(shared): Shared_, Path(order_id): Path<String>) -> Result<Json<Value>, V1Error> {
    let id: i64 = order_id.parse().map_err(|_| no_resource(&format!("/orders/{order_id}")))?;
    shared.read_world(|w| Ok(Json(order_json(w.visible_order(id)?))))
}

async fn delete_order(State(shared): Shared_, Path(order_id): Path<String>) -> Result<Json<Value>, V1Error> {
    let id: i64 = order_id.parse().map_err(|_| no_resource(&format!("/orders/{order_id}")))?;
    let now = shared.clock.now();
    shared.with_world(|w| {
        w.visible_order(id)?;
        let order = w.orders.get_mut(&id).expect("visible");
        order.active = false;
        order.modify_date = now;
        Ok(Json(json!({"success": true, "message": "The requested order has been deleted."})))
    })
}

fn filter_orders(w: &World, q: &Query, tag: Option<i64>) -> Result<Vec<Value>, V1Error> {
    let number = q.str("orderNumber").map(str::to_ascii_lowercase);
    let status = q.str("orderStatus");
    let customer = q.str("customerName").map(str::to_ascii_lowercase);
    let keyword = q.str("itemKeyword").map(str::to_ascii_lowercase);
    let store = q.i64("storeId")?;
    let batch = q.str("importBatch");
    let windows = [
        ("createDate", q.time("createDateStart", Bound::Start)?, q.time("createDateEnd", Bound::End)?),
        ("modifyDate", q.time("modifyDateStart", Bound::Start)?, q.time("modifyDateEnd", Bound::End)?),
        ("orderDate", q.time("orderDateStart", Bound::Start)?, q.time("orderDateEnd", Bound::End)?),
        ("paymentDate", q.time("paymentDateStart", Bound::Start)?, q.time("paymentDateEnd", Bound::End)?),
    ];
    if let Some(s) = status
        && !ALL_STATUSES.contains(&s)
    {
        return Err(V1Error::Invalid { field: "orderStatus".into(), message: format!("'{s}' is not a valid orderStatus.") });
    }
    let mut orders: Vec<&Order> = w
        .orders
        .values()
        .filter(|o| o.visible() && o.active)
        .filter(|o| number.as_ref().is_none_or(|n| o.order_number.to_ascii_lowercase().starts_with(n.as_str())))
        .filter(|o| status.is_none_or(|s| o.order_status == s))
        .filter(|o| store.is_none_or(|s| o.store_id() == s))
        .filter(|o| batch.is_none_or(|b| o.import_batch == b))
        .filter(|o| tag.is_none_or(|t| o.tag_ids.as_ref().is_some_and(|ids| ids.contains(&t))))
        .filter(|o| {
            customer.as_ref().is_none_or(|c| {
                [&o.bill_to, &o.ship_to].iter().any(|a| {
                    a.get("name").and_then(Value::as_str).is_some_and(|n| n.to_ascii_lowercase().contains(c.as_str()))
                })
            })
        })
        .filter(|o| {
            keyword.as_ref().is_none_or(|k| {
                o.items.iter().any(|i| {
                    i.sku.as_deref().unwrap_or("").to_ascii_lowercase().contains(k.as_str())
                        || i.name.to_ascii_lowercase().contains(k.as_str())
                        || i.options.to_string().to_ascii_lowercase().contains(k.as_str())
                })
            })
        })
        .filter(|o| {
            windows.iter().all(|(field, start, end)| {
                let value = match *field {
                    "createDate" => Some(o.create_date),
                    "modifyDate" => Some(o.modify_date),
                    "orderDate" => o.order_date,
                    _ => o.payment_date,
                };
                match (start, end, value) {
                    (None, None, _) => true,
                    (_, _, None) => false,
                    (s, e, Some(v)) => s.is_none_or(|s| v >= s) && e.is_none_or(|e| v <= e),
                }
            })
        })
        .collect();
    match q.str("sortBy").map(str::to_ascii_lowercase).as_deref() {
        Some("orderdate") => orders.sort_by_key(|o| (o.order_date, o.order_id)),
        Some("modifydate") => orders.sort_by_key(|o| (Some(o.modify_date), o.order_id)),
        Some("createdate") => orders.sort_by_key(|o| (Some(o.create_date), o.order_id)),
        Some(other) => {
            return Err(V1Error::Invalid {
                field: "sortBy".into(),
                message: format!("'{other}' is not a valid sortBy; use OrderDate, ModifyDate or CreateDate."),
            });
        }
        None => {}
    }
    if q.descending() {
        orders.reverse();
    }
    Ok(orders.into_iter().map(order_json).collect())
}

async fn list_orders(State(shared): Shared_, RawQuery(raw): RawQuery) -> Result<Json<Value>, V1Error> {
    let q = Query::parse(raw.as_deref());
    let (page, size) = q.paging()?;
    let all = shared.read_world(|w| filter_orders(w, &q, None))?;
    let (items, total, pages) = page_of(&all, page, size);
    Ok(Json(json!({"orders": items, "total": total, "page": page, "pages": pages})))
}

async fn list_orders_by_tag(State(shared): Shared_, RawQuery(raw): RawQuery) -> Result<Json<Value>, V1Error> {
    let q = Query::parse(raw.as_deref());
    let tag = q.i64("tagId")?.ok_or_else(|| V1Error::Invalid { field: "tagId".into(), message: "tagId is required.".into() })?;
    let (page, size) = q.paging()?;
    let all = shared.read_world(|w| filter_orders(w, &q, Some(tag)))?;
    let (items, total, pages) = page_of(&all, page, size);
    Ok(Json(json!({"orders": items, "total": total, "page": page, "pages": pages})))
}

fn order_id_in(v: &Value) -> Result<i64, V1Error> {
    opt_i64(v, "orderId", "request")?.ok_or_else(|| V1Error::Invalid {
        field: "request.orderId".into(),
        message: "The orderId field is required.".into(),
    })
}

async fn hold_until(State(shared): Shared_, body: Bytes) -> Result<Json<Value>, V1Error> {
    let v = parse_body(&body, "request")?;
    let id = order_id_in(&v)?;
    let date = opt_date(&v, "holdUntilDate", "request")?.ok_or_else(|| V1Error::Invalid {
        field: "request.holdUntilDate".into(),
        message: "The holdUntilDate field is required.".into(),
    })?;
    let now = shared.clock.now();
    shared.with_world(|w| {
        let order = w.visible_order(id)?;
        if !order.is_open() {
            return Err(V1Error::BadRequest(format!("order {id} is {} and cannot be put on hold", order.order_status)));
        }
        let order = w.orders.get_mut(&id).expect("visible");
        order.order_status = "on_hold".into();
        order.hold_until_date = Some(date);
        order.modify_date = now;
        Ok(Json(json!({"success": true, "message": "Order held successfully."})))
    })
}

async fn restore_from_hold(State(shared): Shared_, body: Bytes) -> Result<Json<Value>, V1Error> {
    let v = parse_body(&body, "request")?;
    let id = order_id_in(&v)?;
    let now = shared.clock.now();
    shared.with_world(|w| {
        let order = w.visible_order(id)?;
        if order.order_status != "on_hold" {
            return Err(V1Error::BadRequest(format!("order {id} is {}, not on_hold", order.order_status)));
        }
        let order = w.orders.get_mut(&id).expect("visible");
        order.order_status = "awaiting_shipment".into();
        order.hold_until_date = None;
        order.modify_date = now;
        Ok(Json(json!({"success": true, "message": "Order restored successfully."})))
    })
}

async fn mark_as_shipped(State(shared): Shared_, body: Bytes) -> Result<Json<Value>, V1Error> {
    let v = parse_body(&body, "request")?;
    let id = order_id_in(&v)?;
    let carrier = opt_str(&v, "carrierCode").ok_or_else(|| V1Error::Invalid {
        field: "request.carrierCode".into(),
        message: "The carrierCode field is required.".into(),
    })?;
    let ship_date = opt_date(&v, "shipDate", "request")?;
    let tracking = opt_str(&v, "trackingNumber");
    let notify = opt_bool(&v, "notifyCustomer");
    let now = shared.clock.now();
    shared.with_world(|w| {
        let fid = w.mark_shipped(id, &carrier, tracking, ship_date, notify, now)?;
        let f = &w.fulfillments[&fid];
        let (store, batch, number) = (f.store_id, f.batch_id, f.order_number.clone());
        delivery::fulfillment_notify(&shared, w, store, batch);
        Ok(Json(json!({"orderId": id, "orderNumber": number})))
    })
}

async fn add_tag(State(shared): Shared_, body: Bytes) -> Result<Json<Value>, V1Error> {
    tag_change(shared, body, true).await
}

async fn remove_tag(State(shared): Shared_, body: Bytes) -> Result<Json<Value>, V1Error> {
    tag_change(shared, body, false).await
}

async fn tag_change(shared: Arc<Shared>, body: Bytes, add: bool) -> Result<Json<Value>, V1Error> {
    let v = parse_body(&body, "request")?;
    let id = order_id_in(&v)?;
    let tag = opt_i64(&v, "tagId", "request")?
        .ok_or_else(|| V1Error::Invalid { field: "request.tagId".into(), message: "The tagId field is required.".into() })?;
    shared.with_world(|w| {
        if !w.tags.iter().any(|t| t.0 == tag) {
            return Err(V1Error::BadRequest(format!("tagId {tag} does not exist; see GET /accounts/listtags")));
        }
        w.visible_order(id)?;
        let order = w.orders.get_mut(&id).expect("visible");
        let tags = order.tag_ids.get_or_insert_with(Vec::new);
        tags.retain(|t| *t != tag);
        if add {
            tags.push(tag);
        }
        let message = if add { "Tag added successfully." } else { "Tag removed successfully." };
        Ok(Json(json!({"success": true, "message": message})))
    })
}

async fn create_label_for_order(State(shared): Shared_, body: Bytes) -> Result<Json<Value>, V1Error> {
    let v = parse_body(&body, "request")?;
    let id = order_id_in(&v)?;
    let req = LabelRequest {
        carrier_code: opt_str(&v, "carrierCode"),
        service_code: opt_str(&v, "serviceCode"),
        package_code: opt_str(&v, "packageCode"),
        confirmation: opt_str(&v, "confirmation"),
        ship_date: opt_date(&v, "shipDate", "request")?,
        ..Default::default()
    };
    let now = shared.clock.now();
    let shipment = crate::control::label_and_notify(&shared, id, &req, now)?;
    Ok(Json(json!({
        "shipmentId": shipment.shipment_id,
        "shipmentCost": num(Some(shipment.shipment_cost)),
        "insuranceCost": num(Some(shipment.insurance_cost)),
        "trackingNumber": shipment.tracking_number,
        "labelData": LABEL_PDF,
        "formData": null,
    })))
}

/// The label document every label comes with: the start of a PDF, base64.
const LABEL_PDF: &str = "JVBERi0xLjQKJcOkw7zDtsOfCjIgMCBvYmoKPDwvTGVuZ3RoIDMgMCBSPj4Kc3RyZWFtCg==";

// ---------------------------------------------------------------- shipments

async fn list_shipments(State(shared): Shared_, RawQuery(raw): RawQuery) -> Result<Json<Value>, V1Error> {
    let q = Query::parse(raw.as_deref());
    let (page, size) = q.paging()?;
    let with_items = q.bool("includeShipmentItems")?.unwrap_or(false);
    let recipient = q.str("recipientName").map(str::to_ascii_lowercase);
    let country = q.str("recipientCountryCode");
    let number = q.str("orderNumber").map(str::to_ascii_lowercase);
    let order_id = q.i64("orderId")?;
    let carrier = q.str("carrierCode");
    let service = q.str("serviceCode");
    let tracking = q.str("trackingNumber");
    let store = q.i64("storeId")?;
    let batch = q.i64("batchId")?;
    let created = (q.time("createDateStart", Bound::Start)?, q.time("createDateEnd", Bound::End)?);
    let voided = (q.time("voidDateStart", Bound::Start)?, q.time("voidDateEnd", Bound::End)?);
    let ship_start = q.str("shipDateStart").map(date_bound).transpose()?;
    let ship_end = q.str("shipDateEnd").map(date_bound).transpose()?;
    let all = shared.read_world(|w| -> Result<Vec<Value>, V1Error> {
        let mut list: Vec<&Shipment> = w
            .shipments
            .values()
            .filter(|s| s.order_id.is_none_or(|id| w.orders.get(&id).is_some_and(Order::visible)))
            .filter(|s| recipient.as_ref().is_none_or(|r| {
                s.ship_to.get("name").and_then(Value::as_str).is_some_and(|n| n.to_ascii_lowercase().contains(r.as_str()))
            }))
            .filter(|s| country.is_none_or(|c| s.ship_to.get("country").and_then(Value::as_str).is_some_and(|x| x.eq_ignore_ascii_case(c))))
            .filter(|s| {
                number.as_ref().is_none_or(|n| {
                    s.order_number.as_deref().is_some_and(|x| x.to_ascii_lowercase().starts_with(n.as_str()))
                })
            })
            .filter(|s| order_id.is_none_or(|id| s.order_id == Some(id)))
            .filter(|s| carrier.is_none_or(|c| s.carrier_code.eq_ignore_ascii_case(c)))
            .filter(|s| service.is_none_or(|c| s.service_code.eq_ignore_ascii_case(c)))
            .filter(|s| tracking.is_none_or(|t| s.tracking_number == t))
            .filter(|s| store.is_none_or(|id| s.store_id == id))
            .filter(|s| batch.is_none_or(|b| s.batch_id == b))
            .filter(|s| created.0.is_none_or(|t| s.create_date >= t) && created.1.is_none_or(|t| s.create_date <= t))
            .filter(|s| {
                (voided.0.is_none() && voided.1.is_none())
                    || s.void_date.is_some_and(|v| voided.0.is_none_or(|t| v >= t) && voided.1.is_none_or(|t| v <= t))
            })
            .filter(|s| ship_start.is_none_or(|d| s.ship_date >= d) && ship_end.is_none_or(|d| s.ship_date <= d))
            .collect();
        match q.str("sortBy").map(str::to_ascii_lowercase).as_deref() {
            Some("shipdate") => list.sort_by_key(|s| (s.ship_date, s.create_date, s.shipment_id)),
            None | Some("createdate") => list.sort_by_key(|s| (s.create_date, s.shipment_id)),
            Some(other) => {
                return Err(V1Error::Invalid {
                    field: "sortBy".into(),
                    message: format!("'{other}' is not a valid sortBy; use ShipDate or CreateDate."),
                });
            }
        }
        if q.descending() {
            list.reverse();
        }
        Ok(list.into_iter().map(|s| shipment_json(s, with_items)).collect())
    })?;
    let (items, total, pages) = page_of(&all, page, size);
    Ok(Json(json!({"shipments": items, "total": total, "page": page, "pages": pages})))
}

/// The country labels leave from: the named ship-from location's, else the
/// default one's.
fn origin_country(w: &World, warehouse_id: Option<i64>) -> String {
    let wh = match warehouse_id {
        Some(id) => w.warehouses.iter().find(|wh| wh.warehouse_id == id),
        None => w.warehouses.iter().find(|wh| wh.is_default && wh.active),
    };
    wh.and_then(|wh| wh.origin_address.get("country").and_then(Value::as_str)).unwrap_or("US").to_string()
}

/// A positive weight in ounces from a required `weight` object.
fn weight_required(v: &Value, what: &str) -> Result<Decimal, V1Error> {
    weight_in_ounces(&v["weight"]).filter(|oz| *oz > Decimal::ZERO).ok_or_else(|| V1Error::Invalid {
        field: format!("{what}.weight"),
        message: "The weight field is required: a positive {value, units} in ounces, pounds or grams.".into(),
    })
}

fn required_str(v: &Value, key: &str, what: &str) -> Result<String, V1Error> {
    opt_str(v, key).filter(|s| !s.trim().is_empty()).ok_or_else(|| V1Error::Invalid {
        field: format!("{what}.{key}"),
        message: format!("The {key} field is required."),
    })
}

fn rate_json(r: &crate::state::Rate) -> Value {
    json!({
        "serviceName": r.service_name,
        "serviceCode": r.service_code,
        "shipmentCost": num(Some(r.shipment_cost)),
        "otherCost": num(Some(r.other_cost)),
    })
}

/// `POST /shipments/getrates`: the carrier's services that reach the destination,
/// priced by the sandbox's rate card ([`Carrier::rates`](crate::state::Carrier::rates)).
async fn get_rates(State(shared): Shared_, body: Bytes) -> Result<Json<Value>, V1Error> {
    const F: &str = "rateOptions";
    let v = parse_body(&body, F)?;
    let carrier_code = required_str(&v, "carrierCode", F)?;
    required_str(&v, "fromPostalCode", F)?;
    let to_country = required_str(&v, "toCountry", F)?;
    required_str(&v, "toPostalCode", F)?;
    if carrier_code.eq_ignore_ascii_case("ups") {
        required_str(&v, "toState", F).map_err(|_| V1Error::Invalid {
            field: format!("{F}.toState"),
            message: "The toState field is required for UPS rates.".into(),
        })?;
    }
    let ounces = weight_required(&v, F)?;
    let warehouse = opt_i64(&v, "fromWarehouseId", F)?;
    let service = opt_str(&v, "serviceCode").filter(|s| !s.is_empty());
    let confirmation = opt_str(&v, "confirmation");
    let residential = opt_bool(&v, "residential");
    shared.read_world(|w| {
        let carrier = w
            .carrier(&carrier_code)
            .ok_or_else(|| V1Error::BadRequest(format!("unknown carrierCode {carrier_code}; see GET /carriers")))?;
        let rates = carrier.rates(&crate::state::RateRequest {
            service_code: service.as_deref(),
            ounces,
            international: !origin_country(w, warehouse).eq_ignore_ascii_case(&to_country),
            confirmation: confirmation.as_deref(),
            residential,
        })?;
        Ok(Json(Value::Array(rates.iter().map(rate_json).collect())))
    })
}

/// `POST /shipments/createlabel`: a label without an order. It is charged what
/// `getrates` quotes for its service (`shipmentCost + otherCost`), is listed by
/// `GET /shipments` with `orderId` null, and tells SHIP_NOTIFY subscribers.
async fn create_label(State(shared): Shared_, body: Bytes) -> Result<Json<Value>, V1Error> {
    const F: &str = "shipmentOptions";
    let v = parse_body(&body, F)?;
    let carrier_code = required_str(&v, "carrierCode", F)?;
    let service_code = required_str(&v, "serviceCode", F)?;
    let package_code = required_str(&v, "packageCode", F)?;
    let ship_date = opt_date(&v, "shipDate", F)?.ok_or_else(|| V1Error::Invalid {
        field: format!("{F}.shipDate"),
        message: "The shipDate field is required.".into(),
    })?;
    let ounces = weight_required(&v, F)?;
    let ship_from = address(&v, "shipFrom", F)?;
    let ship_to = address(&v, "shipTo", F)?;
    let confirmation = opt_str(&v, "confirmation").unwrap_or_else(|| "none".into());
    let adv = v.get("advancedOptions").cloned().unwrap_or(Value::Null);
    let store = opt_i64(&adv, "storeId", F)?;
    let warehouse_id = opt_i64(&adv, "warehouseId", F)?;
    let now = shared.clock.now();
    let shipment = shared.with_world(|w| -> Result<Shipment, V1Error> {
        let carrier = w
            .carrier(&carrier_code)
            .cloned()
            .ok_or_else(|| V1Error::BadRequest(format!("unknown carrierCode {carrier_code}; see GET /carriers")))?;
        if !carrier.packages.iter().any(|(c, ..)| c.eq_ignore_ascii_case(&package_code)) {
            return Err(V1Error::BadRequest(format!(
                "packageCode {package_code} is not a package of carrier {}; see GET /carriers/listpackages?carrierCode={}",
                carrier.code, carrier.code
            )));
        }
        let from_country = ship_from.get("country").and_then(Value::as_str).unwrap_or("US").to_string();
        let to_country = ship_to.get("country").and_then(Value::as_str).unwrap_or("US").to_string();
        let rate = carrier
            .rates(&crate::state::RateRequest {
                service_code: Some(&service_code),
                ounces,
                international: !from_country.eq_ignore_ascii_case(&to_country),
                confirmation: Some(&confirmation),
                residential: ship_to.get("residential").and_then(Value::as_bool).unwrap_or(false),
            })?
            .remove(0);
        let store_id = match store {
            Some(id) if w.stores.iter().any(|s| s.store_id == id) => id,
            Some(id) => return Err(V1Error::BadRequest(format!("storeId {id} is not a store of this account; see GET /stores"))),
            None => w.default_store_id(),
        };
        let id = w.issue_label(
            Shipment {
                shipment_id: 0,
                order_id: None,
                order_key: None,
                order_number: None,
                user_id: None,
                customer_email: None,
                create_date: now,
                ship_date,
                shipment_cost: rate.shipment_cost + rate.other_cost,
                insurance_cost: Decimal::ZERO,
                currency: "USD".into(),
                tracking_number: String::new(),
                carrier_code: carrier.code.clone(),
                service_code: rate.service_code.clone(),
                package_code: package_code.to_ascii_lowercase(),
                confirmation: Some(confirmation.clone()),
                warehouse_id,
                store_id,
                voided: false,
                void_date: None,
                ship_to: ship_to.clone(),
                weight: obj_or_null(&v, "weight"),
                dimensions: obj_or_null(&v, "dimensions"),
                items: Vec::new(),
                batch_id: 0,
                modified_at: now,
            },
            &carrier,
            None,
        );
        let shipment = w.shipments[&id].clone();
        delivery::ship_notify(&shared, w, shipment.store_id, shipment.batch_id);
        Ok(shipment)
    })?;
    let mut out = shipment_json(&shipment, false);
    out["labelData"] = json!(LABEL_PDF);
    Ok(Json(out))
}

fn date_bound(s: &str) -> Result<jiff::civil::Date, V1Error> {
    let date_part = s.split(['T', ' ']).next().unwrap_or(s);
    parse_v1_date(date_part).map_err(|e| V1Error::Invalid { field: "shipDate".into(), message: format!("'{s}': {e}") })
}

async fn void_label(State(shared): Shared_, body: Bytes) -> Result<Json<Value>, V1Error> {
    let v = parse_body(&body, "request")?;
    let id = opt_i64(&v, "shipmentId", "request")?.ok_or_else(|| V1Error::Invalid {
        field: "request.shipmentId".into(),
        message: "The shipmentId field is required.".into(),
    })?;
    let now = shared.clock.now();
    match shared.with_world(|w| w.void_label(id, now)) {
        Ok(()) => Ok(Json(json!({"approved": true, "message": "Label voided successfully"}))),
        Err(crate::state::Refusal::Invalid(m)) => Ok(Json(json!({"approved": false, "message": m}))),
        Err(e) => Err(e.into()),
    }
}

// ---------------------------------------------------------------- fulfillments

async fn list_fulfillments(State(shared): Shared_, RawQuery(raw): RawQuery) -> Result<Json<Value>, V1Error> {
    let q = Query::parse(raw.as_deref());
    let (page, size) = q.paging()?;
    let fid = q.i64("fulfillmentId")?;
    let order_id = q.i64("orderId")?;
    let number = q.str("orderNumber").map(str::to_ascii_lowercase);
    let tracking = q.str("trackingNumber");
    let recipient = q.str("recipientName").map(str::to_ascii_lowercase);
    let store = q.i64("storeId")?;
    let batch = q.i64("batchId")?;
    let created = (q.time("createDateStart", Bound::Start)?, q.time("createDateEnd", Bound::End)?);
    let ship_start = q.str("shipDateStart").map(date_bound).transpose()?;
    let ship_end = q.str("shipDateEnd").map(date_bound).transpose()?;
    let all = shared.read_world(|w| {
        let mut list: Vec<&Fulfillment> = w
            .fulfillments
            .values()
            .filter(|f| fid.is_none_or(|id| f.fulfillment_id == id))
            .filter(|f| order_id.is_none_or(|id| f.order_id == id))
            .filter(|f| number.as_ref().is_none_or(|n| f.order_number.to_ascii_lowercase().starts_with(n.as_str())))
            .filter(|f| tracking.is_none_or(|t| f.tracking_number.as_deref() == Some(t)))
            .filter(|f| recipient.as_ref().is_none_or(|r| {
                f.ship_to.get("name").and_then(Value::as_str).is_some_and(|n| n.to_ascii_lowercase().contains(r.as_str()))
            }))
            .filter(|f| store.is_none_or(|id| f.store_id == id))
            .filter(|f| batch.is_none_or(|b| f.batch_id == b))
            .filter(|f| created.0.is_none_or(|t| f.create_date >= t) && created.1.is_none_or(|t| f.create_date <= t))
            .filter(|f| {
                ship_start.is_none_or(|d| f.ship_date.is_some_and(|s| s >= d))
                    && ship_end.is_none_or(|d| f.ship_date.is_some_and(|s| s <= d))
            })
            .collect();
        if q.str("sortBy").is_some_and(|s| s.eq_ignore_ascii_case("shipdate")) {
            list.sort_by_key(|f| (f.ship_date, f.create_date, f.fulfillment_id));
        } else {
            list.sort_by_key(|f| (f.create_date, f.fulfillment_id));
        }
        if q.descending() {
            list.reverse();
        }
        list.into_iter().map(fulfillment_json).collect::<Vec<_>>()
    });
    let (items, total, pages) = page_of(&all, page, size);
    Ok(Json(json!({"fulfillments": items, "total": total, "page": page, "pages": pages})))
}

// ---------------------------------------------------------------- webhooks

const V1_EVENTS: [&str; 6] =
    ["ORDER_NOTIFY", "ITEM_ORDER_NOTIFY", "SHIP_NOTIFY", "ITEM_SHIP_NOTIFY", "FULFILLMENT_SHIPPED", "FULFILLMENT_REJECTED"];

async fn subscribe(State(shared): Shared_, body: Bytes) -> Result<(StatusCode, Json<Value>), V1Error> {
    let v = parse_body(&body, "request")?;
    let target = opt_str(&v, "target_url").filter(|u| !u.is_empty()).ok_or_else(|| V1Error::Invalid {
        field: "request.target_url".into(),
        message: "The target_url field is required.".into(),
    })?;
    if url::Url::parse(&target).is_err() {
        return Err(V1Error::Invalid { field: "request.target_url".into(), message: format!("'{target}' is not a valid URL.") });
    }
    let event = opt_str(&v, "event").unwrap_or_default();
    if !V1_EVENTS.contains(&event.as_str()) {
        return Err(V1Error::Invalid {
            field: "request.event".into(),
            message: format!("'{event}' is not a webhook event; use one of {}.", V1_EVENTS.join(", ")),
        });
    }
    let store_id = opt_i64(&v, "store_id", "request")?;
    let friendly_name = opt_str(&v, "friendly_name");
    let now = shared.clock.now();
    shared.with_world(|w| {
        if let Some(s) = store_id
            && !w.stores.iter().any(|st| st.store_id == s)
        {
            return Err(V1Error::BadRequest(format!("store_id {s} is not a store of this account")));
        }
        w.ids.webhook += 1;
        let id = w.ids.webhook;
        w.webhooks.insert(
            id,
            crate::state::WebhookV1 { id, target_url: target, event, store_id, friendly_name, created: now },
        );
        Ok((StatusCode::CREATED, Json(json!({"id": id}))))
    })
}

async fn list_webhooks(State(shared): Shared_) -> Json<Value> {
    shared.read_world(|w| {
        let hooks: Vec<Value> = w
            .webhooks
            .values()
            .map(|h| {
                json!({
                    "IsLabelAPIHook": false,
                    "WebHookID": h.id,
                    "SellerID": 100000,
                    "StoreID": h.store_id,
                    "HookType": h.event,
                    "MessageFormat": "Json",
                    "Url": h.target_url,
                    "Name": h.friendly_name,
                    "BulkCopyBatchID": null,
                    "BulkCopyRecordID": null,
                    "Active": true,
                    "WebhookLogs": [],
                    "Seller": null,
                    "Store": null,
                })
            })
            .collect();
        Json(json!({"webhooks": hooks}))
    })
}

async fn unsubscribe(State(shared): Shared_, Path(id): Path<String>) -> Result<StatusCode, V1Error> {
    let id: i64 = id.parse().map_err(|_| V1Error::NotFound(format!("webhook '{id}' not found")))?;
    shared.with_world(|w| match w.webhooks.remove(&id) {
        Some(_) => Ok(StatusCode::OK),
        None => Err(V1Error::NotFound(format!("webhook {id} not found"))),
    })
}

// ---------------------------------------------------------------- account setup

const DEFAULT_STATUS_MAPPINGS: [(&str, &str); 5] = [
    ("awaiting_payment", "Awaiting Payment"),
    ("awaiting_shipment", "Awaiting Shipment"),
    ("shipped", "Shipped"),
    ("cancelled", "Cancelled"),
    ("on_hold", "On Hold"),
];

fn store_json(s: &crate::state::Store, with_mappings: bool) -> Value {
    let set = &s.settings;
    let mut v = json!({
        "storeId": s.store_id,
        "storeName": s.store_name,
        "marketplaceId": s.marketplace_id,
        "marketplaceName": s.marketplace_name,
        "accountName": null,
        "email": set.email,
        "integrationUrl": set.integration_url,
        "active": s.active,
        "companyName": set.company_name,
        "phone": set.phone,
        "publicEmail": set.public_email,
        "website": set.website,
        "refreshDate": null,
        "lastRefreshAttempt": null,
        "createDate": format_v1_timestamp_millis(s.create_date),
        "modifyDate": format_v1_timestamp_millis(s.modify_date.unwrap_or(s.create_date)),
        "autoRefresh": set.auto_refresh,
    });
    if with_mappings {
        let mappings: Vec<Value> = if set.status_mappings.is_empty() {
            DEFAULT_STATUS_MAPPINGS.iter().map(|(o, k)| json!({"orderStatus": o, "statusKey": k})).collect()
        } else {
            set.status_mappings.iter().map(|(o, k)| json!({"orderStatus": o, "statusKey": k})).collect()
        };
        v["statusMappings"] = Value::Array(mappings);
    }
    v
}

/// `GET /stores?showInactive=&marketplaceId=`: active stores unless `showInactive`.
async fn list_stores(State(shared): Shared_, RawQuery(raw): RawQuery) -> Result<Json<Value>, V1Error> {
    let q = Query::parse(raw.as_deref());
    let show_inactive = q.bool("showInactive")?.unwrap_or(false);
    let marketplace = q.i64("marketplaceId")?;
    Ok(shared.read_world(|w| {
        Json(Value::Array(
            w.stores
                .iter()
                .filter(|s| show_inactive || s.active)
                .filter(|s| marketplace.is_none_or(|m| s.marketplace_id == m))
                .map(|s| store_json(s, false))
                .collect(),
        ))
    }))
}

async fn get_store(State(shared): Shared_, Path(id): Path<String>) -> Result<Json<Value>, V1Error> {
    shared.read_world(|w| {
        w.stores
            .iter()
            .find(|s| s.store_id.to_string() == id)
            .map(|s| Json(store_json(s, true)))
            .ok_or_else(|| V1Error::NotFound(format!("store {id} not found")))
    })
}

/// `PUT /stores/{id}`: the whole store, replaced; `storeName` is required and the
/// marketplace cannot change. Answers the store as it now is.
async fn update_store(State(shared): Shared_, Path(id): Path<String>, body: Bytes) -> Result<Json<Value>, V1Error> {
    const F: &str = "store";
    let n: i64 = id.parse().map_err(|_| no_resource(&format!("/stores/{id}")))?;
    let v = parse_body(&body, F)?;
    if !v.is_object() {
        return Err(V1Error::Invalid { field: F.into(), message: "A store must be a JSON object.".into() });
    }
    if let Some(sent) = opt_i64(&v, "storeId", F)?
        && sent != n
    {
        return Err(V1Error::BadRequest(format!(
            "storeId {sent} in the body does not match store {n} in the URL; send the store's own id"
        )));
    }
    let name = opt_str(&v, "storeName").filter(|s| !s.trim().is_empty()).ok_or_else(|| V1Error::Invalid {
        field: "store.storeName".into(),
        message: "The storeName field is required: PUT /stores/{id} replaces the whole store.".into(),
    })?;
    let mut mappings = Vec::new();
    if let Some(list) = v.get("statusMappings").and_then(Value::as_array) {
        for (i, m) in list.iter().enumerate() {
            let status = opt_str(m, "orderStatus").unwrap_or_default();
            if !ALL_STATUSES.contains(&status.as_str()) {
                return Err(V1Error::Invalid {
                    field: format!("store.statusMappings[{i}].orderStatus"),
                    message: format!("'{status}' is not an orderStatus; use one of {}.", ALL_STATUSES.join(", ")),
                });
            }
            mappings.push((status, opt_str(m, "statusKey").unwrap_or_default()));
        }
    }
    let text = |key: &str| opt_str(&v, key).unwrap_or_default();
    let settings = crate::state::StoreSettings {
        email: opt_str(&v, "email"),
        integration_url: opt_str(&v, "integrationUrl"),
        company_name: text("companyName"),
        phone: text("phone"),
        public_email: text("publicEmail"),
        website: text("website"),
        auto_refresh: opt_bool(&v, "autoRefresh"),
        status_mappings: mappings,
    };
    let marketplace = opt_i64(&v, "marketplaceId", F)?;
    let now = shared.clock.now();
    shared.with_world(|w| {
        let store = w
            .stores
            .iter_mut()
            .find(|s| s.store_id == n)
            .ok_or_else(|| V1Error::NotFound(format!("store {n} not found")))?;
        if let Some(m) = marketplace
            && m != store.marketplace_id
        {
            return Err(V1Error::BadRequest(format!(
                "store {n} is a {} store (marketplaceId {}); a store's marketplace cannot change",
                store.marketplace_name, store.marketplace_id
            )));
        }
        store.store_name = name;
        store.active = v.get("active").and_then(Value::as_bool).unwrap_or(store.active);
        store.settings = settings;
        store.modify_date = Some(now);
        Ok(Json(store_json(store, true)))
    })
}

fn store_id_in(v: &Value) -> Result<i64, V1Error> {
    opt_i64(v, "storeId", "request")?.ok_or_else(|| V1Error::Invalid {
        field: "request.storeId".into(),
        message: "The storeId field is required.".into(),
    })
}

/// Deactivate or reactivate a store: an inactive store leaves `GET /stores` unless
/// `showInactive=true`.
fn set_store_active(shared: &Shared, body: &Bytes, active: bool) -> Result<Json<Value>, V1Error> {
    let v = parse_body(body, "request")?;
    let id = store_id_in(&v)?;
    let now = shared.clock.now();
    shared.with_world(|w| {
        let store = w
            .stores
            .iter_mut()
            .find(|s| s.store_id == id)
            .ok_or_else(|| V1Error::NotFound(format!("store {id} not found; see GET /stores?showInactive=true")))?;
        store.active = active;
        store.modify_date = Some(now);
        let message = if active {
            "The requested store has been reactivated."
        } else {
            "The requested store has been deactivated."
        };
        Ok(Json(json!({"success": true, "message": message})))
    })
}

async fn deactivate_store(State(shared): Shared_, body: Bytes) -> Result<Json<Value>, V1Error> {
    set_store_active(&shared, &body, false)
}

async fn reactivate_store(State(shared): Shared_, body: Bytes) -> Result<Json<Value>, V1Error> {
    set_store_active(&shared, &body, true)
}

/// The marketplaces a store can be of: `(marketplaceId, name, canRefresh)`. Every
/// sandbox store is a manual one (`0`, "ShipStation").
const MARKETPLACES: [(i64, &str, bool); 5] =
    [(0, "ShipStation", false), (2, "Amazon", true), (23, "3DCart", true), (32, "Amazon CA", true), (36, "WooCommerce", true)];

async fn list_marketplaces() -> Json<Value> {
    Json(Value::Array(
        MARKETPLACES
            .iter()
            .map(|(id, name, refresh)| {
                json!({
                    "name": name,
                    "marketplaceId": id,
                    "canRefresh": refresh,
                    "supportsCustomMappings": *id != 0,
                    "supportsCustomStatuses": false,
                    "canConfirmShipments": *id != 0,
                })
            })
            .collect(),
    ))
}

/// `GET /stores/getrefreshstatus?storeId=`: manual stores never import, so a store
/// has never been refreshed (no dates) and is idle.
async fn get_refresh_status(State(shared): Shared_, RawQuery(raw): RawQuery) -> Result<Json<Value>, V1Error> {
    let q = Query::parse(raw.as_deref());
    let id = q.i64("storeId")?.ok_or_else(|| V1Error::Invalid {
        field: "storeId".into(),
        message: "The storeId parameter is required.".into(),
    })?;
    shared.read_world(|w| {
        let store = w.stores.iter().find(|s| s.store_id == id).ok_or_else(|| V1Error::NotFound(format!("store {id} not found")))?;
        Ok(Json(json!({
            "storeId": store.store_id,
            "refreshStatusId": 1,
            "refreshStatus": "Idle",
            "lastRefreshAttempt": null,
            "refreshDate": null,
        })))
    })
}

fn warehouse_json(wh: &crate::state::Warehouse) -> Value {
    let return_address = if wh.return_address.is_object() { &wh.return_address } else { &wh.origin_address };
    json!({
        "warehouseId": wh.warehouse_id,
        "warehouseName": wh.warehouse_name,
        "originAddress": wh.origin_address,
        "returnAddress": return_address,
        "createDate": format_v1_timestamp(wh.create_date),
        "isDefault": wh.is_default,
    })
}

/// Ship-from locations still in use (a deleted one is inactive and gone from the API).
async fn list_warehouses(State(shared): Shared_) -> Json<Value> {
    shared.read_world(|w| Json(Value::Array(w.warehouses.iter().filter(|wh| wh.active).map(warehouse_json).collect())))
}

fn active_warehouse<'w>(w: &'w mut World, id: &str) -> Result<&'w mut crate::state::Warehouse, V1Error> {
    w.warehouses
        .iter_mut()
        .find(|wh| wh.active && wh.warehouse_id.to_string() == id)
        .ok_or_else(|| V1Error::NotFound(format!("warehouse {id} not found; see GET /warehouses")))
}

async fn get_warehouse(State(shared): Shared_, Path(id): Path<String>) -> Result<Json<Value>, V1Error> {
    shared.read_world(|w| {
        w.warehouses
            .iter()
            .find(|wh| wh.active && wh.warehouse_id.to_string() == id)
            .map(|wh| Json(warehouse_json(wh)))
            .ok_or_else(|| V1Error::NotFound(format!("warehouse {id} not found")))
    })
}

/// What a create or a full update of a ship-from location sends.
struct WarehouseBody {
    name: Option<String>,
    origin: Value,
    return_address: Value,
    is_default: Option<bool>,
}

fn warehouse_body(body: &Bytes) -> Result<WarehouseBody, V1Error> {
    const F: &str = "warehouse";
    let v = parse_body(body, F)?;
    let origin = match v.get("originAddress") {
        Some(Value::Object(_)) => address(&v, "originAddress", F)?,
        _ => {
            return Err(V1Error::Invalid {
                field: "warehouse.originAddress".into(),
                message: "The originAddress field is required: rates are calculated from it.".into(),
            });
        }
    };
    let return_address = match v.get("returnAddress") {
        Some(Value::Object(_)) => address(&v, "returnAddress", F)?,
        _ => Value::Null,
    };
    Ok(WarehouseBody {
        name: opt_str(&v, "warehouseName").filter(|n| !n.trim().is_empty()),
        origin,
        return_address,
        is_default: v.get("isDefault").and_then(Value::as_bool),
    })
}

/// Make `id` the one default ship-from location.
fn make_default(w: &mut World, id: i64) {
    for wh in &mut w.warehouses {
        wh.is_default = wh.warehouse_id == id;
    }
}

async fn create_warehouse(State(shared): Shared_, body: Bytes) -> Result<Json<Value>, V1Error> {
    let b = warehouse_body(&body)?;
    let now = shared.clock.now();
    shared.with_world(|w| {
        let id = w.warehouses.iter().map(|wh| wh.warehouse_id).max().unwrap_or(51_000) + 1;
        w.warehouses.push(crate::state::Warehouse {
            warehouse_id: id,
            warehouse_name: b.name.unwrap_or_else(|| "New Ship From Location".into()),
            origin_address: b.origin,
            return_address: b.return_address,
            create_date: now,
            is_default: false,
            active: true,
        });
        if b.is_default == Some(true) {
            make_default(w, id);
        }
        let wh = w.warehouses.iter().find(|wh| wh.warehouse_id == id).expect("just added");
        Ok(Json(warehouse_json(wh)))
    })
}

/// `PUT /warehouses/{id}`: the whole location, replaced (no return address means
/// the origin address).
async fn update_warehouse(State(shared): Shared_, Path(id): Path<String>, body: Bytes) -> Result<Json<Value>, V1Error> {
    let b = warehouse_body(&body)?;
    shared.with_world(|w| {
        let wh = active_warehouse(w, &id)?;
        if wh.is_default && b.is_default == Some(false) {
            return Err(V1Error::BadRequest(format!(
                "warehouse {id} is the default ship-from location; make another one the default instead"
            )));
        }
        let warehouse_id = wh.warehouse_id;
        if let Some(name) = b.name {
            wh.warehouse_name = name;
        }
        wh.origin_address = b.origin;
        wh.return_address = b.return_address;
        if b.is_default == Some(true) {
            make_default(w, warehouse_id);
        }
        let wh = w.warehouses.iter().find(|wh| wh.warehouse_id == warehouse_id).expect("exists");
        Ok(Json(warehouse_json(wh)))
    })
}

/// `DELETE /warehouses/{id}`: a soft delete (inactive, gone from the API).
async fn delete_warehouse(State(shared): Shared_, Path(id): Path<String>) -> Result<Json<Value>, V1Error> {
    shared.with_world(|w| {
        let wh = active_warehouse(w, &id)?;
        if wh.is_default {
            return Err(V1Error::BadRequest(format!(
                "warehouse {id} is the default ship-from location; make another one the default before deleting it"
            )));
        }
        wh.active = false;
        Ok(Json(json!({"success": true, "message": "The requested warehouse has been deleted."})))
    })
}

fn carrier_json(c: &crate::state::Carrier, primary: bool) -> Value {
    json!({
        "name": c.name,
        "code": c.code,
        "accountNumber": format!("SB{}", c.shipping_provider_id),
        "requiresFundedAccount": c.requires_funded_account(),
        "balance": num(Some(c.balance)),
        "nickname": null,
        "shippingProviderId": c.shipping_provider_id,
        "primary": primary,
    })
}

/// `POST /carriers/addfunds` `{carrierCode, amount}`: 10.00 to 10,000.00 onto a
/// funded carrier's balance; answers the carrier with its new balance.
async fn add_funds(State(shared): Shared_, body: Bytes) -> Result<Json<Value>, V1Error> {
    let v = parse_body(&body, "request")?;
    let code = opt_str(&v, "carrierCode").filter(|c| !c.is_empty()).ok_or_else(|| V1Error::Invalid {
        field: "request.carrierCode".into(),
        message: "The carrierCode field is required.".into(),
    })?;
    let amount = opt_decimal(&v, "amount", "request")?.ok_or_else(|| V1Error::Invalid {
        field: "request.amount".into(),
        message: "The amount field is required.".into(),
    })?;
    if amount < Decimal::new(10, 0) || amount > Decimal::new(10_000, 0) || amount.round_dp(2) != amount {
        return Err(V1Error::BadRequest(format!(
            "amount {amount} cannot be added: send between 10.00 and 10000.00, in cents at most"
        )));
    }
    shared.with_world(|w| {
        let carrier = w
            .carriers
            .iter_mut()
            .find(|c| c.code.eq_ignore_ascii_case(&code))
            .ok_or_else(|| V1Error::NotFound(format!("carrier '{code}' is not connected to this account")))?;
        if !carrier.requires_funded_account() {
            return Err(V1Error::BadRequest(format!(
                "carrier '{}' bills its account and holds no balance; only funded carriers take funds",
                carrier.code
            )));
        }
        carrier.balance += amount;
        let c = json!({
            "name": carrier.name,
            "code": carrier.code,
            "accountNumber": format!("SB{}", carrier.shipping_provider_id),
            "requiresFundedAccount": true,
            "balance": num(Some(carrier.balance)),
        });
        Ok(Json(c))
    })
}

async fn list_carriers(State(shared): Shared_) -> Json<Value> {
    shared.read_world(|w| {
        Json(Value::Array(w.carriers.iter().enumerate().map(|(i, c)| carrier_json(c, i == 0)).collect()))
    })
}

fn carrier_param(q: &Query) -> Result<String, V1Error> {
    q.str("carrierCode").map(str::to_string).ok_or_else(|| V1Error::Invalid {
        field: "carrierCode".into(),
        message: "The carrierCode parameter is required.".into(),
    })
}

async fn get_carrier(State(shared): Shared_, RawQuery(raw): RawQuery) -> Result<Json<Value>, V1Error> {
    let code = carrier_param(&Query::parse(raw.as_deref()))?;
    shared.read_world(|w| {
        w.carrier(&code)
            .map(|c| Json(carrier_json(c, false)))
            .ok_or_else(|| V1Error::NotFound(format!("carrier '{code}' is not connected to this account")))
    })
}

fn carrier_list(shared: &Shared, raw: Option<&str>, packages: bool) -> Result<Json<Value>, V1Error> {
    let code = carrier_param(&Query::parse(raw))?;
    shared.read_world(|w| {
        let c = w.carrier(&code).ok_or_else(|| V1Error::NotFound(format!("carrier '{code}' is not connected to this account")))?;
        let list = if packages { &c.packages } else { &c.services };
        Ok(Json(Value::Array(
            list.iter()
                .map(|(svc, name, dom, intl)| {
                    json!({"carrierCode": c.code, "code": svc, "name": name, "domestic": dom, "international": intl})
                })
                .collect(),
        )))
    })
}

async fn list_services(State(shared): Shared_, RawQuery(raw): RawQuery) -> Result<Json<Value>, V1Error> {
    carrier_list(&shared, raw.as_deref(), false)
}

async fn list_packages(State(shared): Shared_, RawQuery(raw): RawQuery) -> Result<Json<Value>, V1Error> {
    carrier_list(&shared, raw.as_deref(), true)
}

async fn list_tags(State(shared): Shared_) -> Json<Value> {
    shared.read_world(|w| {
        Json(Value::Array(
            w.tags.iter().map(|(id, name, color)| json!({"tagId": id, "name": name, "color": color})).collect(),
        ))
    })
}


// ---------------------------------------------------------------- products, customers, users

/// The product fields besides the typed ones, in ShipStation's order; a PUT
/// replaces them all (absent means null).
const PRODUCT_FIELDS: [&str; 19] = [
    "internalNotes",
    "fulfillmentSku",
    "productCategory",
    "productType",
    "warehouseLocation",
    "defaultCarrierCode",
    "defaultServiceCode",
    "defaultPackageCode",
    "defaultIntlCarrierCode",
    "defaultIntlServiceCode",
    "defaultIntlPackageCode",
    "defaultConfirmation",
    "defaultIntlConfirmation",
    "customsDescription",
    "customsTariffNo",
    "customsCountryCode",
    "noCustoms",
    "tags",
    "aliases",
];

fn product_json(p: &Product) -> Value {
    let mut map = Map::new();
    map.insert("productId".into(), json!(p.product_id));
    map.insert("sku".into(), json!(p.sku));
    map.insert("name".into(), json!(p.name));
    map.insert("price".into(), num(p.price));
    map.insert("defaultCost".into(), num(p.default_cost));
    map.insert("length".into(), num(p.length));
    map.insert("width".into(), num(p.width));
    map.insert("height".into(), num(p.height));
    map.insert("weightOz".into(), num(p.weight_oz));
    map.insert("customsValue".into(), num(p.customs_value));
    map.insert("active".into(), json!(p.active));
    for key in PRODUCT_FIELDS {
        map.insert(key.into(), p.rest.get(key).cloned().unwrap_or(Value::Null));
    }
    map.insert("createDate".into(), json!(format_v1_timestamp_millis(p.create_date)));
    map.insert("modifyDate".into(), json!(format_v1_timestamp_millis(p.modify_date)));
    Value::Object(map)
}

async fn list_products(State(shared): Shared_, RawQuery(raw): RawQuery) -> Result<Json<Value>, V1Error> {
    let q = Query::parse(raw.as_deref());
    let (page, size) = q.paging()?;
    let sku = q.str("sku").map(str::to_ascii_lowercase);
    let name = q.str("name").map(str::to_ascii_lowercase);
    let show_inactive = q.bool("showInactive")?.unwrap_or(false);
    let all: Vec<Value> = shared.read_world(|w| {
        w.products
            .values()
            .filter(|p| show_inactive || p.active)
            .filter(|p| sku.as_ref().is_none_or(|s| p.sku.to_ascii_lowercase().contains(s.as_str())))
            .filter(|p| name.as_ref().is_none_or(|s| p.name.to_ascii_lowercase().contains(s.as_str())))
            .map(product_json)
            .collect()
    });
    let (items, total, pages) = page_of(&all, page, size);
    Ok(Json(json!({"products": items, "total": total, "page": page, "pages": pages})))
}

async fn get_product(State(shared): Shared_, Path(id): Path<String>) -> Result<Json<Value>, V1Error> {
    let n: i64 = id.parse().map_err(|_| no_resource(&format!("/products/{id}")))?;
    shared.read_world(|w| {
        w.products.get(&n).map(|p| Json(product_json(p))).ok_or_else(|| V1Error::NotFound(format!("product {n} not found")))
    })
}

/// `PUT /products/{id}`: the whole product, replaced (no partial updates).
async fn update_product(State(shared): Shared_, Path(id): Path<String>, body: Bytes) -> Result<Json<Value>, V1Error> {
    const F: &str = "product";
    let n: i64 = id.parse().map_err(|_| no_resource(&format!("/products/{id}")))?;
    let v = parse_body(&body, F)?;
    if !v.is_object() {
        return Err(V1Error::Invalid { field: F.into(), message: "A product must be a JSON object.".into() });
    }
    if let Some(sent) = opt_i64(&v, "productId", F)?
        && sent != n
    {
        return Err(V1Error::BadRequest(format!(
            "productId {sent} in the body does not match product {n} in the URL; send the product's own id"
        )));
    }
    let required = |key: &str| {
        opt_str(&v, key).filter(|s| !s.trim().is_empty()).ok_or_else(|| V1Error::Invalid {
            field: format!("{F}.{key}"),
            message: format!("The {key} field is required: PUT /products/{{id}} replaces the whole product."),
        })
    };
    let sku = required("sku")?;
    let name = required("name")?;
    let price = opt_decimal(&v, "price", F)?;
    let default_cost = opt_decimal(&v, "defaultCost", F)?;
    let length = opt_decimal(&v, "length", F)?;
    let width = opt_decimal(&v, "width", F)?;
    let height = opt_decimal(&v, "height", F)?;
    let weight_oz = opt_decimal(&v, "weightOz", F)?.map(|d| d.normalize());
    let customs_value = opt_decimal(&v, "customsValue", F)?;
    let active = v.get("active").and_then(Value::as_bool).unwrap_or(true);
    let mut rest = Map::new();
    for key in PRODUCT_FIELDS {
        if let Some(value) = v.get(key) {
            rest.insert(key.into(), value.clone());
        }
    }
    let now = shared.clock.now();
    shared.with_world(|w| {
        if !w.products.contains_key(&n) {
            return Err(V1Error::NotFound(format!("product {n} not found")));
        }
        if let Some(other) = w.products.values().find(|p| p.product_id != n && p.sku == sku) {
            return Err(V1Error::BadRequest(format!(
                "SKU '{sku}' already belongs to product {}; a SKU names one product",
                other.product_id
            )));
        }
        let p = w.products.get_mut(&n).expect("checked");
        *p = Product {
            product_id: n,
            sku,
            name,
            price,
            default_cost,
            length,
            width,
            height,
            weight_oz,
            customs_value,
            active,
            rest,
            create_date: p.create_date,
            modify_date: now,
        };
        Ok(Json(json!({"success": true, "message": "The requested product has been updated"})))
    })
}

/// Every customer with its create and modify instants (for sorting).
fn customers(w: &World) -> Vec<(Timestamp, Timestamp, Value)> {
    let mut seen = std::collections::BTreeMap::new();
    for o in w.orders.values().filter(|o| o.visible()) {
        if let Some(id) = o.customer_id {
            seen.entry(id).or_insert(o);
        }
    }
    seen.into_iter()
        .map(|(id, o)| {
            let a = &o.ship_to;
            let customer = json!({
                "customerId": id,
                "createDate": format_v1_timestamp(o.create_date),
                "modifyDate": format_v1_timestamp(o.modify_date),
                "name": a.get("name"),
                "company": a.get("company"),
                "street1": a.get("street1"),
                "street2": a.get("street2"),
                "city": a.get("city"),
                "state": a.get("state"),
                "postalCode": a.get("postalCode"),
                "countryCode": a.get("country"),
                "phone": a.get("phone"),
                "email": o.customer_email,
                "addressVerified": "Address not yet validated",
                "marketplaceUsernames": [],
                "tags": null,
            });
            (o.create_date, o.modify_date, customer)
        })
        .collect()
}

/// `GET /customers`: `stateCode` and `countryCode` match the address exactly
/// (ignoring case); `sortBy` is `Name`, `ModifyDate` or `CreateDate` (customer id
/// order without it), `sortDir` `ASC` or `DESC`.
async fn list_customers(State(shared): Shared_, RawQuery(raw): RawQuery) -> Result<Json<Value>, V1Error> {
    let q = Query::parse(raw.as_deref());
    let (page, size) = q.paging()?;
    let state = q.str("stateCode");
    let country = q.str("countryCode");
    let text = |c: &Value, key: &str| c[key].as_str().unwrap_or_default().to_string();
    let mut all: Vec<(Timestamp, Timestamp, Value)> = shared
        .read_world(customers)
        .into_iter()
        .filter(|(_, _, c)| state.is_none_or(|s| text(c, "state").eq_ignore_ascii_case(s)))
        .filter(|(_, _, c)| country.is_none_or(|s| text(c, "countryCode").eq_ignore_ascii_case(s)))
        .collect();
    let id = |c: &Value| c["customerId"].as_i64().unwrap_or_default();
    match q.str("sortBy").map(str::to_ascii_lowercase).as_deref() {
        Some("name") => all.sort_by_key(|(_, _, c)| (text(c, "name").to_lowercase(), id(c))),
        Some("modifydate") => all.sort_by_key(|(_, modified, c)| (*modified, id(c))),
        Some("createdate") => all.sort_by_key(|(created, _, c)| (*created, id(c))),
        Some(other) => {
            return Err(V1Error::Invalid {
                field: "sortBy".into(),
                message: format!("'{other}' is not a valid sortBy; use Name, ModifyDate or CreateDate."),
            });
        }
        None => {}
    }
    if q.descending() {
        all.reverse();
    }
    let all: Vec<Value> = all.into_iter().map(|(_, _, c)| c).collect();
    let (items, total, pages) = page_of(&all, page, size);
    Ok(Json(json!({"customers": items, "total": total, "page": page, "pages": pages})))
}

async fn get_customer(State(shared): Shared_, Path(id): Path<String>) -> Result<Json<Value>, V1Error> {
    let n: i64 = id.parse().map_err(|_| no_resource(&format!("/customers/{id}")))?;
    shared
        .read_world(customers)
        .into_iter()
        .map(|(_, _, c)| c)
        .find(|c| c["customerId"] == json!(n))
        .map(Json)
        .ok_or_else(|| V1Error::NotFound(format!("customer {n} not found")))
}

/// The account's users: `(name, userId, userName)`.
const USERS: [(&str, &str, &str); 2] = [
    ("Sandbox Packer", "f9a4b3f2-1111-4c1d-9a5e-0d5e5a5b0001", "packer@sandbox.invalid"),
    ("Sandbox Supervisor", "f9a4b3f2-1111-4c1d-9a5e-0d5e5a5b0002", "supervisor@sandbox.invalid"),
];

async fn list_users() -> Json<Value> {
    Json(Value::Array(
        USERS.iter().map(|(name, id, user)| json!({"name": name, "userId": id, "userName": user})).collect(),
    ))
}

// ---------------------------------------------------------------- user assignment

fn order_ids_in(v: &Value) -> Result<Vec<i64>, V1Error> {
    let field = "request.orderIds";
    let list = v.get("orderIds").and_then(Value::as_array).filter(|l| !l.is_empty()).ok_or_else(|| V1Error::Invalid {
        field: field.into(),
        message: "The orderIds field is required: a list of orderId numbers.".into(),
    })?;
    list.iter()
        .map(|id| match id {
            Value::Number(n) => n.as_i64().ok_or_else(|| invalid("request", "orderIds", n)),
            Value::String(s) => s.parse().map_err(|_| invalid("request", "orderIds", s)),
            other => Err(invalid("request", "orderIds", other)),
        })
        .collect()
}

/// Set (or clear) the user of every order named, or of none when one is missing.
fn assign(shared: &Shared, ids: &[i64], user: Option<String>) -> Result<(), V1Error> {
    let now = shared.clock.now();
    shared.with_world(|w| {
        let missing: Vec<String> = ids.iter().filter(|id| w.visible_order(**id).is_err()).map(i64::to_string).collect();
        if !missing.is_empty() {
            return Err(V1Error::NotFound(format!(
                "order(s) {} not found; no order was changed (all orderIds must exist)",
                missing.join(", ")
            )));
        }
        for id in ids {
            let order = w.orders.get_mut(id).expect("checked");
            order.user_id = user.clone();
            order.modify_date = now;
        }
        Ok(())
    })
}

async fn assign_user(State(shared): Shared_, body: Bytes) -> Result<Json<Value>, V1Error> {
    let v = parse_body(&body, "request")?;
    let ids = order_ids_in(&v)?;
    let user = opt_str(&v, "userId").filter(|u| !u.is_empty()).ok_or_else(|| V1Error::Invalid {
        field: "request.userId".into(),
        message: "The userId field is required: the GUID of a user from GET /users.".into(),
    })?;
    let Some((_, user, _)) = USERS.iter().find(|(_, id, _)| id.eq_ignore_ascii_case(&user)) else {
        return Err(V1Error::BadRequest(format!("userId {user} is not a user of this account; see GET /users")));
    };
    assign(&shared, &ids, Some(user.to_string()))?;
    Ok(Json(json!({"success": true, "message": "User assigned successfully."})))
}

async fn unassign_user(State(shared): Shared_, body: Bytes) -> Result<Json<Value>, V1Error> {
    let v = parse_body(&body, "request")?;
    let ids = order_ids_in(&v)?;
    assign(&shared, &ids, None)?;
    Ok(Json(json!({"success": true, "message": "User unassigned successfully."})))
}
