//! shipstation
