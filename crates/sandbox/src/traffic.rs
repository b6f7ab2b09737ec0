//! The demo's order traffic: a deterministic plan of realistic web-shop orders for
//! the sandbox ERP, bad ones included, and a feeder that plays it into the ERP's
//! control API, all at once or paced by a clock.
//!
//! [`Traffic::plan`] turns a [`TrafficConfig`] (how many orders, a seed, how the bad
//! ones are shared out) into a [`TrafficPlan`]: a product catalogue of 30 SKUs with
//! weights in grams (two without a usable weight, one inactive), and D2C orders from
//! the UK, the US, Ireland (Eircodes), Germany, France, the Netherlands and Hong Kong
//! (no postal codes) in GBP, USD and EUR, with one to four lines, some multi-quantity
//! and an occasional discount line. Each order carries its [`OrderKind`] and the
//! outcome shipledger should reach ([`Expected`]: `released`, `held:<reason>`,
//! `cancelled`). The same config and seed always give the same plan.
//!
//! The plan never picks the ERP's ids: it names orders by their web reference
//! (`external_ref`), which the ERP also uses to recognise a re-sent order. Later
//! actions — a capture, a re-send, a cancellation, a corrected address — are
//! [`PlannedAction`]s at an offset from the start; [`TrafficPlan::apply`] plays
//! everything now, [`TrafficFeeder::step`] plays what is due by a given time.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use shipledger_core::exception::ExceptionKind;
use shipledger_core::order::{Address, PaymentState};

use crate::erp::model::{LineInput, OrderInput, PaymentInput};

/// How the bad orders are shared out: each a fraction of all orders (0.05 = 5%).
/// Every order has at most one of these; the rest are good.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TrafficShares {
    /// No payment document, or a bank transfer still awaited.
    pub unpaid: f64,
    /// A card authorisation that is never captured.
    pub authorised_only: f64,
    /// Authorised at first, captured later: held, then releasable.
    pub captured_later: f64,
    /// A line whose product has a zero or missing weight, and no line weight.
    pub zero_weight: f64,
    /// A line whose SKU is not in the product master.
    pub unknown_sku: f64,
    /// A ship-to without its street, city or postcode.
    pub incomplete_address: f64,
    /// Re-sent unchanged by the shop later: shows up twice in the change feed.
    pub duplicate: f64,
    /// Cancelled in the ERP some time after it was placed (maybe after release).
    pub later_cancellation: f64,
    /// The customer corrects the ship-to address after placing the order.
    pub ship_to_correction: f64,
}

impl Default for TrafficShares {
    fn default() -> Self {
        TrafficShares {
            unpaid: 0.05,
            authorised_only: 0.05,
            captured_later: 0.03,
            zero_weight: 0.04,
            unknown_sku: 0.03,
            incomplete_address: 0.03,
            duplicate: 0.03,
            later_cancellation: 0.04,
            ship_to_correction: 0.03,
        }
    }
}

impl TrafficShares {
    /// Good orders only: every share zero.
    pub fn none() -> TrafficShares {
        TrafficShares {
            unpaid: 0.0,
            authorised_only: 0.0,
            captured_later: 0.0,
            zero_weight: 0.0,
            unknown_sku: 0.0,
            incomplete_address: 0.0,
            duplicate: 0.0,
            later_cancellation: 0.0,
            ship_to_correction: 0.0,
        }
    }

    fn by_kind(&self) -> [(OrderKind, f64); 9] {
        [
            (OrderKind::Unpaid, self.unpaid),
            (OrderKind::AuthorisedOnly, self.authorised_only),
            (OrderKind::CapturedLater, self.captured_later),
            (OrderKind::ZeroWeight, self.zero_weight),
            (OrderKind::UnknownSku, self.unknown_sku),
            (OrderKind::IncompleteAddress, self.incomplete_address),
            (OrderKind::Duplicate, self.duplicate),
            (OrderKind::LaterCancellation, self.later_cancellation),
            (OrderKind::ShipToCorrection, self.ship_to_correction),
        ]
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrafficConfig {
    pub orders: usize,
    pub seed: u64,
    /// Orders are placed across this span from the start (default one hour).
    pub spread: SignedDuration,
    pub shares: TrafficShares,
}

impl Default for TrafficConfig {
    fn default() -> Self {
        TrafficConfig { orders: 100, seed: 1, spread: SignedDuration::from_hours(1), shares: TrafficShares::default() }
    }
}

/// What an order is meant to exercise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderKind {
    Good,
    Unpaid,
    AuthorisedOnly,
    CapturedLater,
    ZeroWeight,
    UnknownSku,
    IncompleteAddress,
    Duplicate,
    LaterCancellation,
    ShipToCorrection,
}

impl OrderKind {
    pub fn as_str(self) -> &'static str {
        match self {
            OrderKind::Good => "good",
            OrderKind::Unpaid => "unpaid",
            OrderKind::AuthorisedOnly => "authorised_only",
            OrderKind::CapturedLater => "captured_later",
            OrderKind::ZeroWeight => "zero_weight",
            OrderKind::UnknownSku => "unknown_sku",
            OrderKind::IncompleteAddress => "incomplete_address",
            OrderKind::Duplicate => "duplicate",
            OrderKind::LaterCancellation => "later_cancellation",
            OrderKind::ShipToCorrection => "ship_to_correction",
        }
    }

    /// Where shipledger should end up with such an order once the plan has played.
    pub fn expected(self) -> Expected {
        match self {
            OrderKind::Unpaid | OrderKind::AuthorisedOnly => Expected::Held(ExceptionKind::HeldUnpaid),
            OrderKind::ZeroWeight => Expected::Held(ExceptionKind::HeldMissingWeight),
            OrderKind::UnknownSku => Expected::Held(ExceptionKind::HeldUnknownSku),
            OrderKind::IncompleteAddress => Expected::Held(ExceptionKind::HeldIncompleteAddress),
            OrderKind::LaterCancellation => Expected::Cancelled,
            OrderKind::Good | OrderKind::CapturedLater | OrderKind::Duplicate | OrderKind::ShipToCorrection => Expected::Released,
        }
    }
}

impl fmt::Display for OrderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The outcome an order should reach: `released`, `held:<reason>` (the exception
/// kind without its `held_` prefix, e.g. `held:missing_weight`) or `cancelled`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Expected {
    Released,
    Held(ExceptionKind),
    Cancelled,
}

impl fmt::Display for Expected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expected::Released => f.write_str("released"),
            Expected::Held(k) => write!(f, "held:{}", k.code().trim_start_matches("held_")),
            Expected::Cancelled => f.write_str("cancelled"),
        }
    }
}

impl Serialize for Expected {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Expected {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        match s.as_str() {
            "released" => Ok(Expected::Released),
            "cancelled" => Ok(Expected::Cancelled),
            other => other
                .strip_prefix("held:")
                .and_then(|r| ExceptionKind::parse(&format!("held_{r}")))
                .map(Expected::Held)
                .ok_or_else(|| serde::de::Error::custom(format!("unknown expected outcome '{s}'"))),
        }
    }
}

/// One product of the shop's catalogue, as seeded into the ERP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogueItem {
    pub sku: String,
    pub name: String,
    /// Grams per unit; `None` when the master has no weight (and `Some(0)` happens).
    pub weight_grams: Option<u64>,
    /// Price in pence (GBP); USD and EUR prices follow from it.
    pub price_gbp_minor: i64,
    pub active: bool,
    pub on_hand: i64,
}

impl CatalogueItem {
    /// Usable for a good order: active and with a positive weight.
    pub fn shippable(&self) -> bool {
        self.active && self.weight_grams.is_some_and(|g| g > 0)
    }
}

/// A planned order: what the shop sends, what it is for and where it should end.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedOrder {
    /// The web shop's reference (`WEB-…`): the order's number and `external_ref`.
    pub reference: String,
    pub kinds: Vec<OrderKind>,
    pub expected: Expected,
    /// When it is placed, from the start.
    pub at: SignedDuration,
    /// The control API body.
    pub order: OrderInput,
}

/// Something the plan does to the ERP.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "action")]
pub enum TrafficAction {
    /// The shop sends the order.
    Create,
    /// The shop sends it again, unchanged.
    Resend,
    /// The payment provider captures the authorisation.
    Capture,
    /// Customer service cancels the order.
    Cancel,
    /// The customer corrects the ship-to address.
    ChangeShipTo { address: Box<Address> },
}

impl TrafficAction {
    pub fn as_str(&self) -> &'static str {
        match self {
            TrafficAction::Create => "create",
            TrafficAction::Resend => "resend",
            TrafficAction::Capture => "capture",
            TrafficAction::Cancel => "cancel",
            TrafficAction::ChangeShipTo { .. } => "change_ship_to",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedAction {
    /// When, from the start.
    pub at: SignedDuration,
    pub reference: String,
    pub action: TrafficAction,
}

/// Counts for reports (`orders.generated`, by kind, by expected outcome).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrafficSummary {
    pub generated: usize,
    pub by_kind: BTreeMap<String, usize>,
    pub by_expected: BTreeMap<String, usize>,
    /// Actions after the creations, by action.
    pub later_actions: BTreeMap<String, usize>,
    pub catalogue: usize,
}

/// A whole plan: catalogue, orders and every action in time order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrafficPlan {
    pub config: TrafficConfig,
    pub catalogue: Vec<CatalogueItem>,
    pub orders: Vec<PlannedOrder>,
    /// Creations and later actions, ordered by `at` (ties keep plan order).
    pub actions: Vec<PlannedAction>,
}

/// The generator's entry point.
pub struct Traffic;

impl Traffic {
    /// The plan for `config`: the same config always gives the same plan.
    pub fn plan(config: TrafficConfig) -> TrafficPlan {
        plan(config)
    }
}

// ----- data ----------------------------------------------------------------------

/// (sku, name, grams, price in pence, active)
const CATALOGUE: &[(&str, &str, Option<u64>, i64, bool)] = &[
    ("MUG-STONE-350", "Stoneware mug 350 ml", Some(380), 1400, true),
    ("MUG-ENAMEL-WHT", "Enamel camp mug, white", Some(210), 1200, true),
    ("MUG-ENAMEL-BLU", "Enamel camp mug, blue (discontinued)", Some(210), 1200, false),
    ("CUP-ESPRESSO-2", "Espresso cups, pair", Some(260), 1600, true),
    ("COF-BEAN-250", "House espresso beans 250 g", Some(270), 950, true),
    ("COF-BEAN-1KG", "House espresso beans 1 kg", Some(1050), 3200, true),
    ("COF-DECAF-250", "Swiss-water decaf 250 g", Some(270), 1050, true),
    ("TEA-EARLGREY-100", "Earl Grey loose leaf 100 g", Some(125), 850, true),
    ("TEA-SENCHA-50", "Sencha green tea 50 g", Some(70), 900, true),
    ("GRINDER-HAND", "Hand grinder, steel burrs", Some(620), 6500, true),
    ("DRIPPER-V60", "Ceramic pour-over dripper", Some(310), 2200, true),
    ("FILTER-PAPER-100", "Paper filters, 100", Some(180), 550, true),
    ("KETTLE-GOOSENECK", "Gooseneck kettle 0.9 l", Some(900), 4800, true),
    ("SCALE-BREW", "Brew scale with timer", Some(450), 3500, true),
    ("CARAFE-GLASS-600", "Glass carafe 600 ml", Some(540), 2400, true),
    ("TEAPOT-CAST-IRON", "Cast-iron teapot 0.8 l", Some(1600), 5500, true),
    ("SPOON-SET-4", "Measuring spoons, set of 4", Some(160), 900, true),
    ("COASTER-CORK-4", "Cork coasters, set of 4", Some(60), 700, true),
    ("TOTE-CANVAS", "Canvas tote bag", Some(210), 1500, true),
    ("TEE-M-NAVY", "Logo T-shirt, M, navy", Some(190), 2500, true),
    ("TEE-L-NAVY", "Logo T-shirt, L, navy", Some(205), 2500, true),
    ("HOODIE-L-GREY", "Heavyweight hoodie, L, grey", Some(650), 5500, true),
    ("SOCKS-STRIPE", "Striped socks", Some(80), 900, true),
    ("CANDLE-FIG", "Fig & cedar candle 200 g", Some(420), 2800, true),
    ("NOTEBOOK-A5", "Dot-grid notebook A5", Some(250), 1300, true),
    ("BLANKET-WOOL", "Lambswool throw", Some(1400), 8900, true),
    ("PLANTER-LARGE", "Terracotta planter, large", Some(2300), 3900, true),
    ("SAMPLE-SACHET", "Coffee sample sachet", Some(0), 150, true),
    ("GIFTBOX-DELUXE", "Deluxe gift box", None, 4500, true),
    ("PRINT-A3-HARBOUR", "Harbour print A3", None, 3000, true),
];

/// Lines a shop sends with a SKU the ERP has never heard of (a weight from the shop).
const UNKNOWN: &[(&str, &str, u64, i64)] = &[
    ("MUG-STONE-350-V2", "Stoneware mug 350 ml (new glaze)", 380, 1500),
    ("TEE-XXL-NAVY", "Logo T-shirt, XXL, navy", 240, 2500),
    ("CANDLE-AMBER-LTD", "Amber candle, limited edition", 420, 3200),
    ("GIFTSET-XMAS", "Christmas gift set", 1200, 6000),
];

struct Country {
    code: &'static str,
    currency: &'static str,
    weight: u32,
    first: &'static [&'static str],
    last: &'static [&'static str],
    /// (street, city, region, postcode)
    places: &'static [(&'static str, &'static str, &'static str, Option<&'static str>)],
    number_after_street: bool,
    services: &'static [&'static str],
    phone_prefix: &'static str,
}

const COUNTRIES: &[Country] = &[
    Country {
        code: "GB",
        currency: "GBP",
        weight: 45,
        first: &["Olivia", "Amelia", "George", "Arthur", "Harry", "Isla", "Freya", "Oliver", "Priya", "Mohammed"],
        last: &["Smith", "Jones", "Taylor", "Brown", "Williams", "Patel", "Khan", "Evans", "Thomas", "Walker"],
        places: &[
            ("High Street", "Oxford", "Oxfordshire", Some("OX1 4AS")),
            ("Deansgate", "Manchester", "Greater Manchester", Some("M3 4LQ")),
            ("Gloucester Road", "Bristol", "", Some("BS7 8AE")),
            ("Bold Street", "Liverpool", "Merseyside", Some("L1 4DS")),
            ("Rose Street", "Edinburgh", "", Some("EH2 2PR")),
            ("Mill Lane", "Cardiff", "", Some("CF10 1FL")),
            ("Upper Street", "London", "", Some("N1 0NY")),
            ("Victoria Road", "Leeds", "West Yorkshire", Some("LS6 1DU")),
        ],
        number_after_street: false,
        services: &["Royal Mail Tracked 48", "Royal Mail Tracked 24", "DPD Next Day"],
        phone_prefix: "+44 7700 900",
    },
    Country {
        code: "US",
        currency: "USD",
        weight: 25,
        first: &["James", "Emma", "Michael", "Olivia", "Ethan", "Sophia", "Daniel", "Ava", "Mateo", "Chloe"],
        last: &["Johnson", "Garcia", "Miller", "Davis", "Rodriguez", "Martinez", "Anderson", "Lee", "Nguyen", "Wilson"],
        places: &[
            ("Market Street", "San Francisco", "CA", Some("94103")),
            ("Broadway", "New York", "NY", Some("10012")),
            ("Congress Avenue", "Austin", "TX", Some("78701")),
            ("Pike Street", "Seattle", "WA", Some("98101")),
            ("Peachtree Street NE", "Atlanta", "GA", Some("30303")),
            ("North Michigan Avenue", "Chicago", "IL", Some("60611")),
        ],
        number_after_street: false,
        services: &["USPS Ground Advantage", "UPS Ground", "UPS 2nd Day Air"],
        phone_prefix: "+1 415 555 0",
    },
    Country {
        code: "IE",
        currency: "EUR",
        weight: 6,
        first: &["Aoife", "Seán", "Niamh", "Conor", "Saoirse", "Cian"],
        last: &["Murphy", "Kelly", "O'Sullivan", "Walsh", "Byrne", "Ryan"],
        places: &[
            ("Grafton Street", "Dublin 2", "Co. Dublin", Some("D02 X285")),
            ("Shop Street", "Galway", "Co. Galway", Some("H91 E2W8")),
            ("Oliver Plunkett Street", "Cork", "Co. Cork", Some("T12 K2CX")),
            ("O'Connell Street", "Limerick", "Co. Limerick", Some("V94 TX4P")),
        ],
        number_after_street: false,
        services: &["An Post Express", "DPD Classic Europe"],
        phone_prefix: "+353 85 555 0",
    },
    Country {
        code: "DE",
        currency: "EUR",
        weight: 8,
        first: &["Lukas", "Anna", "Leon", "Mia", "Felix", "Hannah"],
        last: &["Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Becker"],
        places: &[
            ("Torstraße", "Berlin", "Berlin", Some("10119")),
            ("Sendlinger Straße", "München", "Bayern", Some("80331")),
            ("Ehrenstraße", "Köln", "Nordrhein-Westfalen", Some("50672")),
            ("Schanzenstraße", "Hamburg", "Hamburg", Some("20357")),
        ],
        number_after_street: true,
        services: &["DHL Paket International", "DPD Classic Europe"],
        phone_prefix: "+49 30 5555 0",
    },
    Country {
        code: "FR",
        currency: "EUR",
        weight: 7,
        first: &["Léa", "Hugo", "Chloé", "Louis", "Manon", "Jules"],
        last: &["Martin", "Bernard", "Dubois", "Thomas", "Robert", "Petit"],
        places: &[
            ("Rue de Rivoli", "Paris", "Île-de-France", Some("75004")),
            ("Rue de la République", "Lyon", "Auvergne-Rhône-Alpes", Some("69002")),
            ("Rue Sainte-Catherine", "Bordeaux", "Nouvelle-Aquitaine", Some("33000")),
        ],
        number_after_street: false,
        services: &["Colissimo International", "DPD Classic Europe"],
        phone_prefix: "+33 6 55 55 0",
    },
    Country {
        code: "NL",
        currency: "EUR",
        weight: 5,
        first: &["Daan", "Sanne", "Bram", "Emma", "Sem", "Julia"],
        last: &["de Jong", "Jansen", "de Vries", "van den Berg", "Bakker", "Visser"],
        places: &[
            ("Prinsengracht", "Amsterdam", "Noord-Holland", Some("1016 HK")),
            ("Oudegracht", "Utrecht", "Utrecht", Some("3511 AL")),
            ("Witte de Withstraat", "Rotterdam", "Zuid-Holland", Some("3012 BP")),
        ],
        number_after_street: true,
        services: &["PostNL International", "DPD Classic Europe"],
        phone_prefix: "+31 6 5555 0",
    },
    Country {
        code: "HK",
        currency: "USD",
        weight: 4,
        first: &["Wing", "Ka Yan", "Chi Ming", "Mei Ling", "Ho Yin"],
        last: &["Chan", "Wong", "Lee", "Cheung", "Lau"],
        places: &[
            ("Queen's Road Central", "Hong Kong", "Central and Western", None),
            ("Nathan Road", "Kowloon", "Yau Tsim Mong", None),
            ("Hennessy Road", "Hong Kong", "Wan Chai", None),
        ],
        number_after_street: false,
        services: &["DHL Express Worldwide"],
        phone_prefix: "+852 5555 0",
    },
];

// ----- planning ------------------------------------------------------------------

fn money(minor: i64) -> Decimal {
    Decimal::new(minor, 2)
}

/// A product's price in an order currency, in minor units.
fn price_in(pence: i64, currency: &str) -> i64 {
    match currency {
        "USD" => (pence * 127 + 50) / 100,
        "EUR" => (pence * 117 + 50) / 100,
        _ => pence,
    }
}

fn address(rng: &mut ChaCha8Rng, c: &Country) -> Address {
    let first = *c.first.choose(rng).expect("names");
    let last = *c.last.choose(rng).expect("names");
    let (street, city, region, postcode) = *c.places.choose(rng).expect("places");
    let number: u32 = rng.gen_range(1..=220);
    let street1 = if c.number_after_street { format!("{street} {number}") } else { format!("{number} {street}") };
    let street2 = rng.gen_bool(0.15).then(|| format!("Flat {}", rng.gen_range(1..=40)));
    let ascii = |s: &str| -> String {
        s.chars()
            .filter_map(|ch| match ch {
                'é' | 'è' => Some('e'),
                'á' => Some('a'),
                'ü' => Some('u'),
                'ö' => Some('o'),
                'ä' => Some('a'),
                ' ' | '\'' => None,
                c => Some(c.to_ascii_lowercase()),
            })
            .collect()
    };
    let domain = if c.code == "GB" { "example.co.uk" } else { "example.com" };
    Address {
        name: Some(format!("{first} {last}")),
        company: rng.gen_bool(0.05).then(|| "Northwind Studio".to_string()),
        street1: Some(street1),
        street2,
        city: Some(city.to_string()),
        region: Some(region.to_string()).filter(|r| !r.is_empty()),
        postal_code: postcode.map(str::to_string),
        country: Some(c.code.to_string()),
        phone: rng.gen_bool(0.7).then(|| format!("{}{:03}", c.phone_prefix, rng.gen_range(0..1000))),
        email: Some(format!("{}.{}{}@{domain}", ascii(first), ascii(last), rng.gen_range(1..100))),
    }
}

fn pick_country(rng: &mut ChaCha8Rng) -> &'static Country {
    let total: u32 = COUNTRIES.iter().map(|c| c.weight).sum();
    let mut n = rng.gen_range(0..total);
    for c in COUNTRIES {
        if n < c.weight {
            return c;
        }
        n -= c.weight;
    }
    &COUNTRIES[0]
}

fn catalogue(rng: &mut ChaCha8Rng) -> Vec<CatalogueItem> {
    CATALOGUE
        .iter()
        .map(|&(sku, name, grams, price, active)| CatalogueItem {
            sku: sku.into(),
            name: name.into(),
            weight_grams: grams,
            price_gbp_minor: price,
            active,
            on_hand: rng.gen_range(40..=400),
        })
        .collect()
}

fn plan(config: TrafficConfig) -> TrafficPlan {
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let catalogue = catalogue(&mut rng);
    let n = config.orders;

    // Exact counts per bad kind, handed to shuffled order positions.
    let mut kinds = vec![OrderKind::Good; n];
    let mut positions: Vec<usize> = (0..n).collect();
    positions.shuffle(&mut rng);
    let mut next = positions.into_iter();
    for (kind, share) in config.shares.by_kind() {
        let count = (share.clamp(0.0, 1.0) * n as f64).round() as usize;
        for _ in 0..count {
            match next.next() {
                Some(i) => kinds[i] = kind,
                None => break,
            }
        }
    }

    // Placing times, spread over the span, in order.
    let spread_ms = config.spread.as_millis().max(0) as i64;
    let mut offsets: Vec<i64> = (0..n).map(|_| if spread_ms == 0 { 0 } else { rng.gen_range(0..spread_ms) }).collect();
    offsets.sort_unstable();

    let prefix = 10 + config.seed % 90;
    let mut orders = Vec::with_capacity(n);
    let mut actions = Vec::new();
    for (i, kind) in kinds.into_iter().enumerate() {
        let reference = format!("WEB-{prefix}{:05}", i + 1);
        let at = SignedDuration::from_millis(offsets[i]);
        let country = pick_country(&mut rng);
        let order = make_order(&mut rng, &catalogue, country, &reference, kind);
        actions.push(PlannedAction { at, reference: reference.clone(), action: TrafficAction::Create });
        let minutes = |rng: &mut ChaCha8Rng, lo: i64, hi: i64| at + SignedDuration::from_secs(rng.gen_range(lo * 60..=hi * 60));
        match kind {
            OrderKind::CapturedLater => {
                actions.push(PlannedAction { at: minutes(&mut rng, 15, 90), reference: reference.clone(), action: TrafficAction::Capture });
            }
            OrderKind::Duplicate => {
                actions.push(PlannedAction { at: minutes(&mut rng, 1, 20), reference: reference.clone(), action: TrafficAction::Resend });
            }
            OrderKind::LaterCancellation => {
                actions.push(PlannedAction { at: minutes(&mut rng, 20, 180), reference: reference.clone(), action: TrafficAction::Cancel });
            }
            OrderKind::ShipToCorrection => {
                let mut corrected = address(&mut rng, country);
                corrected.name = order.ship_to.name.clone();
                corrected.email = order.ship_to.email.clone();
                actions.push(PlannedAction {
                    at: minutes(&mut rng, 5, 45),
                    reference: reference.clone(),
                    action: TrafficAction::ChangeShipTo { address: Box::new(corrected) },
                });
            }
            _ => {}
        }
        orders.push(PlannedOrder { reference, kinds: vec![kind], expected: kind.expected(), at, order });
    }
    // Stable: a later action never precedes its order's creation.
    actions.sort_by_key(|a| a.at);
    TrafficPlan { config, catalogue, orders, actions }
}

fn make_order(rng: &mut ChaCha8Rng, catalogue: &[CatalogueItem], c: &Country, reference: &str, kind: OrderKind) -> OrderInput {
    let currency = c.currency;
    let shippable: Vec<&CatalogueItem> = catalogue.iter().filter(|p| p.shippable()).collect();
    let n_lines = match rng.gen_range(0..100) {
        0..45 => 1,
        45..75 => 2,
        75..90 => 3,
        _ => 4,
    };
    let mut lines: Vec<LineInput> = shippable
        .choose_multiple(rng, n_lines)
        .map(|p| LineInput {
            sku: Some(p.sku.clone()),
            name: p.name.clone(),
            quantity: match rng.gen_range(0..100) {
                0..80 => 1,
                80..95 => 2,
                _ => 3,
            },
            unit_price: money(price_in(p.price_gbp_minor, currency)),
            physical: true,
            ..Default::default()
        })
        .collect();

    match kind {
        OrderKind::ZeroWeight => {
            let weightless: Vec<&CatalogueItem> = catalogue.iter().filter(|p| p.active && !p.shippable()).collect();
            let p = weightless.choose(rng).expect("the catalogue has weightless products");
            lines.push(LineInput {
                sku: Some(p.sku.clone()),
                name: p.name.clone(),
                quantity: 1,
                unit_price: money(price_in(p.price_gbp_minor, currency)),
                physical: true,
                ..Default::default()
            });
        }
        OrderKind::UnknownSku => {
            let &(sku, name, grams, price) = UNKNOWN.choose(rng).expect("unknown SKUs");
            lines.push(LineInput {
                sku: Some(sku.into()),
                name: name.into(),
                quantity: 1,
                unit_price: money(price_in(price, currency)),
                weight: Some(Decimal::from(grams)),
                weight_uom: Some("g".into()),
                physical: true,
                ..Default::default()
            });
        }
        _ => {}
    }

    let subtotal: i64 = lines.iter().map(|l| (l.unit_price * Decimal::from(l.quantity) * Decimal::ONE_HUNDRED).trunc().try_into().unwrap_or(0i64)).sum();
    let mut goods = subtotal;
    if rng.gen_bool(0.08) {
        let off = subtotal / 10;
        goods -= off;
        lines.push(LineInput {
            sku: None,
            name: "Discount WELCOME10".into(),
            quantity: 1,
            unit_price: money(-off),
            physical: false,
            ..Default::default()
        });
    }
    let shipping = match c.code {
        "GB" if goods >= 4000 => 0,
        "GB" => 395,
        "US" => 695,
        "HK" => 1495,
        _ => 595,
    };
    // US sales tax is added; UK and EU prices include VAT.
    let tax = if c.code == "US" { (goods * 725 + 5000) / 10_000 } else { 0 };

    let mut ship_to = address(rng, c);
    if kind == OrderKind::IncompleteAddress {
        let needs_postcode = ship_to.postal_code.is_some();
        match rng.gen_range(0..3) {
            0 => ship_to.street1 = None,
            1 if needs_postcode => ship_to.postal_code = None,
            _ => ship_to.city = None,
        }
    }
    let bill_to = if rng.gen_bool(0.15) { address(rng, c) } else { ship_to.clone() };
    let card = if rng.gen_bool(0.8) { "card" } else { "paypal" };
    let payment = match kind {
        OrderKind::Unpaid if rng.gen_bool(0.5) => None,
        OrderKind::Unpaid => Some(PaymentInput { state: PaymentState::Unpaid, method: Some("bank_transfer".into()), amount: None }),
        OrderKind::AuthorisedOnly | OrderKind::CapturedLater => Some(PaymentInput { state: PaymentState::Authorised, method: Some(card.into()), amount: None }),
        _ => Some(PaymentInput { state: PaymentState::Captured, method: Some(card.into()), amount: None }),
    };
    OrderInput {
        number: Some(reference.to_string()),
        external_ref: Some(reference.to_string()),
        currency: currency.to_string(),
        customer_email: bill_to.email.clone(),
        ship_to,
        bill_to: Some(bill_to),
        lines,
        shipping: Some(money(shipping)),
        tax: Some(money(tax)),
        requested_service: c.services.choose(rng).map(|s| s.to_string()),
        payment,
        ..Default::default()
    }
}

impl TrafficPlan {
    pub fn summary(&self) -> TrafficSummary {
        let mut by_kind = BTreeMap::new();
        let mut by_expected = BTreeMap::new();
        for o in &self.orders {
            for k in &o.kinds {
                *by_kind.entry(k.as_str().to_string()).or_insert(0) += 1;
            }
            *by_expected.entry(o.expected.to_string()).or_insert(0) += 1;
        }
        let mut later_actions = BTreeMap::new();
        for a in self.actions.iter().filter(|a| a.action != TrafficAction::Create) {
            *later_actions.entry(a.action.as_str().to_string()).or_insert(0) += 1;
        }
        TrafficSummary { generated: self.orders.len(), by_kind, by_expected, later_actions, catalogue: self.catalogue.len() }
    }

    pub fn order(&self, reference: &str) -> Option<&PlannedOrder> {
        self.orders.iter().find(|o| o.reference == reference)
    }

    /// When the last action is due, from the start.
    pub fn duration(&self) -> SignedDuration {
        self.actions.last().map(|a| a.at).unwrap_or_default()
    }

    /// A feeder that plays this plan into the sandbox ERP at `base_url`, counting
    /// offsets from `start`.
    pub fn feeder(&self, base_url: &str, start: Timestamp) -> TrafficFeeder {
        TrafficFeeder {
            plan: self.clone(),
            base_url: base_url.trim_end_matches('/').to_string(),
            http: reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("an HTTP client"),
            start,
            next: 0,
            seeded: false,
            ids: BTreeMap::new(),
        }
    }

    /// Play the whole plan now — catalogue, orders and every later action, in plan
    /// order — into the sandbox ERP at `base_url` (e.g. `handle.base_url()`).
    pub async fn apply(&self, base_url: &str) -> Result<Vec<Applied>, TrafficError> {
        let mut feeder = self.feeder(base_url, Timestamp::UNIX_EPOCH);
        let mut out = Vec::new();
        while !feeder.is_done() {
            out.extend(feeder.step(Timestamp::MAX).await?);
        }
        Ok(out)
    }
}

/// What the feeder did for one planned action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    pub at: SignedDuration,
    pub reference: String,
    /// The ERP's id of the order, once known.
    pub erp_id: Option<String>,
    pub action: String,
    /// `ok`, or `refused: <the ERP's words>` (a cancellation after shipping, say).
    pub outcome: String,
}

#[derive(Debug, thiserror::Error)]
pub enum TrafficError {
    #[error("the sandbox ERP at {url} failed {what}: {detail}")]
    Http { url: String, what: String, detail: String },
    #[error("order {reference} has no ERP id yet; its creation must be applied first")]
    NotCreated { reference: String },
}

/// Plays a [`TrafficPlan`] into a sandbox ERP, a step at a time.
pub struct TrafficFeeder {
    plan: TrafficPlan,
    base_url: String,
    http: reqwest::Client,
    start: Timestamp,
    next: usize,
    seeded: bool,
    /// Web reference → ERP id.
    ids: BTreeMap<String, String>,
}

impl TrafficFeeder {
    pub fn is_done(&self) -> bool {
        self.seeded && self.next >= self.plan.actions.len()
    }

    /// When the next action is due (`None` when done).
    pub fn next_due(&self) -> Option<Timestamp> {
        if !self.seeded {
            return Some(self.start);
        }
        self.plan.actions.get(self.next).map(|a| self.start.saturating_add(a.at).unwrap_or(Timestamp::MAX))
    }

    /// The ERP id of a planned order, once created.
    pub fn erp_id(&self, reference: &str) -> Option<&str> {
        self.ids.get(reference).map(String::as_str)
    }

    /// Apply every action due by `now` (the catalogue first, on the first step).
    pub async fn step(&mut self, now: Timestamp) -> Result<Vec<Applied>, TrafficError> {
        if !self.seeded {
            self.seed_catalogue().await?;
            self.seeded = true;
        }
        let mut out = Vec::new();
        while let Some(a) = self.plan.actions.get(self.next) {
            let due = self.start.saturating_add(a.at).unwrap_or(Timestamp::MAX);
            if due > now {
                break;
            }
            let a = a.clone();
            out.push(self.apply_one(&a).await?);
            self.next += 1;
        }
        Ok(out)
    }

    async fn seed_catalogue(&self) -> Result<(), TrafficError> {
        let products: Vec<Value> = self
            .plan
            .catalogue
            .iter()
            .map(|p| {
                json!({
                    "sku": p.sku, "name": p.name, "weight": p.weight_grams, "weight_uom": "g",
                    "active": p.active, "on_hand": p.on_hand,
                })
            })
            .collect();
        self.send(reqwest::Method::POST, "/_sandbox/products", Some(&json!({"products": products})), "seeding the catalogue").await?;
        Ok(())
    }

    async fn apply_one(&mut self, a: &PlannedAction) -> Result<Applied, TrafficError> {
        let planned = self.plan.order(&a.reference).cloned().ok_or_else(|| TrafficError::NotCreated { reference: a.reference.clone() })?;
        let what = format!("{} of {}", a.action.as_str(), a.reference);
        let id = || self.ids.get(&a.reference).cloned().ok_or_else(|| TrafficError::NotCreated { reference: a.reference.clone() });
        let (status, body) = match &a.action {
            TrafficAction::Create | TrafficAction::Resend => {
                // Sent typed, never through a `Value`: amounts stay exact decimals.
                self.send(reqwest::Method::POST, "/_sandbox/orders", Some(&planned.order), &what).await?
            }
            TrafficAction::Capture => {
                let id = id()?;
                self.send(reqwest::Method::POST, &format!("/_sandbox/orders/{id}/payment"), Some(&json!({"state": "captured"})), &what).await?
            }
            TrafficAction::Cancel => {
                let id = id()?;
                self.send(reqwest::Method::POST, &format!("/_sandbox/orders/{id}/cancel"), None::<&Value>, &what).await?
            }
            TrafficAction::ChangeShipTo { address } => {
                let id = id()?;
                self.send(reqwest::Method::PUT, &format!("/_sandbox/orders/{id}/ship-to"), Some(address.as_ref()), &what).await?
            }
        };
        if let Some(erp_id) = body.pointer("/order/id").and_then(Value::as_str) {
            self.ids.insert(a.reference.clone(), erp_id.to_string());
        }
        let outcome = if status < 300 {
            "ok".to_string()
        } else {
            format!("refused: {}", body.pointer("/error/message").and_then(Value::as_str).unwrap_or("(no message)"))
        };
        Ok(Applied { at: a.at, reference: a.reference.clone(), erp_id: self.ids.get(&a.reference).cloned(), action: a.action.as_str().into(), outcome })
    }

    fn err(&self, what: &str, detail: String) -> TrafficError {
        TrafficError::Http { url: self.base_url.clone(), what: what.to_string(), detail }
    }

    /// Send a control request; a 409/422 is an answer (the ERP said no), anything
    /// else that is not 2xx is an error.
    async fn send<B: Serialize + ?Sized>(&self, method: reqwest::Method, path: &str, body: Option<&B>, what: &str) -> Result<(u16, Value), TrafficError> {
        let mut req = self.http.request(method, format!("{}{path}", self.base_url));
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.map_err(|e| self.err(what, e.to_string()))?;
        let status = resp.status().as_u16();
        let text = resp.text().await.map_err(|e| self.err(what, e.to_string()))?;
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if status < 300 || status == 409 || status == 422 {
            Ok((status, value))
        } else {
            Err(self.err(what, format!("HTTP {status}: {value}")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_outcomes_read_as_the_report_writes_them() {
        assert_eq!(Expected::Held(ExceptionKind::HeldMissingWeight).to_string(), "held:missing_weight");
        let e: Expected = serde_json::from_str("\"held:unpaid\"").unwrap();
        assert_eq!(e, Expected::Held(ExceptionKind::HeldUnpaid));
    }

    #[test]
    fn the_catalogue_has_thirty_skus_and_some_without_a_usable_weight() {
        let plan = Traffic::plan(TrafficConfig { orders: 10, ..Default::default() });
        assert_eq!(plan.catalogue.len(), 30);
        assert!(plan.catalogue.iter().filter(|p| p.active && !p.shippable()).count() >= 2);
    }
}
