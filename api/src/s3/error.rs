//! S3's errors: a status and a code in S3's XML, which S3 clients read
//! (`NoSuchKey`, `SignatureDoesNotMatch`, …). Failures of the node's own
//! operations arrive as the HTTP frontends' [`ApiError`] and are mapped
//! here to the S3 code a client expects.

use http::{header, Response, StatusCode};

use super::xml::Xml;
use crate::http::{ApiError, ErrorKind, ResBody};

#[derive(Debug)]
pub struct S3Error {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl S3Error {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> S3Error {
        S3Error { status, code, message: message.into() }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> S3Error {
        S3Error::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn access_denied(message: impl Into<String>) -> S3Error {
        S3Error::new(StatusCode::FORBIDDEN, "AccessDenied", message)
    }

    pub fn signature() -> S3Error {
        S3Error::new(
            StatusCode::FORBIDDEN,
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided",
        )
    }

    pub fn no_such_key(key: &str) -> S3Error {
        S3Error::new(StatusCode::NOT_FOUND, "NoSuchKey", format!("no key {key:?}"))
    }

    pub fn no_such_bucket(bucket: &str) -> S3Error {
        S3Error::new(StatusCode::NOT_FOUND, "NoSuchBucket", format!("no bucket {bucket:?}"))
    }

    pub fn not_implemented(what: &str) -> S3Error {
        S3Error::new(
            StatusCode::NOT_IMPLEMENTED,
            "NotImplemented",
            format!("{what} is not supported"),
        )
    }

    pub fn into_response(self, resource: &str) -> Response<ResBody> {
        let mut xml = Xml::document();
        xml.open("Error");
        xml.text("Code", self.code);
        xml.text("Message", &self.message);
        xml.text("Resource", resource);
        xml.close("Error");
        Response::builder()
            .status(self.status)
            .header(header::CONTENT_TYPE, "application/xml")
            .body(ResBody::bytes(xml.finish()))
            .expect("valid")
    }
}

impl From<ApiError> for S3Error {
    fn from(error: ApiError) -> S3Error {
        use ErrorKind::*;
        let code = match error.kind {
            NotFound => "NoSuchKey",
            Unauthorized => "AccessDenied",
            AccessDenied => "AccessDenied",
            DigestMismatch | BadDigest => "BadDigest",
            TooLarge => "EntityTooLarge",
            Timeout => "RequestTimeout",
            BodyIncomplete => "IncompleteBody",
            UnknownClass => "InvalidStorageClass",
            RangeNotSatisfiable => "InvalidRange",
            HeadersTooLong => "MetadataTooLarge",
            BadName | BadLength => "InvalidArgument",
            DiskFull => "InsufficientStorage",
            kind if kind.status() == StatusCode::SERVICE_UNAVAILABLE => "ServiceUnavailable",
            kind if kind.status().is_client_error() => "InvalidRequest",
            _ => "InternalError",
        };
        S3Error { status: error.kind.status(), code, message: error.message }
    }
}

impl From<cairn_node::NodeError> for S3Error {
    fn from(error: cairn_node::NodeError) -> S3Error {
        ApiError::from(error).into()
    }
}

impl From<http::Error> for S3Error {
    fn from(error: http::Error) -> S3Error {
        ApiError::from(error).into()
    }
}
