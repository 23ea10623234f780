//! The document's fixed parts. Paths and schemas are added by the router table, route by route
//! (`utoipa_axum::routes!`), so a route cannot exist without its entry.

use utoipa::{
    openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme},
    Modify, OpenApi,
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "speechgate",
        description = "A self-hosted, unified text-to-speech gateway. Errors on the gateway's own routes are `application/problem+json` (RFC 9457); the vendor drop-in routes (`/openai`, `/elevenlabs`, `/playht`, `/playai`) answer errors in their vendor's own shape."
    ),
    modifiers(&SecuritySchemes),
    tags(
        (name = "speech", description = "Synthesis, providers, models and provider voices"),
        (name = "openai", description = "OpenAI's speech API, drop-in under `/openai/v1` (the SDKs' `base_url`); served by any provider"),
        (name = "elevenlabs", description = "ElevenLabs' text to speech, text to dialogue, voices and models, drop-in under `/elevenlabs` (the SDKs' `base_url`); served by any provider"),
        (name = "playht", description = "PlayHT and Play.ai, drop-in under `/playht/api` and `/playai/api` (both vendors shut down at the end of 2025); voices routed per `[facades.playht]`"),
        (name = "voices", description = "The calling key's saved voices; needs the `voices` scope"),
        (name = "usage", description = "The calling key's usage"),
        (name = "admin", description = "Keys and usage across keys; needs the admin token"),
        (name = "operations", description = "Health, readiness, metrics and this document")
    )
)]
pub struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("A gateway key `sg_<id>_<secret>`; on `/admin/v1`, also the admin token"))
                    .build(),
            ),
        );
        components
            .add_security_scheme("xiApiKey", SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("xi-api-key"))));
        components
            .add_security_scheme("xApiKey", SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("x-api-key"))));
        components.add_security_scheme(
            "urlToken",
            SecurityScheme::ApiKey(ApiKey::Query(ApiKeyValue::with_description(
                "token",
                "A signed token from a `websocket-auth` or `sdk-auth` answer, valid for an hour",
            ))),
        );
    }
}
