//! Thin handlers: extract, call one service function, map to a response.

pub mod admin;
pub mod catalog;
pub mod conversation;
pub mod elevenlabs;
pub mod openai;
pub mod ops;
pub mod playht;
pub mod provider_keys;
pub mod speech;
pub mod usage;
pub mod voices;
pub mod websocket;
