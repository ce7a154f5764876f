//! Splits `/v1/...` request paths into what they name. Keys are
//! percent-decoded and must be UTF-8; they are never file paths.

use std::borrow::Cow;

use cairn_engine::{validate_domain, validate_key, PARTS_DOMAIN};
use percent_encoding::percent_decode_str;

use crate::http::ApiError;
use crate::http::ErrorKind;

#[derive(Debug, PartialEq, Eq)]
pub enum Route {
    Status,
    Metrics,
    Cluster,
    /// `/v1/admin/…`: the percent-decoded segments after `admin`.
    Admin {
        segments: Vec<String>,
    },
    Domain {
        domain: String,
    },
    Key {
        domain: String,
        key: String,
    },
    Unknown,
}

pub fn route(path: &str) -> Result<Route, ApiError> {
    if path == "/metrics" {
        return Ok(Route::Metrics);
    }
    let Some(rest) = path.strip_prefix("/v1/") else {
        return Ok(Route::Unknown);
    };
    if rest == "status" {
        return Ok(Route::Status);
    }
    if rest == "cluster" {
        return Ok(Route::Cluster);
    }
    if let Some(admin) = rest.strip_prefix("admin/") {
        let segments = admin
            .split('/')
            .map(|segment| decode(segment).map(Cow::into_owned))
            .collect::<Result<_, _>>()?;
        return Ok(Route::Admin { segments });
    }
    let (domain, key) = match rest.split_once('/') {
        Some((domain, key)) => (domain, Some(key)),
        None => (rest, None),
    };
    let domain = decode(domain)?.into_owned();
    // Only a relayed PUT may name it (`v1::handle` checks the relay).
    if domain != PARTS_DOMAIN {
        validate_domain(&domain)?;
    }
    match key {
        None => Ok(Route::Domain { domain }),
        Some(key) => {
            let key = decode(key)?.into_owned();
            validate_key(&key)?;
            Ok(Route::Key { domain, key })
        }
    }
}

fn decode(text: &str) -> Result<Cow<'_, str>, ApiError> {
    percent_decode_str(text).decode_utf8().map_err(|_| {
        ApiError::new(ErrorKind::BadName, "names must be UTF-8 after percent-decoding")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(domain: &str, key: &str) -> Route {
        Route::Key { domain: domain.into(), key: key.into() }
    }

    #[test]
    fn routes() {
        assert_eq!(route("/v1/status").unwrap(), Route::Status);
        assert_eq!(route("/metrics").unwrap(), Route::Metrics);
        assert_eq!(route("/v1/photos").unwrap(), Route::Domain { domain: "photos".into() });
        assert_eq!(route("/v1/photos/a/b.jpg").unwrap(), key("photos", "a/b.jpg"));
        assert_eq!(route("/v1/photos/a%20b%2Fc").unwrap(), key("photos", "a b/c"));
        assert_eq!(route("/v1/photos/../x").unwrap(), key("photos", "../x"));
        assert_eq!(route("/elsewhere").unwrap(), Route::Unknown);
        assert_eq!(route("/v1/cluster").unwrap(), Route::Cluster);
        assert_eq!(
            route("/v1/admin/classes/tri%70le").unwrap(),
            Route::Admin { segments: vec!["classes".into(), "triple".into()] }
        );
    }

    #[test]
    fn bad_names_are_refused() {
        for path in [
            "/v1/Photos/a",
            "/v1/photos/",
            "/v1/photos/a%00b",
            "/v1/photos/%ff",
            "/v1/status/x",
            "/v1/",
        ] {
            let error = route(path).expect_err(path);
            assert_eq!(error.status(), http::StatusCode::BAD_REQUEST, "{path}");
        }
    }
}
