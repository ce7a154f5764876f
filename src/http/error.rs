//! The one place where failures become HTTP statuses and JSON bodies.

use std::io;

use cairn_engine::{MetaError, NameError};
use http::{header, Response, StatusCode};

use super::body::ResBody;
use crate::shard::OpError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    /// A stable, machine-readable name of the error.
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError { status, code, message: message.into() }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn method_not_allowed() -> ApiError {
        ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "method not allowed here",
        )
    }

    pub fn into_response(self) -> Response<ResBody> {
        // 502s are logged where they arise (a corrupt copy) or are the
        // client's doing (a WebDAV Destination on another server).
        if self.status.is_server_error() && self.status != StatusCode::BAD_GATEWAY {
            tracing::error!(status = %self.status, code = self.code, message = %self.message);
        }
        let body = serde_json::json!({ "error": self.code, "message": self.message });
        Response::builder()
            .status(self.status)
            .header(header::CONTENT_TYPE, "application/json")
            .body(ResBody::json(&body))
            .expect("static headers are valid")
    }
}

impl From<NameError> for ApiError {
    fn from(error: NameError) -> ApiError {
        ApiError::bad_request("bad_name", error.to_string())
    }
}

impl From<io::Error> for ApiError {
    fn from(error: io::Error) -> ApiError {
        match error.raw_os_error() {
            Some(libc::ENOSPC) | Some(libc::EDQUOT) => ApiError::new(
                StatusCode::INSUFFICIENT_STORAGE,
                "disk_full",
                "no space left on this node's disk",
            ),
            _ => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "io", error.to_string()),
        }
    }
}

impl From<MetaError> for ApiError {
    fn from(error: MetaError) -> ApiError {
        match error {
            MetaError::Busy => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                "too many commits waiting; retry later",
            ),
            other => {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "metadata", other.to_string())
            }
        }
    }
}

impl From<OpError> for ApiError {
    fn from(error: OpError) -> ApiError {
        match error {
            OpError::NotFound => ApiError::not_found("no such key"),
            OpError::Meta(error) => error.into(),
            OpError::Io(error) => error.into(),
            OpError::Changed => ApiError::new(
                StatusCode::PRECONDITION_FAILED,
                "changed",
                "the key changed while this request ran",
            ),
            OpError::Full(message) => {
                ApiError::new(StatusCode::INSUFFICIENT_STORAGE, "too_many_props", message)
            }
            OpError::ShardGone(_) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "shard_gone", error.to_string())
            }
        }
    }
}
