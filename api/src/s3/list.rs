//! ListObjectsV2, ListObjects (v1) and ListObjectVersions (the current
//! version of each key) over the cluster's listing of the bucket's domain
//! (`cairn_node::listing`): prefix, delimiter with CommonPrefixes,
//! max-keys, continuation-token / start-after / marker, encoding-type=url.

use base64::Engine as _;
use cairn_cluster::{start_after, LIST_LIMIT_MAX};
use cairn_node::listing::key_page;
use cairn_node::read::KeyFacts;
use cairn_node::Shard;
use http::Response;

use super::error::S3Error;
use super::xml::Xml;
use super::xml_response;
use crate::http::key::{tag_of, TagStyle};
use crate::http::{Query, ResBody};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Flavor {
    V1,
    V2,
    Versions,
}

/// One item of a listing page.
enum Item {
    Key { key: String, facts: KeyFacts },
    Prefix(String),
}

/// Where a page ends: after a key, or past every key under a prefix.
enum Marker {
    Key(String),
    Prefix(String),
}

impl Marker {
    fn start(&self) -> String {
        match self {
            Marker::Key(key) => start_after(key),
            // Nothing sorts between a prefix's keys and this (keys are UTF-8).
            Marker::Prefix(prefix) => format!("{prefix}\u{10FFFF}"),
        }
    }

    fn token(&self) -> String {
        let text = match self {
            Marker::Key(key) => format!("k{key}"),
            Marker::Prefix(prefix) => format!("p{prefix}"),
        };
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
    }

    fn from_token(token: &str) -> Option<Marker> {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token).ok()?;
        let text = String::from_utf8(bytes).ok()?;
        match text.split_at_checked(1)? {
            ("k", key) => Some(Marker::Key(key.to_owned())),
            ("p", prefix) => Some(Marker::Prefix(prefix.to_owned())),
            _ => None,
        }
    }

    /// A client's marker (v1 `marker`, v2 `start-after`): a key, or a
    /// common prefix when it is one under `delimiter`.
    fn from_client(marker: &str, prefix: &str, delimiter: Option<&str>) -> Marker {
        match (delimiter, marker.strip_prefix(prefix)) {
            (Some(d), Some(rest))
                if !d.is_empty()
                    && rest.ends_with(d)
                    && rest.find(d) == Some(rest.len() - d.len()) =>
            {
                Marker::Prefix(marker.to_owned())
            }
            _ => Marker::Key(marker.to_owned()),
        }
    }
}

struct Page {
    items: Vec<Item>,
    truncated: bool,
    last: Option<Marker>,
}

pub async fn list(
    shard: &Shard,
    bucket: &str,
    query: &Query,
) -> Result<Response<ResBody>, S3Error> {
    let flavor = if query.has("versions") {
        Flavor::Versions
    } else if query.get("list-type") == Some("2") {
        Flavor::V2
    } else {
        Flavor::V1
    };
    let prefix = query.get("prefix").unwrap_or("");
    let delimiter = query.get("delimiter").filter(|d| !d.is_empty());
    let max_keys = match query.get("max-keys") {
        None => LIST_LIMIT_MAX,
        Some(text) => text
            .parse::<usize>()
            .map_err(|_| S3Error::bad_request("InvalidArgument", "max-keys is not a number"))?
            .min(LIST_LIMIT_MAX),
    };
    let marker_name = if flavor == Flavor::V2 { "start-after" } else { "marker" };
    let client_marker =
        query.get(if flavor == Flavor::Versions { "key-marker" } else { marker_name });
    let token = query.get("continuation-token");
    let from = match (flavor, token) {
        (Flavor::V2, Some(token)) => Some(Marker::from_token(token).ok_or_else(|| {
            S3Error::bad_request("InvalidArgument", "the continuation token is not one of ours")
        })?),
        _ => client_marker.map(|m| Marker::from_client(m, prefix, delimiter)),
    };
    let page = collect(shard, bucket, prefix, delimiter, max_keys, from).await?;
    let asked = Asked { flavor, bucket, prefix, delimiter, max_keys, token, client_marker };
    let url = query.get("encoding-type") == Some("url");
    let encode = |text: &str| if url { super::sigv4::encode(text) } else { text.to_owned() };
    let root = match flavor {
        Flavor::Versions => "ListVersionsResult",
        _ => "ListBucketResult",
    };
    let mut xml = Xml::root(root);
    write_head(&mut xml, &asked, &page, query, &encode);
    for item in &page.items {
        match item {
            Item::Key { key, facts } => write_key(&mut xml, flavor, &encode(key), facts),
            Item::Prefix(prefix) => {
                xml.open("CommonPrefixes");
                xml.text("Prefix", &encode(prefix));
                xml.close("CommonPrefixes");
            }
        }
    }
    xml.close(root);
    Ok(xml_response(xml))
}

/// What a listing asked for.
struct Asked<'q> {
    flavor: Flavor,
    bucket: &'q str,
    prefix: &'q str,
    delimiter: Option<&'q str>,
    max_keys: usize,
    token: Option<&'q str>,
    client_marker: Option<&'q str>,
}

/// The elements before the keys: what was asked, and where to go on.
fn write_head(
    xml: &mut Xml,
    asked: &Asked<'_>,
    page: &Page,
    query: &Query,
    encode: &dyn Fn(&str) -> String,
) {
    xml.text("Name", asked.bucket);
    xml.text("Prefix", &encode(asked.prefix));
    if let Some(delimiter) = asked.delimiter {
        xml.text("Delimiter", &encode(delimiter));
    }
    xml.text("MaxKeys", &asked.max_keys.to_string());
    if query.get("encoding-type") == Some("url") {
        xml.text("EncodingType", "url");
    }
    xml.text("IsTruncated", if page.truncated { "true" } else { "false" });
    match asked.flavor {
        Flavor::V2 => {
            xml.text("KeyCount", &page.items.len().to_string());
            if let Some(token) = asked.token {
                xml.text("ContinuationToken", token);
            }
            if let Some(start_after) = query.get("start-after") {
                xml.text("StartAfter", &encode(start_after));
            }
            if let (true, Some(last)) = (page.truncated, &page.last) {
                xml.text("NextContinuationToken", &last.token());
            }
        }
        Flavor::V1 | Flavor::Versions => {
            let v1 = asked.flavor == Flavor::V1;
            xml.text(
                if v1 { "Marker" } else { "KeyMarker" },
                &encode(asked.client_marker.unwrap_or("")),
            );
            if let (true, Some(Marker::Key(last) | Marker::Prefix(last))) =
                (page.truncated, &page.last)
            {
                xml.text(if v1 { "NextMarker" } else { "NextKeyMarker" }, &encode(last));
            }
        }
    }
}

fn write_key(xml: &mut Xml, flavor: Flavor, key: &str, facts: &KeyFacts) {
    let element = if flavor == Flavor::Versions { "Version" } else { "Contents" };
    xml.open(element);
    xml.text("Key", key);
    if flavor == Flavor::Versions {
        xml.text("VersionId", "null");
        xml.text("IsLatest", "true");
    }
    xml.text("LastModified", &timestamp(facts.version_hlc));
    xml.text("ETag", &tag_of(facts, TagStyle::S3));
    xml.text("Size", &facts.size_bytes.to_string());
    xml.text("StorageClass", "STANDARD");
    xml.close(element);
}

/// Up to `max_keys` keys and common prefixes after `from`.
async fn collect(
    shard: &Shard,
    bucket: &str,
    prefix: &str,
    delimiter: Option<&str>,
    max_keys: usize,
    from: Option<Marker>,
) -> Result<Page, S3Error> {
    let mut start = from.as_ref().map_or_else(|| prefix.to_owned(), Marker::start);
    let mut page = Page { items: Vec::new(), truncated: false, last: None };
    loop {
        let keys = key_page(&shard.node, bucket, prefix, &start, LIST_LIMIT_MAX).await?;
        for (key, record) in keys.keys {
            if let Some(Marker::Prefix(common)) = &page.last {
                if key.starts_with(common.as_str()) {
                    continue;
                }
            }
            let common = delimiter.and_then(|d| {
                let at = key[prefix.len()..].find(d)?;
                Some(key[..prefix.len() + at + d.len()].to_owned())
            });
            if page.items.len() == max_keys {
                // Nothing asked for, nothing to go on from (as S3 answers).
                page.truncated = max_keys > 0;
                return Ok(page);
            }
            match common {
                Some(common) => {
                    page.items.push(Item::Prefix(common.clone()));
                    page.last = Some(Marker::Prefix(common));
                }
                None => {
                    let facts = KeyFacts::of_record(&record);
                    page.items.push(Item::Key { key: key.clone(), facts });
                    page.last = Some(Marker::Key(key));
                }
            }
        }
        let Some(next_after) = keys.next_after else { return Ok(page) };
        start = match &page.last {
            // Jump over the rest of a common prefix's keys.
            Some(last @ Marker::Prefix(_)) => last.start().max(start_after(&next_after)),
            _ => start_after(&next_after),
        };
    }
}

/// S3's timestamps: `2009-10-12T17:50:30.000Z`.
pub fn timestamp(hlc: u64) -> String {
    let millis = (hlc >> 16) % 1000;
    let seconds = crate::http::dates::rfc3339(hlc);
    format!("{}.{millis:03}Z", seconds.trim_end_matches('Z'))
}
