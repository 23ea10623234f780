//! speechgate: a self-hosted, unified text-to-speech HTTP gateway.
//!
//! Layers point downwards only: `http` → `service` → `store`/`auth` → `domain`.

pub mod app;
pub mod audio;
pub mod auth;
pub mod cli;
pub mod config;
pub mod domain;
pub mod facades;
pub mod http;
pub mod metrics;
pub mod providers;
pub mod service;
pub mod store;
pub mod telemetry;
