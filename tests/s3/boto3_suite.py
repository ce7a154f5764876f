"""boto3 against a cairn node's S3 port (run by tests/s3.rs).

Environment: S3_ENDPOINT, S3_KEY_ID, S3_SECRET, S3_BUCKET; S3_READ_ENDPOINTS
(comma-separated) are other nodes of the same cluster where every write is
read back. Exits non-zero on the first broken expectation.
"""

import hashlib
import io
import os
import sys
import urllib.error
import urllib.request

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import ClientError

MIB = 1024 * 1024


def client(endpoint):
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=os.environ["S3_KEY_ID"],
        aws_secret_access_key=os.environ["S3_SECRET"],
        region_name="us-east-1",
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )


s3 = client(os.environ["S3_ENDPOINT"])
readers = [client(e) for e in os.environ.get("S3_READ_ENDPOINTS", "").split(",") if e]
bucket = os.environ["S3_BUCKET"]


def check(condition, what):
    if not condition:
        print(f"FAILED: {what}", file=sys.stderr)
        sys.exit(1)
    print(f"ok: {what}")


def error_code(call):
    try:
        call()
    except ClientError as error:
        return error.response["Error"]["Code"]
    return None


def read_everywhere(key, body):
    for reader in [s3] + readers:
        got = reader.get_object(Bucket=bucket, Key=key)["Body"].read()
        check(hashlib.sha256(got).digest() == hashlib.sha256(body).digest(), f"{key} reads back")


def objects():
    s3.create_bucket(Bucket=bucket)
    check(bucket in [b["Name"] for b in s3.list_buckets()["Buckets"]], "the bucket is listed")
    s3.head_bucket(Bucket=bucket)
    body = os.urandom(300_000)
    put = s3.put_object(
        Bucket=bucket, Key="photos/a b+c.jpg", Body=body, ContentType="image/jpeg",
        Metadata={"colour": "blue"}, CacheControl="max-age=60",
    )
    check(put["ETag"] == f'"{hashlib.md5(body).hexdigest()}"', "the ETag is the MD5")
    got = s3.get_object(Bucket=bucket, Key="photos/a b+c.jpg")
    check(got["Body"].read() == body, "GET returns the bytes")
    check(got["ContentType"] == "image/jpeg", "the content type is kept")
    check(got["Metadata"] == {"colour": "blue"}, "user metadata is kept")
    check(got["CacheControl"] == "max-age=60", "Cache-Control is kept")
    part = s3.get_object(Bucket=bucket, Key="photos/a b+c.jpg", Range="bytes=100-199")
    check(part["Body"].read() == body[100:200], "a range returns its bytes")
    head = s3.head_object(Bucket=bucket, Key="photos/a b+c.jpg")
    check(head["ContentLength"] == len(body), "HEAD gives the length")
    etag = head["ETag"]
    check(error_code(lambda: s3.get_object(Bucket=bucket, Key="photos/a b+c.jpg", IfNoneMatch=etag)) == "304",
          "If-None-Match with the ETag is 304")
    check(error_code(lambda: s3.get_object(Bucket=bucket, Key="photos/a b+c.jpg", IfMatch='"0"')) == "PreconditionFailed",
          "If-Match with another ETag is 412")
    read_everywhere("photos/a b+c.jpg", body)
    s3.copy_object(Bucket=bucket, Key="copy.jpg", CopySource={"Bucket": bucket, "Key": "photos/a b+c.jpg"})
    read_everywhere("copy.jpg", body)
    check(s3.head_object(Bucket=bucket, Key="copy.jpg")["ETag"] == etag, "a copy keeps the ETag")
    check(error_code(lambda: s3.get_object(Bucket=bucket, Key="nothing")) == "NoSuchKey", "a missing key is NoSuchKey")
    check(error_code(lambda: s3.get_object(Bucket="no-such-bucket", Key="x")) == "NoSuchBucket", "a missing bucket is NoSuchBucket")


def conditional_and_checksums():
    s3.put_object(Bucket=bucket, Key="once", Body=b"first", IfNoneMatch="*")
    check(error_code(lambda: s3.put_object(Bucket=bucket, Key="once", Body=b"second", IfNoneMatch="*")) == "PreconditionFailed",
          "If-None-Match: * refuses an existing key")
    check(s3.get_object(Bucket=bucket, Key="once")["Body"].read() == b"first", "the refused PUT changed nothing")
    # boto3 >= 1.36 sends CRC32 in an aws-chunked trailer by default.
    s3.put_object(Bucket=bucket, Key="crc", Body=b"checked" * 1000, ChecksumAlgorithm="CRC32")
    check(s3.get_object(Bucket=bucket, Key="crc")["Body"].read() == b"checked" * 1000, "a CRC32-trailed body is stored without framing")
    s3.put_object(Bucket=bucket, Key="sha", Body=b"sha" * 1000, ChecksumAlgorithm="SHA256")
    check(s3.get_object(Bucket=bucket, Key="sha")["Body"].read() == b"sha" * 1000, "a SHA256-checked body is stored")
    bad = error_code(lambda: s3.put_object(Bucket=bucket, Key="badcrc", Body=b"x" * 10, ChecksumCRC32="AAAAAA=="))
    check(bad == "BadDigest", f"a wrong CRC32 is BadDigest ({bad})")
    check(error_code(lambda: s3.head_object(Bucket=bucket, Key="badcrc")) == "404", "nothing was stored")


def listing():
    for i in range(12):
        s3.put_object(Bucket=bucket, Key=f"tree/d{i % 3}/f{i:02}", Body=b"x" * i)
    top = s3.list_objects_v2(Bucket=bucket, Prefix="tree/", Delimiter="/")
    prefixes = [p["Prefix"] for p in top.get("CommonPrefixes", [])]
    check(prefixes == ["tree/d0/", "tree/d1/", "tree/d2/"], f"delimiter gives the folders {prefixes}")
    seen, token = [], None
    while True:
        args = {"Bucket": bucket, "Prefix": "tree/", "MaxKeys": 5}
        if token:
            args["ContinuationToken"] = token
        page = s3.list_objects_v2(**args)
        seen += [o["Key"] for o in page.get("Contents", [])]
        if not page["IsTruncated"]:
            break
        token = page["NextContinuationToken"]
    check(seen == sorted(f"tree/d{i % 3}/f{i:02}" for i in range(12)), "paging lists every key once")
    for reader in readers:
        keys = [o["Key"] for o in reader.list_objects_v2(Bucket=bucket, Prefix="tree/")["Contents"]]
        check(len(keys) == 12, "another node lists every key")
    v1 = s3.list_objects(Bucket=bucket, Prefix="tree/d1/")
    check(len(v1["Contents"]) == 4, "ListObjects v1 lists")
    deleted = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": f"tree/d0/f{i:02}"} for i in (0, 3)]})
    check(len(deleted["Deleted"]) == 2, "DeleteObjects deletes")
    check(error_code(lambda: s3.head_object(Bucket=bucket, Key="tree/d0/f00")) == "404", "a deleted key is gone")


def multipart():
    body = os.urandom(15 * MIB + 1234)
    config = TransferConfig(multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB)
    s3.upload_fileobj(io.BytesIO(body), bucket, "big.bin", Config=config)
    head = s3.head_object(Bucket=bucket, Key="big.bin")
    check(head["ETag"].endswith('-4"'), f"a multipart ETag ends with the part count ({head['ETag']})")
    read_everywhere("big.bin", body)
    upload = s3.create_multipart_upload(Bucket=bucket, Key="parts")
    uid = upload["UploadId"]
    e1 = s3.upload_part(Bucket=bucket, Key="parts", UploadId=uid, PartNumber=1, Body=body[: 5 * MIB])["ETag"]
    e2 = s3.upload_part_copy(Bucket=bucket, Key="parts", UploadId=uid, PartNumber=2,
                             CopySource={"Bucket": bucket, "Key": "big.bin"}, CopySourceRange="bytes=0-99")["CopyPartResult"]["ETag"]
    check(len(s3.list_parts(Bucket=bucket, Key="parts", UploadId=uid)["Parts"]) == 2, "ListParts lists both")
    check(any(u["UploadId"] == uid for u in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])),
          "ListMultipartUploads lists the upload")
    out_of_order = {"Parts": [{"PartNumber": 2, "ETag": e2}, {"PartNumber": 1, "ETag": e1}]}
    check(error_code(lambda: s3.complete_multipart_upload(Bucket=bucket, Key="parts", UploadId=uid, MultipartUpload=out_of_order))
          == "InvalidPartOrder", "parts out of order are refused")
    s3.complete_multipart_upload(Bucket=bucket, Key="parts", UploadId=uid,
                                 MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]})
    read_everywhere("parts", body[: 5 * MIB] + body[:100])
    aborted = s3.create_multipart_upload(Bucket=bucket, Key="gone")["UploadId"]
    s3.upload_part(Bucket=bucket, Key="gone", UploadId=aborted, PartNumber=1, Body=b"zz")
    s3.abort_multipart_upload(Bucket=bucket, Key="gone", UploadId=aborted)
    check(error_code(lambda: s3.list_parts(Bucket=bucket, Key="gone", UploadId=aborted)) == "NoSuchUpload", "an aborted upload is gone")


def presigned():
    url = s3.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "presigned"}, ExpiresIn=300)
    request = urllib.request.Request(url, data=b"by url", method="PUT")
    check(urllib.request.urlopen(request).status == 200, "a presigned PUT stores")
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "presigned"}, ExpiresIn=300)
    check(urllib.request.urlopen(url).read() == b"by url", "a presigned GET reads")
    tampered = url.replace("presigned", "copy.jpg")
    try:
        urllib.request.urlopen(tampered)
        check(False, "a presigned URL for another key is refused")
    except urllib.error.HTTPError as error:
        check(error.code == 403, "a presigned URL for another key is refused")


def cleanup():
    check(error_code(lambda: s3.delete_bucket(Bucket=bucket)) == "BucketNotEmpty", "a bucket with keys is not deleted")
    s3.delete_object(Bucket=bucket, Key="once")
    check(error_code(lambda: s3.head_object(Bucket=bucket, Key="once")) == "404", "DeleteObject deletes")


for step in (objects, conditional_and_checksums, listing, multipart, presigned, cleanup):
    step()
print("boto3 suite passed")
