//! API errors and the one place they become HTTP statuses.

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Response, StatusCode, header};
use wire_core::proto::api::{ErrorBody, ErrorCode, ErrorDetail};

/// An error answered to the client as `{"error":{"code","message"}}`.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// Machine-readable code.
    pub code: ErrorCode,
    /// What happened and what to do next.
    pub message: String,
    /// Seconds, for `rate_limited`.
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// An error with `code` and `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), retry_after: None }
    }

    /// 400.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadRequest, message)
    }

    /// 401: no token, or not a token this relay issued.
    pub fn unauthorized() -> Self {
        Self::new(ErrorCode::Unauthorized, "missing or unknown token; send `Authorization: Bearer <token>`")
    }

    /// 403.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Forbidden, message)
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }

    /// 500. The message never carries internal detail.
    pub fn internal() -> Self {
        Self::new(ErrorCode::Internal, "the relay hit an internal error; retry later")
    }

    /// 429 with `Retry-After`.
    pub fn rate_limited(retry_after: u64) -> Self {
        Self {
            retry_after: Some(retry_after.max(1)),
            ..Self::new(ErrorCode::RateLimited, "too many requests; retry after the number of seconds in Retry-After")
        }
    }

    /// The HTTP status for the code (docs/PROTOCOL.md has the same table).
    pub fn status(&self) -> StatusCode {
        status_of(self.code)
    }

    /// The response.
    pub fn into_response(self) -> Response<crate::http::Body> {
        let status = self.status();
        let retry_after = self.retry_after;
        let body = ErrorBody { error: ErrorDetail { code: self.code, message: self.message } };
        let json = serde_json::to_vec(&body).expect("error body serializes");
        let mut response = Response::new(crate::http::Body::Full(Full::new(Bytes::from(json))));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/json"));
        if let Some(secs) = retry_after {
            headers.insert(header::RETRY_AFTER, header::HeaderValue::from(secs));
        }
        response
    }
}

/// HTTP status of each error code.
pub fn status_of(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::BadRequest => StatusCode::BAD_REQUEST,
        ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
        ErrorCode::Forbidden => StatusCode::FORBIDDEN,
        ErrorCode::NotFound => StatusCode::NOT_FOUND,
        ErrorCode::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        ErrorCode::Conflict => StatusCode::CONFLICT,
        ErrorCode::Gone => StatusCode::GONE,
        ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::QuotaExceeded => StatusCode::INSUFFICIENT_STORAGE,
        ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::CursorExpired => StatusCode::RANGE_NOT_SATISFIABLE,
        ErrorCode::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}
