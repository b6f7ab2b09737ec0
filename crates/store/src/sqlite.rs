//! SQLite (placeholder until the implementation lands).
