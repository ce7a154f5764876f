//! Who sent an S3 request, and whether it may do what it asks: SigV4 in
//! the `Authorization` header or in the query (a presigned URL), checked
//! with the cluster's access keys (their id is the AWS access key id,
//! their secret the secret key). A node that asks for no access keys (a
//! lone node on loopback, README "Security") takes any request, signed or
//! not; how its body is framed is still read from the headers.

use std::time::{SystemTime, UNIX_EPOCH};

use cairn_cluster::access;
use cairn_node::Shard;
use http::request::Parts;
use http::StatusCode;

use super::body::ChunkSigner;
use super::error::S3Error;
use super::sigv4::{self, Credential};
use crate::http::auth::Need;
use crate::http::Query;

/// Most a request's clock may differ from the node's (S3's own bound).
pub const SKEW_MAX_S: i64 = 15 * 60;
/// Longest validity a presigned URL may ask for (S3's: 7 days).
pub const PRESIGNED_EXPIRES_MAX_S: i64 = 7 * 24 * 3600;

/// How the request's body is to be taken.
pub enum Payload {
    /// Not signed (`UNSIGNED-PAYLOAD`, a presigned URL, or no header).
    Unsigned,
    /// Its SHA-256 was signed: the bytes must hash to it.
    Sha256(cairn_engine::Digest),
    /// `aws-chunked`: chunk signatures to check (when signed and the node
    /// checks signatures), and whether a trailer follows.
    Chunked { signer: Option<ChunkSigner> },
}

pub struct Caller {
    /// The access key that signed (its id and record), when the node
    /// checks keys.
    pub key: Option<(String, cairn_raft::AccessKey)>,
    pub payload: Payload,
}

/// Checks the request's signature (when the node asks for keys).
pub fn authenticate(shard: &Shard, parts: &Parts, query: &Query) -> Result<Caller, S3Error> {
    let state = shard.cluster_state();
    let required = shard.node.control.auth_required(&state);
    let content_sha256 = header(parts, "x-amz-content-sha256");
    let authorization = header(parts, "authorization");
    let presigned = query.get("X-Amz-Signature").is_some();
    let version_2 = query.has("AWSAccessKeyId")
        || authorization.is_some_and(|a| a.starts_with("AWS ") && !a.starts_with(sigv4::ALGORITHM));
    if required && version_2 {
        return Err(S3Error::access_denied(
            "Signature Version 2 is not supported: sign with SigV4 \
             (boto3: Config(signature_version='s3v4'))",
        ));
    }
    if !required || (authorization.is_none() && !presigned) {
        return Ok(Caller { key: None, payload: payload(content_sha256, None)? });
    }
    let signed = if presigned {
        presigned_request(parts, query)?
    } else {
        let auth = sigv4::parse_authorization(authorization.unwrap_or_default())
            .ok_or_else(|| S3Error::bad_request("AuthorizationHeaderMalformed", "not SigV4"))?;
        let amz_date = header(parts, "x-amz-date")
            .ok_or_else(|| S3Error::access_denied("x-amz-date is missing"))?
            .to_owned();
        Signed {
            credential: auth.credential,
            signed_headers: auth.signed_headers,
            signature: auth.signature,
            amz_date,
            payload_hash: content_sha256.unwrap_or("UNSIGNED-PAYLOAD").to_owned(),
        }
    };
    let request_s = unix_of_amz_date(&signed.amz_date)
        .ok_or_else(|| S3Error::access_denied("X-Amz-Date is not YYYYMMDDTHHMMSSZ"))?;
    if !presigned && (unix_s() - request_s).abs() > SKEW_MAX_S {
        return Err(S3Error::new(
            StatusCode::FORBIDDEN,
            "RequestTimeTooSkewed",
            "the difference between the request time and the server's time is too large",
        ));
    }
    let id = &signed.credential.key_id;
    let unknown =
        || S3Error::new(StatusCode::FORBIDDEN, "InvalidAccessKeyId", format!("no access key {id}"));
    let key = state.access_key(id).ok_or_else(unknown)?;
    let secret = shard.node.control.unseal(id, key).ok_or_else(unknown)?;
    let signing_key = sigv4::signing_key(&secret, &signed.credential);
    let expected = sigv4::signature(&signing_key, &signed.string_to_sign(parts)?);
    if !sigv4::same(&expected, &signed.signature) {
        return Err(S3Error::signature());
    }
    let signer = ChunkSigner {
        key: signing_key,
        amz_date: signed.amz_date.clone(),
        scope: signed.credential.scope(),
        seed: expected,
    };
    let payload =
        if presigned { Payload::Unsigned } else { payload(content_sha256, Some(signer))? };
    Ok(Caller { key: Some((id.clone(), key.clone())), payload })
}

/// Whether `caller` may do what `need` asks.
pub fn authorize(shard: &Shard, caller: &Caller, need: Need) -> Result<(), S3Error> {
    let state = shard.cluster_state();
    if !shard.node.control.auth_required(&state) {
        return Ok(());
    }
    match &caller.key {
        Some((_, key)) if access::allows(key, need) => Ok(()),
        Some((id, _)) => Err(S3Error::access_denied(format!("access key {id} may not do this"))),
        None if matches!(need, Need::Read(bucket) if state.is_public_read(bucket)) => Ok(()),
        None => Err(S3Error::access_denied("this request must be signed with an access key")),
    }
}

struct Signed {
    credential: Credential,
    signed_headers: Vec<String>,
    signature: String,
    amz_date: String,
    payload_hash: String,
}

impl Signed {
    fn string_to_sign(&self, parts: &Parts) -> Result<String, S3Error> {
        let mut headers = Vec::with_capacity(self.signed_headers.len());
        for name in &self.signed_headers {
            let values: Vec<String> = parts
                .headers
                .get_all(name.as_str())
                .iter()
                .map(|v| sigv4::canonical_header_value(&String::from_utf8_lossy(v.as_bytes())))
                .collect();
            if values.is_empty() {
                return Err(S3Error::access_denied(format!("signed header {name} is missing")));
            }
            headers.push((name.clone(), values.join(",")));
        }
        let raw_query = parts.uri.query().unwrap_or("");
        let request = sigv4::canonical_request(
            parts.method.as_str(),
            &sigv4::canonical_uri(parts.uri.path()),
            &sigv4::canonical_query(raw_query, Some("X-Amz-Signature")),
            &headers,
            &self.payload_hash,
        );
        Ok(sigv4::string_to_sign(&self.amz_date, &self.credential.scope(), &request))
    }
}

fn presigned_request(parts: &Parts, query: &Query) -> Result<Signed, S3Error> {
    let field = |name: &str| {
        query.get(name).map(str::to_owned).ok_or_else(|| {
            S3Error::bad_request("AuthorizationQueryParametersError", format!("{name} is missing"))
        })
    };
    if field("X-Amz-Algorithm")? != sigv4::ALGORITHM {
        return Err(S3Error::bad_request("AuthorizationQueryParametersError", "not SigV4"));
    }
    let credential = Credential::parse(&field("X-Amz-Credential")?).ok_or_else(|| {
        S3Error::bad_request("AuthorizationQueryParametersError", "bad credential")
    })?;
    let amz_date = field("X-Amz-Date")?;
    let expires: i64 = field("X-Amz-Expires")?
        .parse()
        .ok()
        .filter(|s| (1..=PRESIGNED_EXPIRES_MAX_S).contains(s))
        .ok_or_else(|| S3Error::bad_request("AuthorizationQueryParametersError", "bad expiry"))?;
    let signed_at = unix_of_amz_date(&amz_date)
        .ok_or_else(|| S3Error::access_denied("X-Amz-Date is not YYYYMMDDTHHMMSSZ"))?;
    let now = unix_s();
    if now > signed_at + expires {
        return Err(S3Error::access_denied("Request has expired"));
    }
    if signed_at > now + SKEW_MAX_S {
        return Err(S3Error::access_denied("Request is not yet valid"));
    }
    let payload_hash = header(parts, "x-amz-content-sha256").unwrap_or("UNSIGNED-PAYLOAD");
    Ok(Signed {
        credential,
        signed_headers: field("X-Amz-SignedHeaders")?.split(';').map(str::to_owned).collect(),
        signature: field("X-Amz-Signature")?,
        amz_date,
        payload_hash: payload_hash.to_owned(),
    })
}

/// The payload mode `x-amz-content-sha256` names.
fn payload(value: Option<&str>, signer: Option<ChunkSigner>) -> Result<Payload, S3Error> {
    Ok(match value {
        None | Some("UNSIGNED-PAYLOAD") => Payload::Unsigned,
        Some("STREAMING-UNSIGNED-PAYLOAD-TRAILER") => Payload::Chunked { signer: None },
        Some(
            "STREAMING-AWS4-HMAC-SHA256-PAYLOAD" | "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER",
        ) => Payload::Chunked { signer },
        Some(hex) => Payload::Sha256(cairn_engine::Digest::from_hex(hex).ok_or_else(|| {
            S3Error::bad_request("InvalidArgument", "x-amz-content-sha256 is not a SHA-256")
        })?),
    })
}

fn header<'p>(parts: &'p Parts, name: &str) -> Option<&'p str> {
    parts.headers.get(name).and_then(|v| v.to_str().ok())
}

fn unix_s() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// `20130524T000000Z` as seconds since the Unix epoch.
pub fn unix_of_amz_date(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    let digits = b.iter().enumerate().all(|(at, c)| at == 8 || at == 15 || c.is_ascii_digit());
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' || !digits {
        return None;
    }
    let rfc3339 = format!(
        "{}-{}-{}T{}:{}:{}Z",
        &text[0..4],
        &text[4..6],
        &text[6..8],
        &text[9..11],
        &text[11..13],
        &text[13..15]
    );
    let time = humantime::parse_rfc3339(&rfc3339).ok()?;
    Some(time.duration_since(UNIX_EPOCH).ok()?.as_secs() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amz_dates_read_as_unix_seconds() {
        assert_eq!(unix_of_amz_date("19700101T000000Z"), Some(0));
        assert_eq!(unix_of_amz_date("20130524T000000Z"), Some(1_369_353_600));
        assert_eq!(unix_of_amz_date("20240229T235959Z"), Some(1_709_251_199));
        assert_eq!(unix_of_amz_date("2024-02-29T23:59"), None);
        assert_eq!(unix_of_amz_date("000\u{e9}000T000000Z"), None, "no panic on non-ASCII");
    }
}
