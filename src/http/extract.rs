//! Extractors whose every rejection is an [`ApiError`], with the path of the offending field.

use std::sync::Arc;

use axum::{
    body::Bytes,
    extract::{rejection::BytesRejection, FromRef, FromRequest, FromRequestParts, Request},
    http::{header, request::Parts, StatusCode},
};
use serde::de::DeserializeOwned;

use super::problem::ApiError;
use crate::{
    auth::Principal,
    domain::{ApiKey, FieldError, PathSegment},
};

/// A JSON body. Malformed JSON is a 400 with line and column; a well-formed body of the wrong
/// shape is a 400 `validation_failed` whose `validation` names the field path; a body over the
/// limit is a 413.
pub struct ApiJson<T>(pub T);

/// The largest request body the server accepts, in bytes (`server.max_body_bytes`), and how
/// long a client may take to send it (`server.body_read_timeout_secs`).
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit {
    pub bytes: usize,
    pub read_timeout: std::time::Duration,
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T>
where
    BodyLimit: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let limit = BodyLimit::from_ref(state);
        let content_type = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
        let essence = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        if !(essence == "application/json" || essence.ends_with("+json")) {
            return Err(ApiError::UnsupportedMediaType(format!(
                "expected `Content-Type: application/json`, got {:?}",
                content_type
            )));
        }
        let bytes = tokio::time::timeout(limit.read_timeout, Bytes::from_request(req, state))
            .await
            .map_err(|_| ApiError::BodyTimeout(limit.read_timeout))?
            .map_err(|rejection| body_rejection(rejection, limit))?;
        // The common case first: an object without an escaped NUL read straight into its type.
        // Anything else, or any error, takes the two steps below, which give the exact problem.
        if let Some(value) = read_directly(&bytes) {
            return Ok(ApiJson(value));
        }
        // Two steps, so that syntax and shape errors are told apart reliably: serde_json reports
        // some shape errors (an enum given a number) as syntax errors when deserializing directly.
        let document: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|err| ApiError::MalformedJson(err.to_string()))?;
        // serde would fill a struct from an array by position; every body here is an object.
        if !document.is_object() {
            return Err(ApiError::Validation(vec![FieldError {
                path: Vec::new(),
                message: "the body must be a JSON object".to_owned(),
            }]));
        }
        from_document(document).map(ApiJson)
    }
}

/// `bytes` read straight into `T` when that gives what the two steps of `ApiJson` would: the
/// body is an object (serde fills a struct from an array by position) with no `\u0000` escape
/// (the only way JSON can carry NUL). A duplicate member fails here and is read by the two
/// steps, which keep its last value. Reading through a document first was about 5% of the
/// gateway's CPU per request (BENCHMARKS.md).
fn read_directly<T: DeserializeOwned>(bytes: &[u8]) -> Option<T> {
    let object = bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
    let nul = bytes.windows(6).any(|w| w == b"\\u0000");
    (object && !nul).then(|| serde_json::from_slice(bytes).ok()).flatten()
}

/// A JSON document read into `T`; a member of the wrong shape is a 400 naming its path.
pub fn from_document<T: DeserializeOwned>(document: serde_json::Value) -> Result<T, ApiError> {
    // No text the gateway stores or forwards may hold NUL (PostgreSQL's `text` refuses it).
    if let Some(path) = nul_at(&document, &mut Vec::new()) {
        return Err(ApiError::Validation(vec![FieldError {
            path,
            message: "must not contain the NUL character (\\u0000)".to_owned(),
        }]));
    }
    serde_path_to_error::deserialize(document).map_err(|err| {
        let path = path_segments(err.path());
        ApiError::Validation(vec![FieldError { path, message: err.into_inner().to_string() }])
    })
}

/// The path of the first string or member name in `value` that contains NUL.
fn nul_at(value: &serde_json::Value, path: &mut Vec<PathSegment>) -> Option<Vec<PathSegment>> {
    use serde_json::Value;
    match value {
        Value::String(s) if s.contains('\0') => Some(path.clone()),
        Value::Array(items) => items.iter().enumerate().find_map(|(i, item)| {
            path.push(PathSegment::Index(i));
            let found = nul_at(item, path);
            path.pop();
            found
        }),
        Value::Object(members) => members.iter().find_map(|(name, member)| {
            path.push(PathSegment::Field(name.replace('\0', "\u{FFFD}")));
            let found = if name.contains('\0') { Some(path.clone()) } else { nul_at(member, path) };
            path.pop();
            found
        }),
        _ => None,
    }
}

fn body_rejection(rejection: BytesRejection, limit: BodyLimit) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge(limit.bytes)
    } else {
        ApiError::Http { status: rejection.status(), detail: rejection.body_text() }
    }
}

/// Query parameters; a bad value is a 400 naming the parameter.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or("");
        let deserializer = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(deserializer).map(ApiQuery).map_err(|err| {
            let path = path_segments(err.path());
            ApiError::Validation(vec![FieldError { path, message: err.into_inner().to_string() }])
        })
    }
}

/// The API key making the request. Routes that act "as the caller" take this.
pub struct Caller(pub Arc<ApiKey>);

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        match parts.extensions.get::<Principal>() {
            Some(Principal::Key(key)) => Ok(Caller(key.clone())),
            Some(Principal::Admin) | None => {
                Err(ApiError::Unauthorized("this route needs a gateway API key".to_owned()))
            }
        }
    }
}

fn path_segments(path: &serde_path_to_error::Path) -> Vec<PathSegment> {
    use serde_path_to_error::Segment;
    path.iter()
        .filter_map(|segment| match segment {
            Segment::Seq { index } => Some(PathSegment::Index(*index)),
            Segment::Map { key } => Some(PathSegment::Field(key.clone())),
            Segment::Enum { variant } => Some(PathSegment::Field(variant.clone())),
            Segment::Unknown => None,
        })
        .collect()
}

/// For the members of a PATCH body, with `#[serde(default, deserialize_with = "patch_member")]`:
/// an absent member is `None`, `null` is `Some(None)`, any other value `Some(Some(value))`.
pub fn patch_member<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    <Option<T> as serde::Deserialize>::deserialize(deserializer).map(Some)
}

#[cfg(test)]
mod tests {
    use super::read_directly;

    #[derive(serde::Deserialize, Debug, PartialEq)]
    struct Body {
        text: String,
    }

    #[test]
    fn only_what_the_two_steps_would_read_alike_is_read_directly() {
        assert_eq!(read_directly(b" {\"text\": \"hi\"}"), Some(Body { text: "hi".into() }));
        // Left to the two steps: an array (serde fills structs by position), an escaped NUL,
        // a duplicate member (the two steps keep the last), and anything that does not parse.
        assert_eq!(read_directly::<Body>(b"[\"hi\"]"), None);
        assert_eq!(read_directly::<Body>(b"{\"text\": \"a\\u0000b\"}"), None);
        assert_eq!(read_directly::<Body>(b"{\"text\": \"a\", \"text\": \"b\"}"), None);
        assert_eq!(read_directly::<Body>(b"{\"text\": 1}"), None);
    }
}
