//! The one place where failures become HTTP statuses and JSON bodies:
//! every error a client of the HTTP frontends can see is an [`ErrorKind`],
//! which alone decides the status and the stable `error` code (listed in
//! the README).

use std::io;

use cairn_cluster::ControlError;
use cairn_engine::{MetaError, NameError};
use cairn_node::NodeError;
use cairn_raft::Refusal;
use http::{header, Response, StatusCode};

use super::body::ResBody;

/// What went wrong, as a client of the HTTP frontends sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request body is not what the endpoint takes.
    BadBody,
    /// A class definition is invalid.
    BadClass,
    /// Content-Length is not a number.
    BadContentLength,
    /// Content-Type is not a short ASCII value.
    BadContentType,
    /// A WebDAV Depth header this method does not take.
    BadDepth,
    /// A header a PUT keeps is not printable ASCII.
    BadHeader,
    /// A WebDAV Destination that is missing or not a URL.
    BadDestination,
    /// X-Content-Sha256 is not 64 hex digits.
    BadDigest,
    /// A WebDAV If header that does not parse.
    BadIf,
    /// A request body that is not the JSON expected.
    BadJson,
    /// A listing limit outside 1..1000.
    BadLimit,
    /// A LOCK request that cannot be granted as asked.
    BadLock,
    /// A Lock-Token header that does not parse.
    BadLockToken,
    /// A domain, key or path that is not allowed.
    BadName,
    /// A node id that is not 16 hex digits.
    BadNodeId,
    /// A WebDAV Overwrite header other than T or F.
    BadOverwrite,
    /// A node state other than alive, drain, readonly.
    BadState,
    /// A WebDAV body that is not well-formed, safe XML.
    BadXml,
    /// The request body broke off.
    BodyIncomplete,
    /// The body's SHA-256 is not the one announced.
    DigestMismatch,
    /// No such class for this domain.
    UnknownClass,
    /// A WebDAV request that is never allowed (infinite depth, a protected property).
    Forbidden,
    /// No credentials, or credentials that are not a valid access key.
    Unauthorized,
    /// A valid access key without the permission the request needs.
    AccessDenied,
    /// No such access key.
    UnknownAccessKey,
    /// No such key, domain, class, member or endpoint.
    NotFound,
    /// The method does not apply to this path.
    MethodNotAllowed,
    /// MKCOL where something exists already.
    Exists,
    /// The body stopped arriving for --body-timeout-ms.
    Timeout,
    /// A WebDAV parent collection is missing.
    Conflict,
    /// A domain that still has keys cannot be removed.
    DomainNotEmpty,
    /// The key changed while the request ran.
    Changed,
    /// COPY or MOVE with Overwrite: F onto an existing resource.
    ExistsNoOverwrite,
    /// A WebDAV If header's condition is false.
    PreconditionFailed,
    /// A body larger than --max-object-size (or 1 MiB for WebDAV XML).
    TooLarge,
    /// MKCOL with a body.
    UnsupportedBody,
    /// A Range outside the blob.
    RangeNotSatisfiable,
    /// A disk operation failed.
    Io,
    /// The metadata database failed.
    Metadata,
    /// A response could not be built.
    Internal,
    /// This node's copy failed its checksum (and no other holder could serve).
    CorruptCopy,
    /// No holder of the key could be reached.
    NoHolderReachable,
    /// A WebDAV Destination on another server.
    ForeignDestination,
    /// Too many commits waiting.
    Busy,
    /// This node holds no intact copy of the blob.
    NoIntactCopy,
    /// Every holder of the key is down or dead.
    NoHolder,
    /// None of the key's homes confirmed a deletion (it may still take effect: retry).
    NoHome,
    /// None of the key's homes could be asked where it is (never a 404).
    HomesUnreachable,
    /// Too many members did not answer for a listing to hold every key.
    MembersUnreachable,
    /// A shard of this node stopped.
    ShardGone,
    /// No cluster leader is known (admin changes).
    NoLeader,
    /// The leader cannot reach a majority (admin changes).
    NoQuorum,
    /// The leader cannot be reached (admin changes).
    LeaderUnreachable,
    /// Raft refused or failed the change.
    Raft,
    /// No space left on this node's disk.
    DiskFull,
    /// A proxy found no store to take a write.
    NoStore,
    /// Every copy of the key was found damaged or missing.
    Lost,
    /// The store a proxy sent a write to failed without a usable answer.
    StoreFailed,
    /// Dead properties over 256 or 64 KiB per resource.
    TooManyProps,
    /// A version's kept headers (S3 metadata) are too long.
    HeadersTooLong,
    /// The domain exists already.
    DomainExists,
    /// A domain with classes of its own cannot be removed.
    DomainHasClasses,
    /// The default class cannot be removed.
    DefaultClass,
    /// Too many domains or classes.
    TooMany,
    /// No such domain (admin).
    UnknownDomain,
    /// No such class (admin).
    ClassNotFound,
    /// No such member.
    UnknownNode,
    /// A copy count outside what a class may ask.
    BadReplicas,
    /// A name too long or empty.
    BadLength,
}

impl ErrorKind {
    // One arm per kind: a table, not logic.
    #[allow(clippy::too_many_lines)]
    pub fn status(self) -> StatusCode {
        use ErrorKind::*;
        match self {
            BadBody => StatusCode::BAD_REQUEST,
            BadClass => StatusCode::BAD_REQUEST,
            BadContentLength => StatusCode::BAD_REQUEST,
            BadContentType => StatusCode::BAD_REQUEST,
            BadHeader => StatusCode::BAD_REQUEST,
            BadDepth => StatusCode::BAD_REQUEST,
            BadDestination => StatusCode::BAD_REQUEST,
            BadDigest => StatusCode::BAD_REQUEST,
            BadIf => StatusCode::BAD_REQUEST,
            BadJson => StatusCode::BAD_REQUEST,
            BadLimit => StatusCode::BAD_REQUEST,
            BadLock => StatusCode::BAD_REQUEST,
            BadLockToken => StatusCode::BAD_REQUEST,
            BadName => StatusCode::BAD_REQUEST,
            BadNodeId => StatusCode::BAD_REQUEST,
            BadOverwrite => StatusCode::BAD_REQUEST,
            BadState => StatusCode::BAD_REQUEST,
            BadXml => StatusCode::BAD_REQUEST,
            BodyIncomplete => StatusCode::BAD_REQUEST,
            DigestMismatch => StatusCode::BAD_REQUEST,
            UnknownClass => StatusCode::BAD_REQUEST,
            Forbidden => StatusCode::FORBIDDEN,
            Unauthorized => StatusCode::UNAUTHORIZED,
            AccessDenied => StatusCode::FORBIDDEN,
            UnknownAccessKey => StatusCode::NOT_FOUND,
            NotFound => StatusCode::NOT_FOUND,
            MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Exists => StatusCode::METHOD_NOT_ALLOWED,
            Timeout => StatusCode::REQUEST_TIMEOUT,
            Conflict => StatusCode::CONFLICT,
            DomainNotEmpty => StatusCode::CONFLICT,
            Changed => StatusCode::PRECONDITION_FAILED,
            ExistsNoOverwrite => StatusCode::PRECONDITION_FAILED,
            PreconditionFailed => StatusCode::PRECONDITION_FAILED,
            TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            UnsupportedBody => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            RangeNotSatisfiable => StatusCode::RANGE_NOT_SATISFIABLE,
            Io => StatusCode::INTERNAL_SERVER_ERROR,
            Metadata => StatusCode::INTERNAL_SERVER_ERROR,
            Internal => StatusCode::INTERNAL_SERVER_ERROR,
            CorruptCopy => StatusCode::BAD_GATEWAY,
            NoHolderReachable => StatusCode::BAD_GATEWAY,
            ForeignDestination => StatusCode::BAD_GATEWAY,
            Busy => StatusCode::SERVICE_UNAVAILABLE,
            NoIntactCopy => StatusCode::SERVICE_UNAVAILABLE,
            NoHolder => StatusCode::SERVICE_UNAVAILABLE,
            NoHome => StatusCode::SERVICE_UNAVAILABLE,
            HomesUnreachable => StatusCode::SERVICE_UNAVAILABLE,
            MembersUnreachable => StatusCode::SERVICE_UNAVAILABLE,
            ShardGone => StatusCode::SERVICE_UNAVAILABLE,
            NoLeader => StatusCode::SERVICE_UNAVAILABLE,
            NoQuorum => StatusCode::SERVICE_UNAVAILABLE,
            LeaderUnreachable => StatusCode::SERVICE_UNAVAILABLE,
            Raft => StatusCode::SERVICE_UNAVAILABLE,
            DiskFull => StatusCode::INSUFFICIENT_STORAGE,
            NoStore => StatusCode::SERVICE_UNAVAILABLE,
            Lost => StatusCode::SERVICE_UNAVAILABLE,
            StoreFailed => StatusCode::BAD_GATEWAY,
            TooManyProps => StatusCode::INSUFFICIENT_STORAGE,
            HeadersTooLong => StatusCode::BAD_REQUEST,
            DomainExists => StatusCode::CONFLICT,
            DomainHasClasses => StatusCode::CONFLICT,
            DefaultClass => StatusCode::CONFLICT,
            TooMany => StatusCode::CONFLICT,
            UnknownDomain => StatusCode::NOT_FOUND,
            ClassNotFound => StatusCode::NOT_FOUND,
            UnknownNode => StatusCode::NOT_FOUND,
            BadReplicas => StatusCode::BAD_REQUEST,
            BadLength => StatusCode::BAD_REQUEST,
        }
    }

    /// The stable, machine-readable name of the error.
    #[allow(clippy::too_many_lines)]
    pub fn code(self) -> &'static str {
        use ErrorKind::*;
        match self {
            BadBody => "bad_body",
            BadClass => "bad_class",
            BadContentLength => "bad_content_length",
            BadContentType => "bad_content_type",
            BadHeader => "bad_header",
            BadDepth => "bad_depth",
            BadDestination => "bad_destination",
            BadDigest => "bad_digest",
            BadIf => "bad_if",
            BadJson => "bad_json",
            BadLimit => "bad_limit",
            BadLock => "bad_lock",
            BadLockToken => "bad_lock_token",
            BadName => "bad_name",
            BadNodeId => "bad_node_id",
            BadOverwrite => "bad_overwrite",
            BadState => "bad_state",
            BadXml => "bad_xml",
            BodyIncomplete => "body_incomplete",
            DigestMismatch => "digest_mismatch",
            UnknownClass => "unknown_class",
            Forbidden => "forbidden",
            Unauthorized => "unauthorized",
            AccessDenied => "access_denied",
            UnknownAccessKey => "unknown_access_key",
            NotFound => "not_found",
            MethodNotAllowed => "method_not_allowed",
            Exists => "exists",
            Timeout => "timeout",
            Conflict => "conflict",
            DomainNotEmpty => "domain_not_empty",
            Changed => "changed",
            ExistsNoOverwrite => "exists",
            PreconditionFailed => "precondition_failed",
            TooLarge => "too_large",
            UnsupportedBody => "unsupported_body",
            RangeNotSatisfiable => "range_not_satisfiable",
            Io => "io",
            Metadata => "metadata",
            Internal => "internal",
            CorruptCopy => "corrupt_copy",
            NoHolderReachable => "no_holder_reachable",
            ForeignDestination => "foreign_destination",
            Busy => "busy",
            NoIntactCopy => "no_intact_copy",
            NoHolder => "no_holder",
            NoHome => "no_home",
            HomesUnreachable => "homes_unreachable",
            MembersUnreachable => "members_unreachable",
            ShardGone => "shard_gone",
            NoLeader => "no_leader",
            NoQuorum => "no_quorum",
            LeaderUnreachable => "leader_unreachable",
            Raft => "raft",
            DiskFull => "disk_full",
            NoStore => "no_store",
            Lost => "lost",
            StoreFailed => "store_failed",
            TooManyProps => "too_many_props",
            HeadersTooLong => "headers_too_long",
            DomainExists => "domain_exists",
            DomainHasClasses => "domain_has_classes",
            DefaultClass => "default_class",
            TooMany => "too_many",
            UnknownDomain => "unknown_domain",
            ClassNotFound => "unknown_class",
            UnknownNode => "unknown_node",
            BadReplicas => "bad_replicas",
            BadLength => "bad_length",
        }
    }
}

#[derive(Debug)]
pub struct ApiError {
    pub kind: ErrorKind,
    pub message: String,
}

impl ApiError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> ApiError {
        ApiError { kind, message: message.into() }
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorKind::NotFound, message)
    }

    pub fn method_not_allowed() -> ApiError {
        ApiError::new(ErrorKind::MethodNotAllowed, "method not allowed here")
    }

    pub fn status(&self) -> StatusCode {
        self.kind.status()
    }

    pub fn into_response(self) -> Response<ResBody> {
        let status = self.kind.status();
        // 502s are logged where they arise (a corrupt copy) or are the
        // client's doing (a WebDAV Destination on another server).
        if status.is_server_error() && status != StatusCode::BAD_GATEWAY {
            tracing::error!(%status, code = self.kind.code(), message = %self.message);
        }
        let body = serde_json::json!({ "error": self.kind.code(), "message": self.message });
        let mut response =
            Response::builder().status(status).header(header::CONTENT_TYPE, "application/json");
        if self.kind == ErrorKind::Unauthorized {
            // Basic first: the WebDAV clients that know only it stop at it.
            response = response.header(header::WWW_AUTHENTICATE, r#"Basic realm="cairn""#);
            response = response.header(header::WWW_AUTHENTICATE, r#"Bearer realm="cairn""#);
        }
        response.body(ResBody::json(&body)).expect("static headers are valid")
    }
}

impl From<NameError> for ApiError {
    fn from(error: NameError) -> ApiError {
        ApiError::new(ErrorKind::BadName, error.to_string())
    }
}

impl From<io::Error> for ApiError {
    fn from(error: io::Error) -> ApiError {
        // glommio's errors keep the kind, not always the errno.
        let full = matches!(error.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
            || matches!(error.kind(), io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded);
        match full {
            true => ApiError::new(ErrorKind::DiskFull, "no space left on this node's disk"),
            false => ApiError::new(ErrorKind::Io, error.to_string()),
        }
    }
}

impl From<MetaError> for ApiError {
    fn from(error: MetaError) -> ApiError {
        match error {
            MetaError::Busy => {
                ApiError::new(ErrorKind::Busy, "too many commits waiting; retry later")
            }
            other if other.to_string().contains("No space left on device") => {
                ApiError::new(ErrorKind::DiskFull, other.to_string())
            }
            other => ApiError::new(ErrorKind::Metadata, other.to_string()),
        }
    }
}

impl From<http::Error> for ApiError {
    fn from(error: http::Error) -> ApiError {
        ApiError::new(ErrorKind::Internal, error.to_string())
    }
}

impl From<NodeError> for ApiError {
    fn from(error: NodeError) -> ApiError {
        let message = error.to_string();
        let kind = match error {
            NodeError::Meta(error) => return error.into(),
            NodeError::Io(error) => return error.into(),
            NodeError::NotFound | NodeError::NotHere { .. } | NodeError::Unknown { .. } => {
                ErrorKind::NotFound
            }
            NodeError::Refused(_) => ErrorKind::NotFound,
            NodeError::ShardGone(_) => ErrorKind::ShardGone,
            NodeError::Changed => ErrorKind::Changed,
            NodeError::Full(_) => ErrorKind::TooManyProps,
            NodeError::HeadersTooLong { .. } => ErrorKind::HeadersTooLong,
            NodeError::UnknownClass(_) => ErrorKind::UnknownClass,
            NodeError::DigestMismatch(_) => ErrorKind::DigestMismatch,
            NodeError::TooLarge { .. } => ErrorKind::TooLarge,
            NodeError::BodyStalled { .. } => ErrorKind::Timeout,
            NodeError::BodyFailed(_) => ErrorKind::BodyIncomplete,
            NodeError::Corrupt(_) => ErrorKind::CorruptCopy,
            NodeError::NoIntactCopy(_) => ErrorKind::NoIntactCopy,
            NodeError::NoHolder(_) => ErrorKind::NoHolder,
            NodeError::NoHolderReachable { .. } => ErrorKind::NoHolderReachable,
            NodeError::NoHome => ErrorKind::NoHome,
            NodeError::HomesUnreachable => ErrorKind::HomesUnreachable,
            NodeError::MembersUnreachable(_) => ErrorKind::MembersUnreachable,
            NodeError::CopyFailed(_) => ErrorKind::NoHolderReachable,
            NodeError::NotAStore => ErrorKind::Forbidden,
            NodeError::Lost { .. } => ErrorKind::Lost,
            NodeError::DiskFull => ErrorKind::DiskFull,
        };
        ApiError::new(kind, message)
    }
}

impl From<ControlError> for ApiError {
    fn from(error: ControlError) -> ApiError {
        let kind = match &error {
            ControlError::NoLeader => ErrorKind::NoLeader,
            ControlError::NoQuorum { .. } => ErrorKind::NoQuorum,
            ControlError::LeaderUnreachable { .. } | ControlError::PeerUnreachable { .. } => {
                ErrorKind::LeaderUnreachable
            }
            ControlError::Stopped | ControlError::Raft(_) => ErrorKind::Raft,
            ControlError::IdInUse { .. } => ErrorKind::Conflict,
            ControlError::Refused(reason) => match reason {
                Refusal::DomainExists { .. } => ErrorKind::DomainExists,
                Refusal::DomainHasClasses { .. } => ErrorKind::DomainHasClasses,
                Refusal::DefaultClass => ErrorKind::DefaultClass,
                Refusal::DomainNotFound { .. } => ErrorKind::UnknownDomain,
                Refusal::ClassNotFound { .. } => ErrorKind::ClassNotFound,
                Refusal::MemberNotFound { .. } => ErrorKind::UnknownNode,
                Refusal::Replicas { .. } => ErrorKind::BadReplicas,
                Refusal::Length { .. } => ErrorKind::BadLength,
                Refusal::TooMany { .. } => ErrorKind::TooMany,
                Refusal::AccessKeyNotFound { .. } => ErrorKind::UnknownAccessKey,
                Refusal::AccessKeyExists { .. } => ErrorKind::Conflict,
            },
        };
        ApiError::new(kind, error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_keeps_its_status() {
        assert_eq!(ErrorKind::NotFound.status(), StatusCode::NOT_FOUND);
        assert_eq!(ErrorKind::Exists.code(), ErrorKind::ExistsNoOverwrite.code());
        assert_eq!(ErrorKind::DiskFull.status(), StatusCode::INSUFFICIENT_STORAGE);
    }
}
