//! The store: shipledger's durable state behind one `Store` trait, with a SQLite
//! (embedded default) and a PostgreSQL (scale) implementation, each with its own
//! migrations. It owns the jobs/outbox table, sync watermarks, the append-only event
//! log and exceptions. It never calls an external system.
//!
//! Nothing lives here yet: the store arrives with the release-gate work (issue 3).
