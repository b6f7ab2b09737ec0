//! The sandbox ERP connector (placeholder until the implementation lands).
