//! PostgreSQL (placeholder until the implementation lands).
