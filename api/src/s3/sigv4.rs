//! AWS Signature Version 4, as S3 clients sign requests: the canonical
//! request, the string to sign, the signing key derived from the secret,
//! and the chained signatures of `aws-chunked` bodies. Pure functions; the
//! request's parts are handed in by `s3::auth`.

use hmac::{Hmac, Mac};
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use sha2::{Digest, Sha256};

pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// The SHA-256 of no bytes, hex: what an empty chunk hashes to.
pub const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// Everything but the unreserved characters is %-encoded (RFC 3986).
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');
const UNRESERVED_AND_SLASH: &AsciiSet = &UNRESERVED.remove(b'/');

/// `<key id>/<yyyymmdd>/<region>/<service>/aws4_request`, split.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credential {
    pub key_id: String,
    pub date: String,
    pub region: String,
    pub service: String,
}

impl Credential {
    pub fn parse(text: &str) -> Option<Credential> {
        let mut parts = text.split('/');
        let credential = Credential {
            key_id: parts.next()?.to_owned(),
            date: parts.next()?.to_owned(),
            region: parts.next()?.to_owned(),
            service: parts.next()?.to_owned(),
        };
        (parts.next()? == "aws4_request" && parts.next().is_none()).then_some(credential)
    }

    /// The credential scope: `<date>/<region>/<service>/aws4_request`.
    pub fn scope(&self) -> String {
        format!("{}/{}/{}/aws4_request", self.date, self.region, self.service)
    }
}

/// The fields of `Authorization: AWS4-HMAC-SHA256 Credential=…,
/// SignedHeaders=…, Signature=…`.
#[derive(Debug, PartialEq, Eq)]
pub struct HeaderAuth {
    pub credential: Credential,
    pub signed_headers: Vec<String>,
    pub signature: String,
}

pub fn parse_authorization(value: &str) -> Option<HeaderAuth> {
    let rest = value.strip_prefix(ALGORITHM)?.trim_start();
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for field in rest.split(',') {
        let (name, value) = field.trim().split_once('=')?;
        match name {
            "Credential" => credential = Credential::parse(value),
            "SignedHeaders" => signed = Some(value.split(';').map(str::to_owned).collect()),
            "Signature" => signature = Some(value.to_owned()),
            _ => {}
        }
    }
    Some(HeaderAuth { credential: credential?, signed_headers: signed?, signature: signature? })
}

/// The canonical URI: the path decoded, then each byte but unreserved
/// ones and `/` %-encoded once.
pub fn canonical_uri(raw_path: &str) -> String {
    let decoded: Vec<u8> = percent_decode_str(raw_path).collect();
    percent_encoding::percent_encode(&decoded, UNRESERVED_AND_SLASH).to_string()
}

/// The canonical query string: every parameter decoded and re-encoded,
/// sorted by name then value; `skip` (the presigned signature) left out.
pub fn canonical_query(raw_query: &str, skip: Option<&str>) -> String {
    let mut pairs: Vec<(String, String)> = raw_query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (encode(&decode(name)), encode(&decode(value)))
        })
        .filter(|(name, _)| Some(name.as_str()) != skip)
        .collect();
    pairs.sort();
    let joined: Vec<String> = pairs.into_iter().map(|(n, v)| format!("{n}={v}")).collect();
    joined.join("&")
}

fn decode(text: &str) -> String {
    percent_decode_str(text).decode_utf8_lossy().into_owned()
}

pub fn encode(text: &str) -> String {
    utf8_percent_encode(text, UNRESERVED).to_string()
}

/// One signed header's canonical value: trimmed, inner runs of spaces
/// made one.
pub fn canonical_header_value(value: &str) -> String {
    value.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The canonical request, from its parts (headers: lower-case names with
/// canonical values, in `signed` order).
pub fn canonical_request(
    method: &str,
    uri: &str,
    query: &str,
    headers: &[(String, String)],
    payload_hash: &str,
) -> String {
    let mut text = format!("{method}\n{uri}\n{query}\n");
    for (name, value) in headers {
        text.push_str(&format!("{name}:{value}\n"));
    }
    let signed: Vec<&str> = headers.iter().map(|(name, _)| name.as_str()).collect();
    text.push_str(&format!("\n{}\n{payload_hash}", signed.join(";")));
    text
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

pub fn string_to_sign(amz_date: &str, scope: &str, canonical_request: &str) -> String {
    format!("{ALGORITHM}\n{amz_date}\n{scope}\n{}", sha256_hex(canonical_request.as_bytes()))
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

pub fn signing_key(secret: &str, credential: &Credential) -> [u8; 32] {
    let date = hmac(format!("AWS4{secret}").as_bytes(), credential.date.as_bytes());
    let region = hmac(&date, credential.region.as_bytes());
    let service = hmac(&region, credential.service.as_bytes());
    hmac(&service, b"aws4_request")
}

pub fn signature(signing_key: &[u8; 32], string_to_sign: &str) -> String {
    hex::encode(hmac(signing_key, string_to_sign.as_bytes()))
}

/// The string one chunk of a signed `aws-chunked` body signs.
pub fn chunk_string_to_sign(
    amz_date: &str,
    scope: &str,
    previous_signature: &str,
    chunk_sha256_hex: &str,
) -> String {
    format!(
        "{ALGORITHM}-PAYLOAD\n{amz_date}\n{scope}\n{previous_signature}\n{EMPTY_SHA256}\n{chunk_sha256_hex}"
    )
}

/// The string the trailer of a signed `aws-chunked` body signs.
pub fn trailer_string_to_sign(
    amz_date: &str,
    scope: &str,
    previous_signature: &str,
    trailer: &[u8],
) -> String {
    format!(
        "{ALGORITHM}-TRAILER\n{amz_date}\n{scope}\n{previous_signature}\n{}",
        sha256_hex(trailer)
    )
}

/// Compares without an early exit.
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// AWS's published example: GET /test.txt with a Range header
    /// (S3 docs, "Signature Calculations for the Authorization Header").
    #[test]
    fn the_documented_get_example_signs_as_aws_does() {
        let credential =
            Credential::parse("AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request")
                .expect("a credential");
        let headers = vec![
            ("host".to_owned(), "examplebucket.s3.amazonaws.com".to_owned()),
            ("range".to_owned(), "bytes=0-9".to_owned()),
            ("x-amz-content-sha256".to_owned(), EMPTY_SHA256.to_owned()),
            ("x-amz-date".to_owned(), "20130524T000000Z".to_owned()),
        ];
        let request = canonical_request("GET", "/test.txt", "", &headers, EMPTY_SHA256);
        let to_sign = string_to_sign("20130524T000000Z", &credential.scope(), &request);
        let key = signing_key("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", &credential);
        assert_eq!(
            signature(&key, &to_sign),
            "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        );
    }

    /// AWS's published example of a signed chunked upload's seed and first
    /// chunk signature (64 KiB of 'a').
    #[test]
    fn the_documented_chunk_signature_chains_from_the_seed() {
        let credential =
            Credential::parse("AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request")
                .expect("a credential");
        let key = signing_key("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", &credential);
        let seed = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9";
        let chunk = vec![b'a'; 65536];
        let to_sign = chunk_string_to_sign(
            "20130524T000000Z",
            &credential.scope(),
            seed,
            &sha256_hex(&chunk),
        );
        assert_eq!(
            signature(&key, &to_sign),
            "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648"
        );
    }

    #[test]
    fn authorization_headers_parse_and_bad_ones_do_not() {
        let value = "AWS4-HMAC-SHA256 Credential=CK1/20240101/us-east-1/s3/aws4_request, \
                     SignedHeaders=host;x-amz-date, Signature=abcd";
        let auth = parse_authorization(value).expect("parses");
        assert_eq!(auth.credential.key_id, "CK1");
        assert_eq!(auth.signed_headers, ["host", "x-amz-date"]);
        assert_eq!(auth.signature, "abcd");
        assert!(parse_authorization("AWS4-HMAC-SHA256 Credential=CK1/x").is_none());
        assert!(parse_authorization("Bearer x").is_none());
    }

    #[test]
    fn queries_and_paths_are_canonical() {
        assert_eq!(
            canonical_query("b=2&a=1&a=0&list-type=2&prefix=", None),
            "a=0&a=1&b=2&list-type=2&prefix="
        );
        assert_eq!(
            canonical_query("X-Amz-Signature=s&x=a%2Fb", Some("X-Amz-Signature")),
            "x=a%2Fb"
        );
        assert_eq!(canonical_uri("/b/a%20b/c~d"), "/b/a%20b/c~d");
        assert_eq!(canonical_uri("/b/a+b(1)"), "/b/a%2Bb%281%29");
    }
}
