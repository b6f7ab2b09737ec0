//! The simulated warehouse and carrier.
//!
//! When enabled, the warehouse labels every order that waits in `awaiting_shipment`
//! after a seeded random delay, ships some multi-line orders in two parcels, voids
//! some labels and makes them again; the carrier sends an electronic-only notice for
//! every label, then scans some parcels (accepted, in transit, delivered) after
//! further delays and never scans the others. All of it runs on the sandbox's virtual
//! clock, so advancing the clock plays hours of warehouse work at once. Orders on
//! hold return to `awaiting_shipment` on their `holdUntilDate` whether or not the
//! simulation runs, as ShipStation does.

use std::sync::Arc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::Shared;
use crate::state::{LabelRequest, LinePick, TrackEvent, World};

/// How the simulated warehouse and carrier behave. Delays are seconds of virtual time
/// as `[min, max]`; shares are probabilities.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct SimulationConfig {
    pub enabled: bool,
    /// From `awaiting_shipment` to the first label.
    pub label_delay_secs: [u64; 2],
    /// Share of multi-line orders shipped in two parcels.
    pub split_share: f64,
    /// From one parcel of a split shipment to the next.
    pub next_parcel_delay_secs: [u64; 2],
    /// Share of labels voided (and the lines labelled again).
    pub void_share: f64,
    pub void_delay_secs: [u64; 2],
    /// Share of labels the carrier ever scans.
    pub scan_share: f64,
    pub scan_delay_secs: [u64; 2],
    pub deliver_delay_secs: [u64; 2],
    /// Carriers the warehouse picks from.
    pub carriers: Vec<String>,
    /// Label cost in minor units, `[min, max]`, in `currency`.
    pub cost_minor: [i64; 2],
    pub currency: String,
    /// A carrier account's own currency (`fedex = "EUR"`): its labels cost in it;
    /// carriers not named cost in `currency`.
    #[serde(default)]
    pub carrier_currencies: std::collections::BTreeMap<String, String>,
}

impl Default for SimulationConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            label_delay_secs: [60, 3600],
            split_share: 0.2,
            next_parcel_delay_secs: [60, 900],
            void_share: 0.05,
            void_delay_secs: [60, 1800],
            scan_share: 0.9,
            scan_delay_secs: [3600, 6 * 3600],
            deliver_delay_secs: [24 * 3600, 72 * 3600],
            carriers: vec!["ups".into(), "fedex".into(), "stamps_com".into()],
            cost_minor: [450, 2400],
            currency: "USD".into(),
            carrier_currencies: Default::default(),
        }
    }
}

impl SimulationConfig {
    pub fn validate(&self) -> Result<(), String> {
        for (name, share) in [("split_share", self.split_share), ("void_share", self.void_share), ("scan_share", self.scan_share)] {
            if !(0.0..=1.0).contains(&share) {
                return Err(format!("{name} is {share}; a share must be between 0 and 1"));
            }
        }
        for (name, [lo, hi]) in [
            ("label_delay_secs", self.label_delay_secs),
            ("void_delay_secs", self.void_delay_secs),
            ("next_parcel_delay_secs", self.next_parcel_delay_secs),
            ("scan_delay_secs", self.scan_delay_secs),
            ("deliver_delay_secs", self.deliver_delay_secs),
        ] {
            if lo > hi {
                return Err(format!("{name} is [{lo}, {hi}]; the minimum must not exceed the maximum"));
            }
        }
        if self.cost_minor[0] > self.cost_minor[1] || self.cost_minor[0] < 0 {
            return Err("cost_minor must be [min, max] with 0 <= min <= max".into());
        }
        if self.carriers.is_empty() {
            return Err("carriers must name at least one carrier code".into());
        }
        Ok(())
    }
}

/// What the warehouse has decided for one order.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Plan {
    pub next_label_at: Option<Timestamp>,
    pub split: bool,
    pub carrier: String,
    pub labels: Vec<LabelPlan>,
}

/// What will happen to one label.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LabelPlan {
    pub shipment_id: i64,
    pub tracking_number: String,
    pub void_at: Option<Timestamp>,
    pub notice_at: Option<Timestamp>,
    pub scan_at: Option<Timestamp>,
    pub transit_at: Option<Timestamp>,
    pub deliver_at: Option<Timestamp>,
}

fn pick(rng: &mut ChaCha8Rng, [lo, hi]: [u64; 2]) -> SignedDuration {
    SignedDuration::from_secs(rng.gen_range(lo..=hi) as i64)
}

/// One pass over the world at virtual time `now`.
pub(crate) fn tick(shared: &Shared, now: Timestamp) {
    shared.with_world(|w| {
        release_holds(w, now);
        if !w.simulation.enabled {
            return;
        }
        let mut rng = shared.rng.lock().expect("rng lock");
        let sim = w.simulation.clone();
        plan_new_orders(w, &sim, &mut rng, now);
        let mut labelled = Vec::new();
        let mut events = Vec::new();
        let order_ids: Vec<i64> = w.sim_plans.keys().copied().collect();
        for order_id in order_ids {
            let Some(order) = w.orders.get(&order_id).cloned() else {
                w.sim_plans.remove(&order_id);
                continue;
            };
            let mut plan = w.sim_plans[&order_id].clone();
            // Labels first: voids, then carrier events.
            let mut voided_any = false;
            for label in plan.labels.iter_mut() {
                if label.void_at.is_some_and(|t| t <= now) {
                    label.void_at = None;
                    label.notice_at = None;
                    label.scan_at = None;
                    label.transit_at = None;
                    label.deliver_at = None;
                    if w.void_label(label.shipment_id, now).is_ok() {
                        voided_any = true;
                    }
                    continue;
                }
                for (slot, code, detail, text) in [
                    (&mut label.notice_at, "NY", "ELEC_ADVICE_RECD_BY_CARRIER", "Shipment information sent to the carrier"),
                    (&mut label.scan_at, "AC", "RECEIVED_BY_CARRIER", "Picked up by the carrier"),
                    (&mut label.transit_at, "IT", "IN_TRANSIT", "Departed facility"),
                    (&mut label.deliver_at, "DE", "DELIVERED", "Delivered, front door"),
                ] {
                    if let Some(at) = *slot
                        && at <= now
                    {
                        *slot = None;
                        let event = TrackEvent {
                            occurred_at: at,
                            status_code: code.into(),
                            status_detail_code: Some(detail.into()),
                            description: text.into(),
                            city_locality: Some("Austin".into()),
                            state_province: Some("TX".into()),
                            postal_code: Some("78701".into()),
                            country_code: Some("US".into()),
                            event_code: Some(code.into()),
                            signer: (code == "DE").then(|| "FRONT DOOR".into()),
                        };
                        if w.add_track_event(&label.tracking_number, event, now).is_ok() {
                            events.push(label.tracking_number.clone());
                        }
                    }
                }
            }
            plan.labels.retain(|l| l.void_at.is_some() || l.notice_at.is_some() || l.scan_at.is_some() || l.transit_at.is_some() || l.deliver_at.is_some());
            if voided_any && plan.next_label_at.is_none() {
                plan.next_label_at = Some(now + pick(&mut rng, sim.void_delay_secs));
            }
            let order = w.orders.get(&order_id).cloned().unwrap_or(order);
            if plan.next_label_at.is_some_and(|t| t <= now) {
                if order.visible() && order.order_status == "awaiting_shipment" {
                    let left = w.unshipped(&order);
                    let items = if plan.split && left.len() > 1 {
                        plan.split = false;
                        Some(vec![LinePick { order_item_id: Some(left[0].0), line_item_key: None, sku: None, quantity: Some(left[0].1) }])
                    } else {
                        None
                    };
                    let cost = rng.gen_range(sim.cost_minor[0]..=sim.cost_minor[1]);
                    let req = LabelRequest {
                        carrier_code: Some(plan.carrier.clone()),
                        shipment_cost: Some(rust_decimal::Decimal::new(cost, 2)),
                        currency: Some(sim.carrier_currencies.get(&plan.carrier).cloned().unwrap_or_else(|| sim.currency.clone())),
                        items,
                        ..Default::default()
                    };
                    match w.create_label(order_id, &req, now) {
                        Ok(shipment_id) => {
                            let s = &w.shipments[&shipment_id];
                            labelled.push((s.store_id, s.batch_id));
                            let voids = rng.gen_bool(sim.void_share);
                            let scans = rng.gen_bool(sim.scan_share);
                            let scan_at = now + pick(&mut rng, sim.scan_delay_secs);
                            let deliver_at = scan_at + pick(&mut rng, sim.deliver_delay_secs);
                            plan.labels.push(LabelPlan {
                                shipment_id,
                                tracking_number: s.tracking_number.clone(),
                                void_at: voids.then(|| now + pick(&mut rng, sim.void_delay_secs)),
                                notice_at: (!voids).then(|| now + SignedDuration::from_secs(60)),
                                scan_at: (!voids && scans).then_some(scan_at),
                                transit_at: (!voids && scans).then(|| scan_at + SignedDuration::from_secs(3 * 3600)),
                                deliver_at: (!voids && scans).then_some(deliver_at),
                            });
                            let still_open = w.orders[&order_id].order_status == "awaiting_shipment";
                            plan.next_label_at = still_open.then(|| now + pick(&mut rng, sim.next_parcel_delay_secs));
                        }
                        Err(_) => plan.next_label_at = None,
                    }
                } else {
                    plan.next_label_at = None;
                }
            }
            let finished = plan.next_label_at.is_none()
                && plan.labels.is_empty()
                && !matches!(order.order_status.as_str(), "awaiting_shipment");
            if finished {
                w.sim_plans.remove(&order_id);
            } else {
                w.sim_plans.insert(order_id, plan);
            }
        }
        drop(rng);
        for (store, batch) in labelled {
            crate::delivery::ship_notify(shared, w, store, batch);
        }
        for number in events {
            crate::delivery::track_notify(shared, w, &number);
        }
    });
}

/// Give every order that waits for a label (and has no plan yet) a plan.
fn plan_new_orders(w: &mut World, sim: &SimulationConfig, rng: &mut ChaCha8Rng, now: Timestamp) {
    let waiting: Vec<(i64, usize)> = w
        .orders
        .values()
        .filter(|o| o.visible() && o.active && o.order_status == "awaiting_shipment")
        .filter(|o| w.sim_plans.get(&o.order_id).is_none_or(|p| p.next_label_at.is_none() && p.labels.is_empty()))
        .map(|o| (o.order_id, o.items.iter().filter(|i| !i.adjustment).count()))
        .collect();
    for (order_id, lines) in waiting {
        let carrier = sim.carriers[rng.gen_range(0..sim.carriers.len())].clone();
        let split = lines > 1 && rng.gen_bool(sim.split_share);
        w.sim_plans.insert(
            order_id,
            Plan { next_label_at: Some(now + pick(rng, sim.label_delay_secs)), split, carrier, labels: Vec::new() },
        );
    }
}

/// Orders held until a date that has come return to `awaiting_shipment`.
fn release_holds(w: &mut World, now: Timestamp) {
    let today = crate::state::pacific_date(now);
    for order in w.orders.values_mut() {
        if order.order_status == "on_hold" && order.hold_until_date.is_some_and(|d| d <= today) {
            order.order_status = "awaiting_shipment".into();
            order.hold_until_date = None;
            order.modify_date = now;
        }
    }
}

/// Run [`tick`] four times a second until stopped.
pub(crate) async fn run(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
            _ = stop.changed() => {}
        }
        if *stop.borrow() {
            return;
        }
        tick(&shared, shared.clock.now());
    }
}
