//! ElevenLabs' wire: its query and bodies, where its fields are, and the JSON its SDKs parse,
//! including the per-character alignment the gateway's word times become.

pub mod align;
pub mod wire;
