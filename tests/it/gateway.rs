//! The built-in S3 gateway driven by the AWS SDK for Rust (`aws-sdk-s3`): operations, access keys
//! issued by the management API and vended by the catalog, and the scope each key is held to.
//! Exhaustive protocol coverage (checksums, conditional requests, odd keys, presigned URLs, 100 MiB
//! multipart) is in the boto3 suite, `tests/engines/test_s3_gateway.py`.

use aws_sdk_s3::Client;
use aws_sdk_s3::config::{Credentials, Region};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, Delete, ObjectIdentifier};
use serde_json::{Value, json};

use crate::common::{Backend, TestApp, captured_logs};

on_both_backends!(
    operations_round_trip_with_an_admin_key,
    keys_are_checked_and_revocable,
    vended_keys_reach_one_table_only,
    s3_warehouses_keep_their_files_on_an_s3_store,
    remote_signing_signs_only_inside_the_table,
);

/// A gateway-served warehouse `lake` on this test's database; returns its id.
async fn served_warehouse(app: &TestApp, name: &str) -> String {
    let root = app.db.dir.path().join("warehouses").join(name);
    let response = app
        .post(
            "/management/v1/warehouses",
            &json!({
                "name": name,
                "storage-profile": {"type": "local", "root": root, "s3-gateway": true},
            }),
        )
        .await;
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
    let body: Value = response.json().await.unwrap();
    body["id"].as_str().unwrap().to_string()
}

async fn admin_key(app: &TestApp, warehouse: &str, body: Value) -> (String, String) {
    let response = app
        .post(
            &format!("/management/v1/warehouses/{warehouse}/access-keys"),
            &body,
        )
        .await;
    assert_eq!(response.status(), 201);
    let key: Value = response.json().await.unwrap();
    assert_eq!(
        key["endpoint"].as_str().unwrap(),
        format!("http://{}", app.s3_addr.unwrap())
    );
    (
        key["access-key-id"].as_str().unwrap().to_string(),
        key["secret-access-key"].as_str().unwrap().to_string(),
    )
}

fn client(app: &TestApp, access_key: &str, secret: &str) -> Client {
    let config = aws_sdk_s3::Config::builder()
        .endpoint_url(format!("http://{}", app.s3_addr.expect("the gateway runs")))
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(
            access_key,
            secret,
            None,
            None,
            "floe-test",
        ))
        .force_path_style(true)
        .build();
    Client::from_conf(config)
}

/// The S3 error code of a failed SDK call.
fn code<E, R>(result: Result<R, aws_sdk_s3::error::SdkError<E>>) -> String
where
    E: aws_sdk_s3::error::ProvideErrorMetadata + std::fmt::Debug,
    R: std::fmt::Debug,
{
    let err = result.expect_err("the call must fail");
    let status = err.raw_response().map(|r| r.status().as_u16());
    format!(
        "{}:{}",
        status.unwrap_or(0),
        err.as_service_error()
            .and_then(|e| e.code())
            .unwrap_or("none")
    )
}

async fn body_of(s3: &Client, bucket: &str, key: &str) -> Vec<u8> {
    let object = s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap();
    object.body.collect().await.unwrap().into_bytes().to_vec()
}

async fn operations_round_trip_with_an_admin_key(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let info: Value = app.get("/management/v1/info").await.json().await.unwrap();
    assert_eq!(
        info["s3-endpoint"].as_str().unwrap(),
        format!("http://{}", app.s3_addr.unwrap())
    );
    let warehouse = served_warehouse(&app, "lake").await;
    let (id, secret) = admin_key(&app, &warehouse, Value::Null).await;
    let s3 = client(&app, &id, &secret);

    let buckets = s3.list_buckets().send().await.unwrap();
    let names: Vec<_> = buckets.buckets().iter().filter_map(|b| b.name()).collect();
    assert_eq!(names, ["lake"]);
    s3.head_bucket().bucket("lake").send().await.unwrap();

    let put = s3
        .put_object()
        .bucket("lake")
        .key("dir/hello.txt")
        .content_type("text/plain")
        .metadata("team", "data")
        .body(ByteStream::from_static(b"hello gateway"))
        .send()
        .await
        .unwrap();
    let md5 = format!("\"{}\"", hex::encode(md5_of(b"hello gateway")));
    assert_eq!(put.e_tag(), Some(md5.as_str()));
    let head = s3
        .head_object()
        .bucket("lake")
        .key("dir/hello.txt")
        .send()
        .await
        .unwrap();
    assert_eq!(head.content_length(), Some(13));
    assert_eq!(head.content_type(), Some("text/plain"));
    assert_eq!(
        head.metadata().unwrap().get("team").map(String::as_str),
        Some("data")
    );
    assert_eq!(
        body_of(&s3, "lake", "dir/hello.txt").await,
        b"hello gateway"
    );
    let range = s3
        .get_object()
        .bucket("lake")
        .key("dir/hello.txt")
        .range("bytes=6-12")
        .send()
        .await
        .unwrap();
    assert_eq!(
        range.body.collect().await.unwrap().into_bytes().as_ref(),
        b"gateway"
    );
    // The object is the file, where the catalog would put it.
    let on_disk = app.db.dir.path().join("warehouses/lake/dir/hello.txt");
    assert_eq!(std::fs::read(on_disk).unwrap(), b"hello gateway");

    // If-None-Match: * creates only once.
    let again = s3
        .put_object()
        .bucket("lake")
        .key("dir/hello.txt")
        .if_none_match("*")
        .body(ByteStream::from_static(b"other"))
        .send()
        .await;
    assert_eq!(code(again), "412:PreconditionFailed");
    assert_eq!(
        body_of(&s3, "lake", "dir/hello.txt").await,
        b"hello gateway"
    );

    s3.copy_object()
        .bucket("lake")
        .key("dir/copy.txt")
        .copy_source("lake/dir/hello.txt")
        .send()
        .await
        .unwrap();
    assert_eq!(body_of(&s3, "lake", "dir/copy.txt").await, b"hello gateway");

    for i in 0..5 {
        s3.put_object()
            .bucket("lake")
            .key(format!("many/{i}"))
            .body(ByteStream::from(vec![i as u8; 10]))
            .send()
            .await
            .unwrap();
    }
    let mut keys = Vec::new();
    let mut token = None;
    loop {
        let page = s3
            .list_objects_v2()
            .bucket("lake")
            .prefix("many/")
            .max_keys(2)
            .set_continuation_token(token)
            .send()
            .await
            .unwrap();
        keys.extend(
            page.contents()
                .iter()
                .filter_map(|o| o.key().map(str::to_string)),
        );
        token = page.next_continuation_token().map(str::to_string);
        if token.is_none() {
            break;
        }
    }
    assert_eq!(keys, ["many/0", "many/1", "many/2", "many/3", "many/4"]);
    let grouped = s3
        .list_objects_v2()
        .bucket("lake")
        .delimiter("/")
        .send()
        .await
        .unwrap();
    let prefixes: Vec<_> = grouped
        .common_prefixes()
        .iter()
        .filter_map(|p| p.prefix())
        .collect();
    assert_eq!(prefixes, ["dir/", "many/"]);

    // Multipart: two 5 MiB parts and a tail; the ETag is the MD5 of the part MD5s, dash, count.
    let upload = s3
        .create_multipart_upload()
        .bucket("lake")
        .key("big/object")
        .send()
        .await
        .unwrap();
    let upload_id = upload.upload_id().unwrap();
    let parts_data = [vec![1u8; 5 << 20], vec![2u8; 5 << 20], vec![3u8; 1000]];
    let mut parts = Vec::new();
    let mut md5s = Vec::new();
    for (i, data) in parts_data.iter().enumerate() {
        let part = s3
            .upload_part()
            .bucket("lake")
            .key("big/object")
            .upload_id(upload_id)
            .part_number(i as i32 + 1)
            .body(ByteStream::from(data.clone()))
            .send()
            .await
            .unwrap();
        md5s.extend_from_slice(&md5_of(data));
        parts.push(
            CompletedPart::builder()
                .part_number(i as i32 + 1)
                .e_tag(part.e_tag().unwrap())
                .build(),
        );
    }
    let listed = s3
        .list_parts()
        .bucket("lake")
        .key("big/object")
        .upload_id(upload_id)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.parts().len(), 3);
    let done = s3
        .complete_multipart_upload()
        .bucket("lake")
        .key("big/object")
        .upload_id(upload_id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(parts))
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        done.e_tag().unwrap(),
        format!("\"{}-3\"", hex::encode(md5_of(&md5s)))
    );
    let whole = body_of(&s3, "lake", "big/object").await;
    assert_eq!(whole.len(), (10 << 20) + 1000);
    assert_eq!(whole, parts_data.concat());

    // An aborted upload is gone.
    let aborted = s3
        .create_multipart_upload()
        .bucket("lake")
        .key("big/abandoned")
        .send()
        .await
        .unwrap();
    s3.abort_multipart_upload()
        .bucket("lake")
        .key("big/abandoned")
        .upload_id(aborted.upload_id().unwrap())
        .send()
        .await
        .unwrap();
    let uploads = s3
        .list_multipart_uploads()
        .bucket("lake")
        .send()
        .await
        .unwrap();
    assert!(uploads.uploads().is_empty());

    let delete = s3
        .delete_objects()
        .bucket("lake")
        .delete(
            Delete::builder()
                .objects(ObjectIdentifier::builder().key("many/0").build().unwrap())
                .objects(ObjectIdentifier::builder().key("many/1").build().unwrap())
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(delete.deleted().len(), 2);
    assert!(delete.errors().is_empty());
    s3.delete_object()
        .bucket("lake")
        .key("dir/copy.txt")
        .send()
        .await
        .unwrap();
    assert_eq!(
        code(
            s3.get_object()
                .bucket("lake")
                .key("dir/copy.txt")
                .send()
                .await
        ),
        "404:NoSuchKey"
    );

    // Keys that would leave the warehouse are refused and nothing is written outside it.
    for key in ["../escape", "a/../../escape", ".floe~tmp/x"] {
        let result = s3
            .put_object()
            .bucket("lake")
            .key(key)
            .body(ByteStream::from_static(b"x"))
            .send()
            .await;
        assert_eq!(code(result), "400:InvalidArgument", "{key}");
    }
    assert!(!app.db.dir.path().join("warehouses/escape").exists());
    assert!(!app.db.dir.path().join("escape").exists());

    // No secret reaches the log.
    assert!(!captured_logs().contains(&secret));
    app.shutdown().await.unwrap();
}

async fn keys_are_checked_and_revocable(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let lake = served_warehouse(&app, "lake").await;
    let other = served_warehouse(&app, "other").await;
    let (id, secret) = admin_key(&app, &lake, json!({"description": "ci"})).await;
    let s3 = client(&app, &id, &secret);
    s3.head_bucket().bucket("lake").send().await.unwrap();

    // A key opens its own warehouse only.
    assert_eq!(
        code(s3.head_bucket().bucket("other").send().await),
        "403:none"
    );
    let (other_id, other_secret) = admin_key(&app, &other, Value::Null).await;
    let other_s3 = client(&app, &other_id, &other_secret);
    assert_eq!(
        code(
            other_s3
                .put_object()
                .bucket("lake")
                .key("x")
                .body(ByteStream::from_static(b"x"))
                .send()
                .await
        ),
        "403:AccessDenied"
    );

    // Wrong secret, unknown key.
    let wrong = client(&app, &id, "not-the-secret-not-the-secret-not-the-se");
    assert_eq!(
        code(wrong.list_objects_v2().bucket("lake").send().await),
        "403:SignatureDoesNotMatch"
    );
    let unknown = client(&app, "FLAAAAAAAAAAAAAAAAAA", &secret);
    assert_eq!(
        code(unknown.list_objects_v2().bucket("lake").send().await),
        "403:InvalidAccessKeyId"
    );

    // Unsigned requests are refused.
    let anonymous = reqwest::get(format!("http://{}/lake/x", app.s3_addr.unwrap()))
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 403);

    // The listing shows keys without secrets; deleting one revokes it at once.
    let listed: Value = app
        .get(&format!("/management/v1/warehouses/{lake}/access-keys"))
        .await
        .json()
        .await
        .unwrap();
    let keys = listed["access-keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["access-key-id"], id.as_str());
    assert_eq!(keys[0]["description"], "ci");
    assert!(!listed.to_string().contains(&secret));
    let deleted = app
        .delete(&format!(
            "/management/v1/warehouses/{lake}/access-keys/{id}"
        ))
        .await;
    assert_eq!(deleted.status(), 204);
    assert_eq!(
        code(s3.list_objects_v2().bucket("lake").send().await),
        "403:InvalidAccessKeyId"
    );
    let again = app
        .delete(&format!(
            "/management/v1/warehouses/{lake}/access-keys/{id}"
        ))
        .await;
    assert_eq!(again.status(), 404);

    // An expiring key works, then stops once its time (counted from before the answer that
    // minted it arrived) has passed.
    let (short, short_secret) = admin_key(&app, &lake, json!({"expires-in-seconds": 3})).await;
    let minted = std::time::Instant::now();
    let short_s3 = client(&app, &short, &short_secret);
    short_s3.head_bucket().bucket("lake").send().await.unwrap();
    tokio::time::sleep(
        (minted + std::time::Duration::from_millis(3200)) - std::time::Instant::now(),
    )
    .await;
    assert_eq!(
        code(short_s3.list_objects_v2().bucket("lake").send().await),
        "403:AccessDenied"
    );

    // Bad requests for keys.
    let bad = app
        .post(
            &format!("/management/v1/warehouses/{lake}/access-keys"),
            &json!({"expires-in-seconds": 0}),
        )
        .await;
    assert_eq!(bad.status(), 400);
    let missing = app
        .post(
            &format!(
                "/management/v1/warehouses/{}/access-keys",
                uuid::Uuid::new_v4()
            ),
            &Value::Null,
        )
        .await;
    assert_eq!(missing.status(), 404);
    app.shutdown().await.unwrap();
}

/// Creates a table in `lake` and returns its location and the config the catalog vended.
async fn vended_table(app: &TestApp, namespace: &str, name: &str) -> (String, Value) {
    let prefix = app.prefix("lake").await;
    let response = app
        .client
        .post(app.url(&format!(
            "/catalog/v1/{prefix}/namespaces/{namespace}/tables"
        )))
        .header("x-iceberg-access-delegation", "vended-credentials")
        .json(&json!({
            "name": name,
            "schema": {"type": "struct", "schema-id": 0, "fields": [
                {"id": 1, "name": "id", "required": false, "type": "long"}]},
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let location = body["metadata"]["location"].as_str().unwrap().to_string();
    let credentials = &body["storage-credentials"][0];
    assert_eq!(credentials["prefix"].as_str().unwrap(), location);
    assert_eq!(body["config"], credentials["config"]);
    (location, body["config"].clone())
}

async fn vended_keys_reach_one_table_only(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    served_warehouse(&app, "lake").await;
    let prefix = app.prefix("lake").await;
    let created = app
        .post(
            &format!("/catalog/v1/{prefix}/namespaces"),
            &json!({"namespace": ["ns"]}),
        )
        .await;
    assert_eq!(created.status(), 200);
    // A name full of policy and glob syntax: the scope is the table's own folder, nothing wider.
    let (location, config) = vended_table(&app, "ns", "t*?$%\"").await;
    let (sibling, _) = vended_table(&app, "ns", "t").await;
    assert!(location.starts_with("s3://lake/ns/"), "{location}");
    assert_eq!(
        config["s3.endpoint"].as_str().unwrap(),
        format!("http://{}", app.s3_addr.unwrap())
    );
    assert_eq!(config["s3.path-style-access"], "true");
    let expires: i64 = config["s3.session-token-expires-at-ms"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(expires > chrono::Utc::now().timestamp_millis() + 30 * 60 * 1000);

    let s3 = client(
        &app,
        config["s3.access-key-id"].as_str().unwrap(),
        config["s3.secret-access-key"].as_str().unwrap(),
    );
    let key = location.strip_prefix("s3://lake/").unwrap();
    let sibling_key = sibling.strip_prefix("s3://lake/").unwrap();

    // Inside the table: read and write.
    s3.put_object()
        .bucket("lake")
        .key(format!("{key}/data/part-0.parquet"))
        .body(ByteStream::from_static(b"rows"))
        .send()
        .await
        .unwrap();
    let metadata = s3
        .list_objects_v2()
        .bucket("lake")
        .prefix(format!("{key}/metadata/"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        metadata.contents().len(),
        1,
        "the table's first metadata file"
    );

    // Outside: the sibling table, the namespace, the bucket root.
    let denied = "403:AccessDenied";
    assert_eq!(
        code(
            s3.get_object()
                .bucket("lake")
                .key(format!("{sibling_key}/metadata/x"))
                .send()
                .await
        ),
        denied
    );
    assert_eq!(
        code(
            s3.put_object()
                .bucket("lake")
                .key(format!("{sibling_key}/data/evil.parquet"))
                .body(ByteStream::from_static(b"x"))
                .send()
                .await
        ),
        denied
    );
    assert_eq!(
        code(
            s3.list_objects_v2()
                .bucket("lake")
                .prefix("ns/")
                .send()
                .await
        ),
        denied
    );
    assert_eq!(
        code(s3.list_objects_v2().bucket("lake").send().await),
        denied
    );
    // A key that climbs out through `..` never gets past the scope or the key check.
    let climbing = s3
        .put_object()
        .bucket("lake")
        .key(format!(
            "{key}/../{}/data/evil",
            sibling_key.rsplit('/').next().unwrap()
        ))
        .body(ByteStream::from_static(b"x"))
        .send()
        .await;
    assert_eq!(code(climbing), "400:InvalidArgument");
    // Batch deletes authorize every key on its own.
    let batch = s3
        .delete_objects()
        .bucket("lake")
        .delete(
            Delete::builder()
                .objects(
                    ObjectIdentifier::builder()
                        .key(format!("{key}/data/part-0.parquet"))
                        .build()
                        .unwrap(),
                )
                .objects(
                    ObjectIdentifier::builder()
                        .key(format!("{sibling_key}/metadata/x"))
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(batch.deleted().len(), 1);
    assert_eq!(batch.errors().len(), 1);
    assert_eq!(batch.errors()[0].code(), Some("AccessDenied"));
    let sibling_files = std::fs::read_dir(
        app.db
            .dir
            .path()
            .join("warehouses/lake")
            .join(sibling_key)
            .join("metadata"),
    )
    .unwrap()
    .count();
    assert_eq!(sibling_files, 1, "the sibling table is untouched");

    // An edited key id claiming a wider prefix (the whole warehouse), signed with the real
    // secret, opens nothing: the secret belongs to the id as it was minted.
    use base64::Engine as _;
    let id = config["s3.access-key-id"].as_str().unwrap();
    let secret = config["s3.secret-access-key"].as_str().unwrap();
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let (mark, encoded) = id.split_at(4);
    assert_eq!(mark, "FLS1", "a table-scoped key id");
    let mut payload = b64.decode(encoded).unwrap();
    let scope = String::from_utf8(payload[25..].to_vec()).unwrap();
    assert!(scope.starts_with("ns/"), "{scope}");
    payload.truncate(25);
    payload.extend_from_slice(b"ns/");
    let wider = format!("{mark}{}", b64.encode(&payload));
    assert_ne!(wider, id);
    let widened = client(&app, &wider, secret);
    assert_eq!(
        code(widened.list_objects_v2().bucket("lake").send().await),
        "403:SignatureDoesNotMatch"
    );
    assert_eq!(
        code(
            widened
                .get_object()
                .bucket("lake")
                .key(format!("{sibling_key}/metadata/x"))
                .send()
                .await
        ),
        "403:SignatureDoesNotMatch"
    );
    // The same id with its own secret still works (the edit, not the client, is refused).
    let genuine = client(&app, id, secret);
    assert_eq!(
        code(
            genuine
                .get_object()
                .bucket("lake")
                .key(format!("{key}/data/part-0.parquet"))
                .send()
                .await
        ),
        "404:NoSuchKey",
        "deleted above: the genuine key reaches it"
    );

    // The credentials endpoint vends the same scope; a plain local warehouse vends nothing.
    let credentials: Value = app
        .get(&format!(
            "/catalog/v1/{prefix}/namespaces/ns/tables/{}/credentials",
            urlencode("t*?$%\"")
        ))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        credentials["storage-credentials"][0]["prefix"]
            .as_str()
            .unwrap(),
        location
    );
    assert!(!captured_logs().contains(config["s3.secret-access-key"].as_str().unwrap()));
    app.shutdown().await.unwrap();
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn md5_of(data: &[u8]) -> [u8; 16] {
    use md5::Digest;
    md5::Md5::digest(data).into()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_multipart_uploads_are_removed() {
    let db = std::sync::Arc::new(crate::common::TestDb::new(Backend::Sqlite).await);
    let app = TestApp::spawn_on(db, |config| config.gateway.multipart_expiry_secs = 1).await;
    let warehouse = served_warehouse(&app, "lake").await;
    let (id, secret) = admin_key(&app, &warehouse, Value::Null).await;
    let s3 = client(&app, &id, &secret);
    let upload = s3
        .create_multipart_upload()
        .bucket("lake")
        .key("left/behind")
        .send()
        .await
        .unwrap();
    s3.upload_part()
        .bucket("lake")
        .key("left/behind")
        .upload_id(upload.upload_id().unwrap())
        .part_number(1)
        .body(ByteStream::from_static(b"part"))
        .send()
        .await
        .unwrap();
    let listed = s3
        .list_multipart_uploads()
        .bucket("lake")
        .send()
        .await
        .unwrap();
    assert_eq!(listed.uploads().len(), 1);
    let uploads_dir = app.db.dir.path().join("warehouses/lake/.floe~uploads");
    assert_eq!(std::fs::read_dir(&uploads_dir).unwrap().count(), 1);
    let mut gone = false;
    for _ in 0..50 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        if std::fs::read_dir(&uploads_dir).unwrap().count() == 0 {
            gone = true;
            break;
        }
    }
    assert!(
        gone,
        "the upload is removed within a few seconds of expiring"
    );
    let listed = s3
        .list_multipart_uploads()
        .bucket("lake")
        .send()
        .await
        .unwrap();
    assert!(listed.uploads().is_empty());
    assert_eq!(
        code(
            s3.list_parts()
                .bucket("lake")
                .key("left/behind")
                .upload_id(upload.upload_id().unwrap())
                .send()
                .await
        ),
        "404:NoSuchUpload"
    );
    app.shutdown().await.unwrap();
}

/// A warehouse with an S3 storage profile, whose store is Floe's own gateway (a real S3 server):
/// creation probes the store, table metadata goes there, and purge removes it.
async fn s3_warehouses_keep_their_files_on_an_s3_store(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let lake = served_warehouse(&app, "lake").await;
    let (id, secret) = admin_key(&app, &lake, Value::Null).await;
    let endpoint = format!("http://{}", app.s3_addr.unwrap());
    let profile = json!({
        "type": "s3", "bucket": "lake", "key-prefix": "remote-data", "region": "us-east-1",
        "endpoint": endpoint, "path-style-access": true,
    });

    // A store that refuses the credential: 400 naming the store's error, nothing created.
    let refused = app
        .post(
            "/management/v1/warehouses",
            &json!({
                "name": "remote",
                "storage-profile": profile,
                "storage-credential": {"type": "s3-access-key", "access-key-id": id,
                                       "secret-access-key": "wrong-secret-wrong-secret-wrong-secret-x"},
            }),
        )
        .await;
    let (kind, message) = crate::common::expect_error(refused, 400).await;
    assert_eq!(kind, "BadRequestException");
    assert!(message.contains("SignatureDoesNotMatch"), "{message}");
    assert!(!message.contains("wrong-secret"), "{message}");

    let created = app
        .post(
            "/management/v1/warehouses",
            &json!({
                "name": "remote",
                "storage-profile": profile,
                "storage-credential": {"type": "s3-access-key", "access-key-id": id,
                                       "secret-access-key": secret},
            }),
        )
        .await;
    assert_eq!(created.status(), 201, "{}", created.text().await.unwrap());
    let prefix = app.prefix("remote").await;
    let ns = app
        .post(
            &format!("/catalog/v1/{prefix}/namespaces"),
            &json!({"namespace": ["ns"]}),
        )
        .await;
    assert_eq!(ns.status(), 200);
    let table: Value = app
        .post(
            &format!("/catalog/v1/{prefix}/namespaces/ns/tables"),
            &json!({
                "name": "t",
                "schema": {"type": "struct", "schema-id": 0, "fields": [
                    {"id": 1, "name": "id", "required": false, "type": "long"}]},
            }),
        )
        .await
        .json()
        .await
        .unwrap();
    let location = table["metadata"]["location"].as_str().unwrap().to_string();
    assert!(
        location.starts_with("s3://lake/remote-data/ns/t-"),
        "{location}"
    );
    let committed = app
        .post(
            &format!("/catalog/v1/{prefix}/namespaces/ns/tables/t"),
            &json!({"requirements": [], "updates": [
                {"action": "set-properties", "updates": {"owner": "s3"}}]}),
        )
        .await;
    assert_eq!(committed.status(), 200);
    let loaded: Value = app
        .get(&format!("/catalog/v1/{prefix}/namespaces/ns/tables/t"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(loaded["metadata"]["properties"]["owner"], "s3");
    // The metadata files are objects of the other store (here: files of the served warehouse).
    let s3 = client(&app, &id, &secret);
    let key = location.strip_prefix("s3://lake/").unwrap();
    let listed = s3
        .list_objects_v2()
        .bucket("lake")
        .prefix(format!("{key}/metadata/"))
        .send()
        .await
        .unwrap();
    assert_eq!(listed.contents().len(), 2, "two metadata files");

    // Drop with purge removes the table's objects (in the background).
    let dropped = app
        .delete(&format!(
            "/catalog/v1/{prefix}/namespaces/ns/tables/t?purgeRequested=true"
        ))
        .await;
    assert_eq!(dropped.status(), 204);
    let mut gone = false;
    for _ in 0..50 {
        let listed = s3
            .list_objects_v2()
            .bucket("lake")
            .prefix(format!("{key}/"))
            .send()
            .await
            .unwrap();
        if listed.contents().is_empty() {
            gone = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(gone, "purge removed the table's objects");
    assert!(!captured_logs().contains(&secret));
    app.shutdown().await.unwrap();
}

/// Creates table `name` in namespace `ns` of the warehouse with `prefix`; returns its location.
async fn plain_table(app: &TestApp, prefix: &str, name: &str) -> String {
    let response = app
        .post(
            &format!("/catalog/v1/{prefix}/namespaces/ns/tables"),
            &json!({
                "name": name,
                "schema": {"type": "struct", "schema-id": 0, "fields": [
                    {"id": 1, "name": "id", "required": false, "type": "long"}]},
            }),
        )
        .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    body["metadata"]["location"].as_str().unwrap().to_string()
}

/// Loads a table with the given `X-Iceberg-Access-Delegation`.
async fn load_with(app: &TestApp, prefix: &str, name: &str, delegation: Option<&str>) -> Value {
    let mut request = app
        .client
        .get(app.url(&format!("/catalog/v1/{prefix}/namespaces/ns/tables/{name}")));
    if let Some(delegation) = delegation {
        request = request.header("x-iceberg-access-delegation", delegation);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// Asks Floe to sign `method uri` at `path` (a sign endpoint); returns the response.
async fn ask_signature(
    app: &TestApp,
    path: &str,
    method: &str,
    uri: &str,
    headers: Value,
) -> reqwest::Response {
    app.post(
        path,
        &json!({"region": "us-east-1", "uri": uri, "method": method, "headers": headers}),
    )
    .await
}

/// Sends a request signed by Floe to the gateway, with the client's own headers and Floe's.
async fn send_signed(
    method: reqwest::Method,
    uri: &str,
    own: &[(&str, &str)],
    signed: &Value,
    body: Option<&'static str>,
) -> reqwest::Response {
    let mut request = reqwest::Client::new().request(method, uri);
    for (name, value) in own {
        request = request.header(*name, *value);
    }
    for (name, values) in signed["headers"].as_object().unwrap() {
        request = request.header(name.as_str(), values[0].as_str().unwrap());
    }
    if let Some(body) = body {
        request = request.body(body);
    }
    request.send().await.unwrap()
}

async fn remote_signing_signs_only_inside_the_table(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let lake = served_warehouse(&app, "lake").await;
    let prefix = app.prefix("lake").await;
    let endpoint = format!("http://{}", app.s3_addr.unwrap());
    let created = app
        .post(
            &format!("/catalog/v1/{prefix}/namespaces"),
            &json!({"namespace": ["ns"]}),
        )
        .await;
    assert_eq!(created.status(), 200);
    let location = plain_table(&app, &prefix, "t").await;
    let other = plain_table(&app, &prefix, "u").await;
    let key = location.strip_prefix("s3://lake/").unwrap().to_string();
    let other_key = other.strip_prefix("s3://lake/").unwrap().to_string();

    // The config endpoint advertises signing; a load asking for it gets the signer, no key.
    let config: Value = app
        .get("/catalog/v1/config?warehouse=lake")
        .await
        .json()
        .await
        .unwrap();
    let endpoints = config["endpoints"].as_array().unwrap();
    assert!(endpoints.contains(&json!(
        "POST /v1/{prefix}/namespaces/{namespace}/tables/{table}/sign"
    )));
    let loaded = load_with(&app, &prefix, "t", Some("remote-signing")).await;
    let sign_path = format!("v1/{prefix}/namespaces/ns/tables/t/sign");
    assert_eq!(loaded["config"]["s3.remote-signing-enabled"], "true");
    assert_eq!(loaded["config"]["s3.signer.endpoint"], sign_path.as_str());
    assert_eq!(loaded["config"]["s3.endpoint"], endpoint.as_str());
    assert!(loaded["config"].get("s3.access-key-id").is_none());
    assert!(
        loaded
            .get("storage-credentials")
            .is_none_or(|c| c.as_array().unwrap().is_empty())
    );
    // Asking for vended credentials too gets a key (cheaper for the client than signing).
    let both = load_with(
        &app,
        &prefix,
        "t",
        Some("vended-credentials,remote-signing"),
    )
    .await;
    assert!(both["config"]["s3.access-key-id"].is_string());

    // A PUT and a GET signed by either request shape reach the gateway, which checks them.
    let legacy_path = format!("/catalog/v1/{prefix}/namespaces/ns/tables/t/v1/aws/s3/sign");
    for (i, path) in [format!("/catalog/{sign_path}"), legacy_path.clone()]
        .iter()
        .enumerate()
    {
        let object = format!("{endpoint}/lake/{key}/data/hello-{i}.txt");
        let signed = ask_signature(
            &app,
            path,
            "PUT",
            &object,
            json!({"content-type": ["text/plain"]}),
        )
        .await;
        assert_eq!(signed.status(), 200);
        assert_eq!(signed.headers()["cache-control"], "no-cache");
        let signed: Value = signed.json().await.unwrap();
        assert_eq!(signed["uri"], object.as_str());
        assert!(
            signed["headers"]["authorization"][0]
                .as_str()
                .unwrap()
                .starts_with("AWS4-HMAC-SHA256 ")
        );
        let put = send_signed(
            reqwest::Method::PUT,
            &object,
            &[("content-type", "text/plain")],
            &signed,
            Some("hello"),
        )
        .await;
        assert_eq!(put.status(), 200, "{}", put.text().await.unwrap());
        let signed: Value = ask_signature(&app, path, "GET", &object, json!({}))
            .await
            .json()
            .await
            .unwrap();
        let got = send_signed(reqwest::Method::GET, &object, &[], &signed, None).await;
        assert_eq!(got.status(), 200);
        assert_eq!(got.text().await.unwrap(), "hello");
        // The same signature on another object is refused by the gateway.
        let elsewhere = format!("{endpoint}/lake/{key}/data/other.txt");
        let refused = send_signed(reqwest::Method::GET, &elsewhere, &[], &signed, None).await;
        assert_eq!(refused.status(), 403);
    }

    // Requests outside the table's folder, or of a kind Floe does not sign: 403, nothing signed.
    for path in [format!("/catalog/{sign_path}"), legacy_path] {
        for (method, uri) in [
            (
                "GET",
                format!("{endpoint}/lake/{other_key}/metadata/x.json"),
            ),
            ("GET", format!("{endpoint}/lake/{key}/../{other_key}/x")),
            ("GET", format!("{endpoint}/lake/{key}/%2E%2E/x")),
            ("GET", format!("{endpoint}/lake?list-type=2&prefix=ns%2F")),
            ("GET", format!("{endpoint}/lake/{key}/x?acl")),
            ("PATCH", format!("{endpoint}/lake/{key}/x")),
            ("POST", format!("{endpoint}/lake?delete")),
            ("DELETE", format!("{endpoint}/lake")),
            ("GET", format!("http://elsewhere.example/lake/{key}/x")),
        ] {
            let refused = ask_signature(&app, &path, method, &uri, json!({})).await;
            let (kind, _) = crate::common::expect_error(refused, 403).await;
            assert_eq!(kind, "ForbiddenException", "{method} {uri}");
        }
        // Headers that change what S3 does beyond the table's scope, and ambiguous headers.
        for headers in [
            json!({"x-amz-acl": ["public-read"]}),
            json!({"x-amz-object-lock-mode": ["COMPLIANCE"]}),
            json!({"X-Amz-Copy-Source": [], "x-amz-copy-source": [format!("lake/{other_key}/x")]}),
        ] {
            let refused = ask_signature(
                &app,
                &path,
                "PUT",
                &format!("{endpoint}/lake/{key}/data/x"),
                headers.clone(),
            )
            .await;
            let (kind, _) = crate::common::expect_error(refused, 403).await;
            assert_eq!(kind, "ForbiddenException", "{headers}");
        }
        let bulk = app
            .post(
                &path,
                &json!({"region": "us-east-1", "uri": format!("{endpoint}/lake?delete"),
                        "method": "POST", "headers": {},
                        "body": format!("<Delete><Object><Key>{key}/a</Key></Object><Object><Key>{other_key}/b</Key></Object></Delete>")}),
            )
            .await;
        crate::common::expect_error(bulk, 403).await;
    }
    // A table that does not exist: 404.
    let missing = ask_signature(
        &app,
        &format!("/catalog/v1/{prefix}/namespaces/ns/tables/nope/sign"),
        "GET",
        &format!("{endpoint}/lake/ns/nope/x"),
        json!({}),
    )
    .await;
    assert_eq!(missing.status(), 404);

    // An S3 warehouse (here on the gateway, with an admin key) and no STS: a client asking for
    // vended credentials gets remote signing, signed with the warehouse's key, which it never sees.
    let (id, secret) = admin_key(&app, &lake, Value::Null).await;
    let created = app
        .post(
            "/management/v1/warehouses",
            &json!({
                "name": "remote",
                "storage-profile": {"type": "s3", "bucket": "lake", "key-prefix": "remote-data",
                                    "region": "us-east-1", "endpoint": endpoint,
                                    "path-style-access": true},
                "storage-credential": {"type": "s3-access-key", "access-key-id": id,
                                       "secret-access-key": secret},
            }),
        )
        .await;
    assert_eq!(created.status(), 201);
    let remote = app.prefix("remote").await;
    let created = app
        .post(
            &format!("/catalog/v1/{remote}/namespaces"),
            &json!({"namespace": ["ns"]}),
        )
        .await;
    assert_eq!(created.status(), 200);
    let location = plain_table(&app, &remote, "t").await;
    let key = location.strip_prefix("s3://lake/").unwrap().to_string();
    let plain = load_with(&app, &remote, "t", None).await;
    assert_eq!(plain["config"]["s3.endpoint"], endpoint.as_str());
    assert!(plain["config"].get("s3.remote-signing-enabled").is_none());
    let loaded = load_with(&app, &remote, "t", Some("vended-credentials")).await;
    assert_eq!(loaded["config"]["s3.remote-signing-enabled"], "true");
    assert!(!loaded.to_string().contains(&secret));
    assert!(!loaded.to_string().contains(&id));
    let sign = format!(
        "/catalog/{}",
        loaded["config"]["s3.signer.endpoint"].as_str().unwrap()
    );
    let object = format!("{endpoint}/lake/{key}/data/part.txt");
    let signed: Value = ask_signature(&app, &sign, "PUT", &object, json!({}))
        .await
        .json()
        .await
        .unwrap();
    let put = send_signed(reqwest::Method::PUT, &object, &[], &signed, Some("remote")).await;
    assert_eq!(put.status(), 200);
    let listing = format!(
        "{endpoint}/lake?list-type=2&prefix={}",
        format!("{key}/data/").replace('/', "%2F")
    );
    let signed: Value = ask_signature(&app, &sign, "GET", &listing, json!({}))
        .await
        .json()
        .await
        .unwrap();
    let listed = send_signed(reqwest::Method::GET, &listing, &[], &signed, None).await;
    assert_eq!(listed.status(), 200);
    assert!(listed.text().await.unwrap().contains("part.txt"));
    assert!(!captured_logs().contains(&secret));
    app.shutdown().await.unwrap();
}

/// Keys hold across instances of one catalog (several Floe processes on one PostgreSQL database,
/// sharing the server's key): a table-scoped key vended by one instance is accepted by another's
/// gateway, within the same scope; an admin key revoked through one instance stops working on
/// every instance within the lookup's trust time (10 s), at once on the one that revoked it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_hold_and_revocations_reach_across_instances() {
    let db = std::sync::Arc::new(crate::common::TestDb::new(Backend::Postgres).await);
    let a = TestApp::spawn_on(db.clone(), |c| c.bootstrap.auto = Some(true)).await;
    let b = TestApp::spawn_on(db.clone(), |c| c.bootstrap.auto = Some(true)).await;
    let lake = served_warehouse(&a, "lake").await;
    let prefix = a.prefix("lake").await;
    let created = a
        .post(
            &format!("/catalog/v1/{prefix}/namespaces"),
            &json!({"namespace": ["ns"]}),
        )
        .await;
    assert_eq!(created.status(), 200);
    let (location, config) = vended_table(&a, "ns", "t").await;
    let key = location.strip_prefix("s3://lake/").unwrap().to_string();

    // A's scoped key on B's gateway: inside the table yes, beside it no.
    let scoped_on_b = client(
        &b,
        config["s3.access-key-id"].as_str().unwrap(),
        config["s3.secret-access-key"].as_str().unwrap(),
    );
    scoped_on_b
        .put_object()
        .bucket("lake")
        .key(format!("{key}/data/from-b.parquet"))
        .body(ByteStream::from_static(b"rows"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        code(
            scoped_on_b
                .put_object()
                .bucket("lake")
                .key("ns/elsewhere/data/x.parquet")
                .body(ByteStream::from_static(b"rows"))
                .send()
                .await
        ),
        "403:AccessDenied"
    );
    let (admin, secret) = admin_key(&a, &lake, json!({})).await;
    let admin_on_a = client(&a, &admin, &secret);
    let admin_on_b = client(&b, &admin, &secret);
    let read = admin_on_b
        .get_object()
        .bucket("lake")
        .key(format!("{key}/data/from-b.parquet"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        read.body.collect().await.unwrap().into_bytes().as_ref(),
        b"rows"
    );
    admin_on_a
        .head_bucket()
        .bucket("lake")
        .send()
        .await
        .unwrap();

    let revoked = a
        .delete(&format!(
            "/management/v1/warehouses/{lake}/access-keys/{admin}"
        ))
        .await;
    assert_eq!(revoked.status(), 204);
    let revoked_at = std::time::Instant::now();
    assert_eq!(
        code(admin_on_a.list_objects_v2().bucket("lake").send().await),
        "403:InvalidAccessKeyId"
    );
    loop {
        match admin_on_b.list_objects_v2().bucket("lake").send().await {
            Ok(_) => {
                assert!(
                    revoked_at.elapsed() < std::time::Duration::from_secs(12),
                    "instance B still accepts the revoked key after {:?}",
                    revoked_at.elapsed()
                );
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            Err(e) => {
                assert_eq!(code::<_, ()>(Err(e)), "403:InvalidAccessKeyId");
                break;
            }
        }
    }
}
