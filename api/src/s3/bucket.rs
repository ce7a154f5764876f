//! Buckets: ListBuckets, CreateBucket, HeadBucket, DeleteBucket (empty
//! only), GetBucketLocation, GetBucketVersioning, and the listings
//! (`list`) and batch deletes (`object`) addressed to a bucket.

use std::rc::Rc;

use cairn_cluster::ControlError;
use cairn_node::Shard;
use cairn_raft::{Command, Refusal};
use http::request::Parts;
use http::{Method, Response, StatusCode};

use super::auth::{authorize, Caller};
use super::error::S3Error;
use super::xml::Xml;
use super::{bucket_exists, empty, xml_response};
use crate::http::auth::Need;
use crate::http::{ApiError, Query, RequestBody, ResBody};

pub async fn handle(
    shard: &Rc<Shard>,
    parts: &Parts,
    query: &Query,
    caller: &Caller,
    bucket: &str,
    body: &mut RequestBody,
) -> Result<Response<ResBody>, S3Error> {
    match parts.method {
        Method::PUT if parts.uri.query().is_none_or(str::is_empty) => {
            authorize(shard, caller, Need::Owner(bucket))?;
            create(shard, bucket).await
        }
        Method::DELETE if parts.uri.query().is_none_or(str::is_empty) => {
            authorize(shard, caller, Need::Owner(bucket))?;
            delete(shard, bucket).await
        }
        Method::HEAD => {
            authorize(shard, caller, Need::Read(bucket))?;
            exists(shard, bucket)?;
            Ok(empty(StatusCode::OK))
        }
        Method::GET if query.has("location") => {
            authorize(shard, caller, Need::Read(bucket))?;
            exists(shard, bucket)?;
            let region = &shard.node.config.s3_region;
            // us-east-1 answers an empty constraint, as S3 does.
            let region = if region == "us-east-1" { "" } else { region.as_str() };
            let mut xml = Xml::root("LocationConstraint");
            xml.escaped(region);
            xml.close("LocationConstraint");
            Ok(xml_response(xml))
        }
        Method::GET if query.has("versioning") => {
            authorize(shard, caller, Need::Read(bucket))?;
            exists(shard, bucket)?;
            let mut xml = Xml::root("VersioningConfiguration");
            xml.close("VersioningConfiguration");
            Ok(xml_response(xml))
        }
        Method::GET if query.has("uploads") => {
            authorize(shard, caller, Need::Read(bucket))?;
            exists(shard, bucket)?;
            super::multipart::list_uploads(shard, bucket, query).await
        }
        Method::GET if is_listing(query) => {
            authorize(shard, caller, Need::Read(bucket))?;
            exists(shard, bucket)?;
            super::list::list(shard, bucket, query).await
        }
        Method::POST if query.has("delete") => {
            authorize(shard, caller, Need::Write(bucket))?;
            exists(shard, bucket)?;
            super::object::delete_objects(shard, bucket, body).await
        }
        _ => Err(S3Error::not_implemented("this bucket operation")),
    }
}

/// A GET of a bucket that lists it (v1, v2, or `?versions`).
fn is_listing(query: &Query) -> bool {
    const OTHER: [&str; 8] =
        ["acl", "policy", "cors", "lifecycle", "tagging", "website", "logging", "encryption"];
    !OTHER.iter().any(|name| query.has(name))
}

fn exists(shard: &Shard, bucket: &str) -> Result<(), S3Error> {
    if bucket_exists(shard, bucket)? {
        Ok(())
    } else {
        Err(S3Error::no_such_bucket(bucket))
    }
}

pub fn list_buckets(shard: &Shard, caller: &Caller) -> Result<Response<ResBody>, S3Error> {
    authorize(shard, caller, Need::AnyKey)?;
    let state = shard.cluster_state();
    let mut xml = Xml::root("ListAllMyBucketsResult");
    xml.open("Owner");
    xml.text("ID", "cairn");
    xml.text("DisplayName", "cairn");
    xml.close("Owner");
    xml.open("Buckets");
    for bucket in state.domains() {
        let readable = authorize(shard, caller, Need::Read(bucket)).is_ok();
        if !readable || bucket.starts_with('_') {
            continue;
        }
        xml.open("Bucket");
        xml.text("Name", bucket);
        xml.text("CreationDate", "2026-01-01T00:00:00.000Z");
        xml.close("Bucket");
    }
    xml.close("Buckets");
    xml.close("ListAllMyBucketsResult");
    Ok(xml_response(xml))
}

async fn create(shard: &Shard, bucket: &str) -> Result<Response<ResBody>, S3Error> {
    let command = Command::CreateDomain { name: bucket.to_owned() };
    match shard.node.control.submit(command).await {
        // Made again by its owner: S3 (us-east-1) answers 200 too.
        Ok(_) | Err(ControlError::Refused(Refusal::DomainExists { .. })) => {}
        Err(error) => return Err(ApiError::from(error).into()),
    }
    let mut response = empty(StatusCode::OK);
    let location = format!("/{bucket}").parse().expect("a bucket name is a valid header");
    response.headers_mut().insert(http::header::LOCATION, location);
    Ok(response)
}

async fn delete(shard: &Shard, bucket: &str) -> Result<Response<ResBody>, S3Error> {
    exists(shard, bucket)?;
    let page = cairn_node::listing::key_page(&shard.node, bucket, "", "", 1).await?;
    if !page.keys.is_empty() {
        return Err(S3Error::new(
            StatusCode::CONFLICT,
            "BucketNotEmpty",
            "the bucket you tried to delete is not empty",
        ));
    }
    let command = Command::DeleteDomain { name: bucket.to_owned() };
    match shard.node.control.submit(command).await {
        Ok(_) | Err(ControlError::Refused(Refusal::DomainNotFound { .. })) => {}
        Err(error) => return Err(ApiError::from(error).into()),
    }
    Ok(empty(StatusCode::NO_CONTENT))
}
