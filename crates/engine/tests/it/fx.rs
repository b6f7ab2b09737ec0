//! FX: every cost entry becomes the ERP's base currency (GBP here) at the first
//! usable rate of the configured sources — the ERP's, a rates file, fixed rates —
//! with both rates, their date and source kept; or it waits, with one finance
//! exception per pair and date that closes by itself once a rate is there.

use std::sync::Arc;

use jiff::civil::{Date, date};
use rust_decimal::Decimal;
use shipledger_core::clock::SystemClock;
use shipledger_core::cost::{Charge, CostSource, LabelFacts, NewCostEntry, entry_key};
use shipledger_core::exception::{ExceptionKind, Owner};
use shipledger_core::fx::RateSource;
use shipledger_core::{Currency, Money};
use shipledger_engine::config::{FixedRate, FxRateDate};
use shipledger_engine::flows::fx;
use shipledger_store::{Change, CostConversion, CostEntryFilter, EventKind, ExceptionFilter, ExceptionRecord, ExceptionState};

use crate::helpers::World;

const SHIP_DAY: Date = date(2026, 11, 27);

fn d(s: &str) -> Decimal {
    s.parse().unwrap()
}

/// Record a label's postage as an entry, shipped on [`SHIP_DAY`].
async fn postage(w: &World, shipment_id: i64, minor: i64, currency: Currency) -> String {
    let label = LabelFacts {
        shipment_key: format!("label:{shipment_id}"),
        erp_id: Some(format!("SO-{shipment_id}")),
        ss_order_id: shipment_id + 1000,
        carrier: "ups".into(),
        service: Some("ups_ground".into()),
        ship_date: Some(SHIP_DAY),
        label_created_at: "2026-11-27T15:00:00Z".parse().unwrap(),
    };
    let key = entry_key(&label.shipment_key, &Charge::Postage, 0);
    let mut change = Change::new("acme-uk", jiff::Timestamp::now());
    change.cost_entries.push(NewCostEntry::first(label, Charge::Postage, Money::from_minor(minor, currency), CostSource::ShipstationV2));
    w.store.commit(change).await.unwrap();
    key
}

fn rates(w: &World, table: Vec<(Currency, Date, &str)>) {
    *w.erp.fx_rates.lock().unwrap() = Some(table.into_iter().map(|(c, day, r)| (c, day, d(r))).collect());
}

async fn convert(w: &World) -> fx::FxReport {
    fx::convert(&w.engine, &w.engine.connections[0]).await.unwrap()
}

async fn conversion(w: &World, key: &str) -> Option<CostConversion> {
    w.store.get_cost_conversion("acme-uk", key).await.unwrap()
}

async fn fx_exceptions(w: &World) -> Vec<ExceptionRecord> {
    let filter = ExceptionFilter { connection: Some("acme-uk".into()), kind: Some(ExceptionKind::FxRateMissing), ..Default::default() };
    w.store.list_exceptions(filter).await.unwrap()
}

/// `minor × num ÷ den` rounded half-even, in integers: the test's own arithmetic.
fn half_even(minor: i64, num: i128, den: i128) -> i64 {
    let n = i128::from(minor) * num;
    let (q, r) = (n / den, n % den);
    let q = match (2 * r).cmp(&den) {
        std::cmp::Ordering::Less => q,
        std::cmp::Ordering::Greater => q + 1,
        std::cmp::Ordering::Equal => q + (q % 2),
    };
    i64::try_from(q).unwrap()
}

crate::stories! {
    async fn a_usd_and_a_eur_entry_convert_at_the_erps_own_rates_to_the_penny(w: World) {
        // Tryton's way: 1 GBP = 1.2513 USD (two days before), 1 GBP = 1.1721 EUR (the day before).
        rates(&w, vec![(Currency::USD, date(2026, 11, 25), "1.2513"), (Currency::EUR, date(2026, 11, 26), "1.1721"), (Currency::USD, date(2026, 11, 28), "9")]);
        let usd = postage(&w, 8301, 1_234_567, Currency::USD).await;
        let eur = postage(&w, 8302, 999, Currency::EUR).await;
        let gbp = postage(&w, 8303, 385, Currency::GBP).await;
        let report = convert(&w).await;
        assert_eq!((report.converted, report.waiting), (3, 0), "{report:?}");

        let u = conversion(&w, &usd).await.expect("USD converted").conversion;
        // 12,345.67 USD ÷ 1.2513 = 9866.2750739...; never via a rounded ratio.
        assert_eq!(u.base, Money::from_minor(half_even(1_234_567, 10_000, 12_513), Currency::GBP));
        assert_eq!(u.base.minor(), 986_628);
        assert_eq!((u.rate_from, u.rate_to, u.rate_date, u.wanted_date, u.source), (d("1.2513"), Decimal::ONE, date(2026, 11, 25), SHIP_DAY, RateSource::Erp));
        let e = conversion(&w, &eur).await.expect("EUR converted").conversion;
        // 9.99 EUR ÷ 1.1721 = 8.5231...
        assert_eq!(e.base, Money::from_minor(half_even(999, 10_000, 11_721), Currency::GBP));
        assert_eq!((e.rate_from, e.rate_date), (d("1.1721"), date(2026, 11, 26)));
        let g = conversion(&w, &gbp).await.expect("GBP kept").conversion;
        assert_eq!((g.base, g.source, g.rate_from, g.rate_to), (Money::from_minor(385, Currency::GBP), RateSource::Identity, Decimal::ONE, Decimal::ONE));

        let events = w.store.timeline("acme-uk", "shipment", "label:8301").await.unwrap();
        let converted: Vec<_> = events.iter().filter(|e| e.kind == EventKind::CostConverted).collect();
        assert_eq!(converted.len(), 1);
        assert_eq!(converted[0].detail["base"], "9866.28");
        assert_eq!(converted[0].detail["rate_date"], "2026-11-25");
        assert_eq!(converted[0].detail["source"], "erp");
        assert_eq!(convert(&w).await.converted, 0, "a converted entry is converted once");
        assert!(fx_exceptions(&w).await.is_empty());
    }

    async fn with_posting_date_an_entry_converts_at_its_windows_last_day_once_that_day_has_come(w: World) {
        // Monthly windows: the label of 27 November posts on 30 November, at the rate
        // of the 29th (the latest on or before the 30th), not its ship date's.
        rates(&w, vec![(Currency::USD, date(2026, 11, 25), "1.2513"), (Currency::USD, date(2026, 11, 29), "1.3000")]);
        let policy = &mut w.engine.connections[0].policy;
        policy.fx_rate_date = FxRateDate::PostingDate;
        policy.cost_batch = shipledger_core::journal::CostBatch::Monthly;
        policy.company_timezone = Some(jiff::tz::TimeZone::UTC);
        let november = postage(&w, 8391, 1300, Currency::USD).await;
        // A label made now posts at the end of this month: it waits for that day,
        // with nothing missing.
        let now = jiff::Timestamp::now();
        let mut change = Change::new("acme-uk", now);
        let label = LabelFacts {
            shipment_key: "label:8392".into(),
            erp_id: None,
            ss_order_id: 9392,
            carrier: "ups".into(),
            service: None,
            ship_date: Some(now.to_zoned(jiff::tz::TimeZone::UTC).date()),
            label_created_at: now,
        };
        let current = entry_key(&label.shipment_key, &Charge::Postage, 0);
        change.cost_entries.push(NewCostEntry::first(label, Charge::Postage, Money::from_minor(500, Currency::USD), CostSource::ShipstationV2));
        w.store.commit(change).await.unwrap();
        let report = convert(&w).await;
        assert_eq!((report.converted, report.waiting, report.before_posting_date), (1, 0, 1), "{report:?}");
        let c = conversion(&w, &november).await.expect("converted").conversion;
        assert_eq!((c.wanted_date, c.rate_date, c.rate_from), (date(2026, 11, 30), date(2026, 11, 29), d("1.3000")));
        assert_eq!(c.base, Money::from_minor(1000, Currency::GBP), "13.00 USD ÷ 1.30");
        assert!(conversion(&w, &current).await.is_none(), "this month's label waits for the month's last day");
        assert!(fx_exceptions(&w).await.is_empty(), "waiting for the posting date is not a missing rate");
    }

    async fn a_rate_older_than_fx_max_age_counts_as_missing(w: World) {
        rates(&w, vec![(Currency::USD, date(2026, 11, 22), "1.25")]);
        let usd = postage(&w, 8311, 640, Currency::USD).await;
        let report = convert(&w).await;
        assert_eq!((report.converted, report.waiting), (0, 1), "five days old is older than the default four");
        assert_eq!(conversion(&w, &usd).await, None);
        let open = fx_exceptions(&w).await;
        assert_eq!(open.len(), 1);
        assert!(open[0].detail["message"].as_str().unwrap().contains("2026-11-22"), "{}", open[0].detail);
        w.engine.connections[0].policy.fx_max_age = std::time::Duration::from_secs(7 * 86_400);
        assert_eq!(convert(&w).await.converted, 1, "within seven days it is usable");
        assert_eq!(conversion(&w, &usd).await.unwrap().conversion.rate_date, date(2026, 11, 22));
    }

    async fn the_first_source_with_a_usable_rate_wins_and_says_so(w: World) {
        // The ERP has USD but no EUR; the ECB file has EUR (and a USD the ERP beats).
        rates(&w, vec![(Currency::USD, date(2026, 11, 26), "1.25")]);
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("eurofxref-hist.csv");
        std::fs::write(&file, "Date,USD,GBP,\n2026-11-26,1.0565,0.8321,\n2026-11-25,1.0512,0.8300,\n").unwrap();
        let policy = &mut w.engine.connections[0].policy;
        policy.fx_sources = vec![RateSource::Erp, RateSource::File];
        policy.fx_rates_file = Some(file);
        let usd = postage(&w, 8321, 1000, Currency::USD).await;
        let eur = postage(&w, 8322, 1000, Currency::EUR).await;
        assert_eq!(convert(&w).await.converted, 2);
        let u = conversion(&w, &usd).await.unwrap();
        assert_eq!((u.conversion.source, u.conversion.base.minor()), (RateSource::Erp, 800), "10.00 USD ÷ 1.25");
        let e = conversion(&w, &eur).await.unwrap();
        // The ECB quotes against EUR: 10.00 EUR × 0.8321 ÷ 1.
        assert_eq!((e.conversion.source, e.conversion.rate_from, e.conversion.rate_to), (RateSource::File, Decimal::ONE, d("0.8321")));
        assert_eq!((e.conversion.base.minor(), e.conversion.rate_date), (832, date(2026, 11, 26)));
        assert!(e.source_detail.ends_with("eurofxref-hist.csv"), "{}", e.source_detail);
    }

    async fn a_fixed_rate_is_used_when_no_other_source_has_one(w: World) {
        rates(&w, vec![]);
        let policy = &mut w.engine.connections[0].policy;
        policy.fx_sources = vec![RateSource::Erp, RateSource::Fixed];
        policy.fx_max_age = std::time::Duration::from_secs(30 * 86_400);
        policy.fx_fixed = vec![
            FixedRate { from: Currency::USD, to: Currency::GBP, rate: d("0.79"), date: date(2026, 11, 1) },
            FixedRate { from: Currency::GBP, to: Currency::EUR, rate: d("1.18"), date: date(2026, 11, 20) },
            FixedRate { from: Currency::USD, to: Currency::GBP, rate: d("0.50"), date: date(2026, 12, 1) },
        ];
        let usd = postage(&w, 8331, 1275, Currency::USD).await;
        let eur = postage(&w, 8332, 1000, Currency::EUR).await;
        assert_eq!(convert(&w).await.converted, 2);
        let u = conversion(&w, &usd).await.unwrap().conversion;
        // 12.75 × 0.79 = 10.0725 → 10.07; the December rate is after the ship date.
        assert_eq!((u.source, u.base.minor(), u.rate_date), (RateSource::Fixed, half_even(1275, 79, 100), date(2026, 11, 1)));
        let e = conversion(&w, &eur).await.unwrap().conversion;
        // 1 GBP = 1.18 EUR, used the other way round without inverting: 10.00 ÷ 1.18.
        assert_eq!((e.rate_from, e.rate_to, e.base.minor()), (d("1.18"), Decimal::ONE, half_even(1000, 100, 118)));
    }

    async fn a_missing_rate_opens_one_finance_exception_and_adding_it_converts_the_entries_once_and_closes_it(w: World) {
        rates(&w, vec![(Currency::EUR, date(2026, 11, 27), "1.17")]);
        let a = postage(&w, 8341, 640, Currency::USD).await;
        let b = postage(&w, 8342, 410, Currency::USD).await;
        let eur = postage(&w, 8343, 500, Currency::EUR).await;
        for _ in 0..2 {
            let report = convert(&w).await;
            assert_eq!(report.missing, vec!["USD/GBP 2026-11-27".to_string()]);
        }
        assert!(conversion(&w, &eur).await.is_some(), "the EUR entry does not wait for the USD rate");
        assert_eq!((conversion(&w, &a).await, conversion(&w, &b).await), (None, None), "both USD entries wait");
        let open = fx_exceptions(&w).await;
        assert_eq!(open.len(), 1, "one exception per pair and date: {open:#?}");
        let x = &open[0];
        assert_eq!((x.owner, x.state, x.record_type.as_str(), x.record_id.as_str()), (Owner::Finance, ExceptionState::Open, "fx_rate", "USD/GBP 2026-11-27"));
        let message = x.detail["message"].as_str().unwrap();
        assert!(message.contains("USD→GBP") && message.contains("2026-11-27") && message.contains("2 cost entries"), "{message}");
        assert!(message.contains("erp: fake has no USD or GBP rate") && message.contains("fx_fixed"), "{message}");

        rates(&w, vec![(Currency::EUR, date(2026, 11, 27), "1.17"), (Currency::USD, date(2026, 11, 26), "1.25")]);
        let report = convert(&w).await;
        assert_eq!((report.converted, report.waiting), (2, 0));
        assert_eq!(conversion(&w, &a).await.unwrap().conversion.base.minor(), 512, "6.40 USD ÷ 1.25");
        assert_eq!(conversion(&w, &b).await.unwrap().conversion.base.minor(), 328, "4.10 USD ÷ 1.25");
        let all = fx_exceptions(&w).await;
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].state, ExceptionState::Closed, "it closed by itself");
        assert_eq!(convert(&w).await.converted, 0);
        let listed = w.store.list_cost_conversions(CostEntryFilter { connection: Some("acme-uk".into()), ..Default::default() }).await.unwrap();
        assert_eq!(listed.len(), 3, "each entry converted once");
    }

    async fn a_missing_rate_exception_nothing_waits_for_any_more_closes_at_the_next_pass(w: World) {
        // Raised for a date no entry waits for now: a pass that lost a race, or a
        // policy since changed from the ship date to the posting date.
        let mut late = Change::new("acme-uk", jiff::Timestamp::now());
        late.raise(ExceptionKind::FxRateMissing, "fx_rate", "USD/GBP 2026-11-20", serde_json::json!({"message": "no usable USD→GBP rate"}));
        w.store.commit(late).await.unwrap();
        rates(&w, vec![(Currency::EUR, date(2026, 11, 27), "1.17")]);
        postage(&w, 8361, 640, Currency::USD).await;
        let report = convert(&w).await;
        assert_eq!(report.missing, vec!["USD/GBP 2026-11-27".to_string()]);
        let open: Vec<String> = fx_exceptions(&w).await.into_iter().filter(|x| x.state == ExceptionState::Open).map(|x| x.record_id).collect();
        assert_eq!(open, vec!["USD/GBP 2026-11-27".to_string()], "the stale one closed, the real one stays");
    }

    async fn the_scheduled_pass_converts_what_the_tick_finds(w: World) {
        let usd = postage(&w, 8351, 1000, Currency::USD).await;
        w.engine.tick().await.unwrap();
        let c = conversion(&w, &usd).await.expect("the tick's fx pass converted it");
        assert_eq!((c.conversion.base.minor(), c.conversion.source), (800, RateSource::Erp));
    }

    async fn two_converters_racing_record_one_conversion_per_entry(w: World) {
        rates(&w, vec![(Currency::USD, date(2026, 11, 26), "1.25")]);
        let mut keys = Vec::new();
        for i in 0..30 {
            keys.push(postage(&w, 8400 + i, 100 + i, Currency::USD).await);
        }
        let other = w.another_engine(Arc::new(SystemClock)).await;
        let (a, b) = tokio::join!(fx::convert(&w.engine, &w.engine.connections[0]), fx::convert(&other, &other.connections[0]));
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_eq!(a.converted + b.converted, 30, "{a:?} {b:?}");
        let listed = w.store.list_cost_conversions(CostEntryFilter { connection: Some("acme-uk".into()), ..Default::default() }).await.unwrap();
        assert_eq!(listed.len(), 30);
        for key in &keys {
            let shipment = key.split('/').next().unwrap();
            let events = w.store.timeline("acme-uk", "shipment", shipment).await.unwrap();
            assert_eq!(events.iter().filter(|e| e.kind == EventKind::CostConverted).count(), 1, "{key}");
        }
    }
}
