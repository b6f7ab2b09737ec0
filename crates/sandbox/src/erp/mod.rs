//! The sandbox ERP: a small, strict ERP on a local port, so shipledger's ERP side can
//! be tested and demonstrated without a real one. It keeps sales orders with payment
//! documents, a product master (some weights missing or zero), stock with
//! reservations, fulfilment documents that move packed → completed, journals that
//! must balance in the base currency, and a dated FX rate table. It refuses what a
//! real ERP refuses — completing a completed fulfilment, an unbalanced journal,
//! fulfilling more than was ordered — with a 409 or 422 and a sentence that says why.
//!
//! Start one with [`SandboxErp::start`] (what `shipledger sandbox erp --listen ...
//! --api-key ...` calls). The rules live in [`model`], the API in `routes`, the
//! control API in `control`, start-up, auth and the state file in `server`.
//!
//! ## API (`Authorization: Bearer <api_key>`, JSON)
//!
//! Errors are `{"error": {"code", "message"}}`: 400 `invalid`, 401 `unauthorized`,
//! 404 `not_found` (or `no_rate`), 409 `conflict`, 422 `unprocessable`, 503
//! `unavailable` (injected faults). Amounts are exact JSON numbers in the order's
//! currency; journal and package amounts are `{"amount":"1.23","currency":"GBP"}`;
//! times are RFC 3339 UTC, dates `YYYY-MM-DD`.
//!
//! | request | answer |
//! | --- | --- |
//! | `GET /api/company` | `{name, base_currency}` |
//! | `GET /api/orders?updated_after_ms=&after_id=&limit=` | `{orders: [...], next: {updated_after_ms, after_id} \| null}`: orders whose `(updated_at_ms, id)` is strictly after the cursor, in that order; `limit` 1–500 (default 100). Every change to an order (payment, cancel, hold, address, line, re-send) moves it to the end |
//! | `GET /api/orders?id=A&id=B` | `{orders: [...], next: null}`: those orders whatever their status (cancelled, on hold), in the order asked; unknown ids absent; at most 500 |
//! | `GET /api/orders/{id}` | one sales order, with `lines`, `payments`, `ship_to`, `bill_to`, `total` |
//! | `GET /api/products?sku=A&sku=B` | `{products: [...]}`: the master entries for those SKUs (unknown ones absent); all products without `sku` |
//! | `POST /api/orders/{id}/fulfilments` `{key, state: packed\|completed\|cancelled, lines: [{line_id, quantity}], packages: [{carrier, service?, tracking_number, ship_date?, cost?}]}` | 201 a new `FUL-…` document, 200 the same document for the same key and state (packed) or after a move forward; 409 completing a completed one, moving one back, or an order cancelled/on hold; 422 quantities beyond the order line, unknown lines |
//! | `GET /api/orders/{id}/fulfilments` | `{fulfilments: [...]}` |
//! | `POST /api/journals` `{key, date, memo, lines: [{account, debit, credit, original?, memo?}]}` | 201 a posted `JNL-…`; 200 the journal already posted with that key; 409 a date in a period that is not open; 422 unbalanced (the totals in the message), a foreign-currency amount, a negative or two-sided line |
//! | `GET /api/journals/{id}` | a journal by id (or by key) |
//! | `GET /api/periods/{date}` | `{date, period, state}`: the accounting period (a month, `2026-11`) holding the date, `open` unless set otherwise |
//! | `GET /api/accounts` | `{accounts, journals}`: the chart's account codes and the journal codes |
//! | `GET /api/fx?from=USD&to=GBP&date=2025-06-28` | `{from, to, rate, rate_from, rate_to, date, source}` (`amount × rate_to ÷ rate_from` converts exactly): the latest rate on or before `date` (weekdays only in the seeded table), inverse or cross through the base currency; 404 `no_rate` when none |
//! | `GET /api/stock/{sku}` | `{sku, on_hand, reserved, available}` |
//! | `POST /api/stock/adjustments` `{key, sku, delta, reason}` | `{adjustment, stock}`: applied once per key; 422 when on hand would go negative |
//!
//! ## Control API (`/_sandbox/`, no auth)
//!
//! | request | effect |
//! | --- | --- |
//! | `POST /_sandbox/orders` [`OrderInput`](model::OrderInput) | create an order (201) or, for a known `id`/`external_ref`, update and re-stamp it (200, `duplicate: true`); answers `{order, created}` |
//! | `POST /_sandbox/orders/bulk` `{orders: [...]}` | several at once, all stamped in the same millisecond |
//! | `POST /_sandbox/orders/{id}/payment` `{state, amount?, method?}` | open a payment document or move the latest one (unpaid → authorised → captured → refunded) |
//! | `POST /_sandbox/orders/{id}/cancel` `{reason?}` | cancel (packed fulfilments are cancelled with it; refused once shipped); the reason is kept as `cancel_reason` |
//! | `POST /_sandbox/orders/{id}/hold` `{reason?}`, `POST /_sandbox/orders/{id}/release` | put on hold / release |
//! | `PUT /_sandbox/orders/{id}/ship-to` (an address) | change the ship-to address |
//! | `PATCH /_sandbox/orders/{id}/lines/{line_id}` [`LinePatch`](model::LinePatch) | change a line (quantity, SKU, price, weight) |
//! | `POST /_sandbox/orders/{id}/touch` | save unchanged: the order shows up in the feed again |
//! | `POST /_sandbox/products` `{products: [{sku, name, weight?, weight_uom?, active?, on_hand?}]}` | add or update products (and their stock) |
//! | `PUT /_sandbox/stock/{sku}` `{on_hand}` | set stock on hand |
//! | `GET /_sandbox/fx`, `POST /_sandbox/fx` `{currency, rate, date}` | the rate table; add a rate (base units per unit) |
//! | `PUT /_sandbox/periods/{YYYY-MM}` `{state: open\|closed\|locked\|missing}` | set a month's period state (a journal dated in a period that is not open is refused, 409) |
//! | `POST /_sandbox/accounts` `{accounts?: [...], journals?: [...]}` | add account and journal codes to the chart |
//! | `GET`/`PUT /_sandbox/faults` `{fail_next, latency_ms}` | answer the next N API requests with 503; hold every API request `latency_ms` before answering (a slow ERP) |
//! | `GET /_sandbox/stats` | orders by status and payment state, fulfilments by state, journals, stock, duplicates, requests, refusals |
//! | `GET /_sandbox/clock`, `POST /_sandbox/clock/advance` `{seconds}` | the virtual clock |
//! | `POST /_sandbox/reset` | an empty company again (rate table re-seeded) |

mod control;
pub mod model;
mod routes;
mod server;

pub use model::{ErpWorld, LineInput, OrderInput, PaymentInput};
pub use server::{SandboxErp, SandboxErpConfig, SandboxErpError, SandboxErpHandle};
