//! Thin handlers: extract, call one service function, map to a response.

pub mod admin;
pub mod ops;
pub mod usage;
pub mod voices;
