//! Errors in ShipStation's own shapes.
//!
//! v1 is an ASP.NET Web API: `{"Message": ...}` with `ModelState` for invalid bodies and
//! `ExceptionMessage` for server errors, except the rate limiter's lowercase
//! `{"message":"Too Many Requests"}`. v2 answers `{"request_id", "errors": [...]}`.

use axum::Json;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::state::Refusal;

/// A v1 error response.
#[derive(Debug)]
pub enum V1Error {
    /// 400 with `ModelState`: which field and why.
    Invalid { field: String, message: String },
    /// 400 with a plain message (business rule refusals).
    BadRequest(String),
    NotFound(String),
}

impl IntoResponse for V1Error {
    fn into_response(self) -> Response {
        match self {
            V1Error::Invalid { field, message } => (
                StatusCode::BAD_REQUEST,
                Json(json!({"Message": "The request is invalid.", "ModelState": {field: [message]}})),
            )
                .into_response(),
            V1Error::BadRequest(message) => {
                (StatusCode::BAD_REQUEST, Json(json!({"Message": message}))).into_response()
            }
            V1Error::NotFound(message) => (StatusCode::NOT_FOUND, Json(json!({"Message": message}))).into_response(),
        }
    }
}

impl From<Refusal> for V1Error {
    fn from(r: Refusal) -> Self {
        match r {
            Refusal::NotFound(m) => V1Error::NotFound(m),
            Refusal::Invalid(m) => V1Error::BadRequest(m),
        }
    }
}

pub fn server_error(detail: &str) -> Response {
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        Json(json!({
            "Message": "An error has occurred.",
            "ExceptionMessage": detail,
            "ExceptionType": "System.InvalidOperationException",
            "StackTrace": null
        })),
    )
        .into_response()
}

pub fn unauthorized_v1() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [("www-authenticate", "Basic realm=\"ssapi.shipstation.com\"")],
        Json(json!({"Message": "Authorization has been denied for this request."})),
    )
        .into_response()
}

pub fn too_many_requests_v1() -> Response {
    (StatusCode::TOO_MANY_REQUESTS, Json(json!({"message": "Too Many Requests"}))).into_response()
}

/// A v2 error response.
#[derive(Debug)]
pub struct V2Error {
    pub status: StatusCode,
    pub error_type: &'static str,
    pub code: &'static str,
    pub message: String,
}

impl V2Error {
    pub fn not_found(message: impl Into<String>) -> Self {
        Self { status: StatusCode::NOT_FOUND, error_type: "validation", code: "not_found", message: message.into() }
    }
    pub fn invalid(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            error_type: "validation",
            code: "invalid_field_value",
            message: message.into(),
        }
    }
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self { status: StatusCode::CONFLICT, error_type: "validation", code, message: message.into() }
    }
    pub fn unauthorized() -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            error_type: "security",
            code: "unauthorized",
            message: "The API key is invalid. Please see https://www.shipengine.com/docs/auth".into(),
        }
    }
    pub fn rate_limited() -> Self {
        Self {
            status: StatusCode::TOO_MANY_REQUESTS,
            error_type: "system",
            code: "rate_limit_exceeded",
            message: "You have exceeded the rate limit.".into(),
        }
    }
    pub fn server() -> Self {
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            error_type: "system",
            code: "unspecified",
            message: "An unexpected error occurred.".into(),
        }
    }
}

impl From<Refusal> for V2Error {
    fn from(r: Refusal) -> Self {
        match r {
            Refusal::NotFound(m) => V2Error::not_found(m),
            Refusal::Invalid(m) => V2Error::invalid(m),
        }
    }
}

impl IntoResponse for V2Error {
    fn into_response(self) -> Response {
        let request_id = crate::state::uuid_like(rand::random::<i64>());
        (
            self.status,
            Json(json!({
                "request_id": request_id,
                "errors": [{
                    "error_source": "shipstation",
                    "error_type": self.error_type,
                    "error_code": self.code,
                    "message": self.message,
                }]
            })),
        )
            .into_response()
    }
}

/// Any path ShipStation does not have.
pub async fn unknown_path(uri: Uri) -> Response {
    if uri.path().starts_with("/v2/") {
        return V2Error::not_found(format!("No route matches {}", uri.path())).into_response();
    }
    (
        StatusCode::NOT_FOUND,
        Json(json!({
            "Message": format!("No HTTP resource was found that matches the request URI 'https://ssapi.shipstation.com{uri}'.")
        })),
    )
        .into_response()
}

/// A known path called with the wrong method. A path whose id segment is not a
/// number (`/orders/markshipped`) is no resource at all to ShipStation: 404.
pub async fn method_not_allowed(method: axum::http::Method, uri: Uri) -> Response {
    let segments: Vec<&str> = uri.path().trim_matches('/').split('/').collect();
    if let [collection, id] = segments.as_slice()
        && ["orders", "webhooks", "stores", "warehouses"].contains(collection)
        && !id.chars().all(|c| c.is_ascii_digit())
    {
        // No `allow` header: to ShipStation this is no resource at all.
        return unknown_path(uri).await;
    }
    (
        StatusCode::METHOD_NOT_ALLOWED,
        Json(json!({"Message": format!("The requested resource does not support http method '{method}'.")})),
    )
        .into_response()
}
