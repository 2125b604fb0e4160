//! Unit tests of `storage::signing`.

use super::*;

static FOLDER: std::sync::LazyLock<Vec<String>> =
    std::sync::LazyLock::new(|| vec!["ns/t/".to_string()]);

fn scope(may_write: bool) -> SigningScope<'static> {
    SigningScope {
        endpoint: "http://127.0.0.1:9000",
        bucket: "demo",
        region: "us-east-1",
        prefixes: &FOLDER,
        may_write,
        may_delete: may_write,
    }
}

fn request(method: &str, uri: &str) -> SignRequest {
    SignRequest {
        method: method.into(),
        uri: uri.into(),
        headers: BTreeMap::new(),
        body: None,
    }
}

fn allowed(scope: &SigningScope<'_>, request: &SignRequest) -> bool {
    check(scope, request).is_ok()
}

#[test]
fn objects_inside_the_table_are_signed_and_nothing_else() {
    let rw = scope(true);
    for (method, uri) in [
        ("GET", "http://127.0.0.1:9000/demo/ns/t/data/a.parquet"),
        ("HEAD", "http://127.0.0.1:9000/demo/ns/t/metadata/v1.json"),
        ("PUT", "http://127.0.0.1:9000/demo/ns/t/data/a%20b.parquet"),
        (
            "PUT",
            "http://127.0.0.1:9000/demo/ns/t/x?partNumber=1&uploadId=abc",
        ),
        ("POST", "http://127.0.0.1:9000/demo/ns/t/x?uploads"),
        ("DELETE", "http://127.0.0.1:9000/demo/ns/t/x"),
        ("GET", "http://demo.127.0.0.1:9000/ns/t/data/a.parquet"),
        (
            "GET",
            "http://127.0.0.1:9000/demo?list-type=2&prefix=ns%2Ft%2Fdata%2F",
        ),
        ("GET", "HTTP://127.0.0.1:9000/demo/ns/t/x"),
    ] {
        assert!(allowed(&rw, &request(method, uri)), "{method} {uri}");
    }
    for (method, uri) in [
        // Another table, a sibling whose name extends this one's, the folder object itself.
        ("GET", "http://127.0.0.1:9000/demo/ns/u/data/a.parquet"),
        ("GET", "http://127.0.0.1:9000/demo/ns/t2/data/a.parquet"),
        ("GET", "http://127.0.0.1:9000/demo/ns/t/"),
        // Walking out, encoded or not.
        ("GET", "http://127.0.0.1:9000/demo/ns/t/../u/x"),
        ("GET", "http://127.0.0.1:9000/demo/ns/t/%2E%2E/u/x"),
        ("GET", "http://127.0.0.1:9000/demo/ns/t/..%2Fu%2Fx"),
        ("GET", "http://127.0.0.1:9000/demo/ns%2Ft%2F..%2Fu/x"),
        ("GET", "http://127.0.0.1:9000/demo/ns/t/a%5C..%5Cb"),
        ("GET", "http://127.0.0.1:9000/demo/ns/t/%00"),
        ("GET", "http://127.0.0.1:9000/demo/ns/t/%zz"),
        // Another bucket, host, scheme, port; user info; fragments.
        ("GET", "http://127.0.0.1:9000/other/ns/t/x"),
        ("GET", "http://evil.example:9000/demo/ns/t/x"),
        ("GET", "https://127.0.0.1:9000/demo/ns/t/x"),
        ("GET", "http://127.0.0.1:9001/demo/ns/t/x"),
        ("GET", "http://user@127.0.0.1:9000/demo/ns/t/x"),
        ("GET", "http://127.0.0.1:9000/demo/ns/t/x#frag"),
        ("GET", "http://other.127.0.0.1:9000/ns/t/x"),
        // Listings outside the folder or without a prefix; ambiguous '+'.
        ("GET", "http://127.0.0.1:9000/demo?list-type=2"),
        ("GET", "http://127.0.0.1:9000/demo?list-type=2&prefix=ns%2F"),
        (
            "GET",
            "http://127.0.0.1:9000/demo?list-type=2&prefix=ns%2Ft",
        ),
        (
            "GET",
            "http://127.0.0.1:9000/demo?list-type=2&prefix=ns/t/+",
        ),
        // Subresources and methods not signed.
        ("GET", "http://127.0.0.1:9000/demo/ns/t/x?acl"),
        ("PUT", "http://127.0.0.1:9000/demo/ns/t/x?tagging"),
        ("GET", "http://127.0.0.1:9000/demo?policy"),
        ("PUT", "http://127.0.0.1:9000/demo"),
        ("DELETE", "http://127.0.0.1:9000/demo"),
        ("PATCH", "http://127.0.0.1:9000/demo/ns/t/x"),
        ("OPTIONS", "http://127.0.0.1:9000/demo/ns/t/x"),
        ("POST", "http://127.0.0.1:9000/demo?delete"),
        ("GET", "/demo/ns/t/x"),
        ("GET", "s3://demo/ns/t/x"),
    ] {
        assert!(!allowed(&rw, &request(method, uri)), "{method} {uri}");
    }
}

#[test]
fn ambiguous_or_unscoped_headers_and_parameters_are_refused() {
    let rw = scope(true);
    let object = "http://127.0.0.1:9000/demo/ns/t/data/a";
    let with = |headers: &[(&str, &[&str])]| {
        let mut req = request("PUT", object);
        for (name, values) in headers {
            req.headers.insert(
                name.to_string(),
                values.iter().map(|v| v.to_string()).collect(),
            );
        }
        allowed(&rw, &req)
    };
    assert!(with(&[
        ("x-amz-meta-owner", &["me"]),
        ("Content-Type", &["text/plain"])
    ]));
    assert!(with(&[("x-amz-checksum-crc32", &["AAAAAA=="])]));
    for header in [
        "x-amz-acl",
        "x-amz-grant-full-control",
        "x-amz-object-lock-mode",
        "x-amz-object-lock-legal-hold",
        "x-amz-bypass-governance-retention",
        "x-amz-tagging",
        "x-amz-server-side-encryption-aws-kms-key-id",
        "x-amz-server-side-encryption-customer-key",
        "x-amz-storage-class",
        "x-amz-website-redirect-location",
        "X-Amz-Acl",
    ] {
        assert!(!with(&[(header, &["x"])]), "{header}");
    }
    // The same header twice (in two spellings), with no value or with two: refused, so the
    // copy source checked is the one signed.
    assert!(!with(&[
        ("X-Amz-Copy-Source", &[]),
        ("x-amz-copy-source", &["demo/ns/u/secret"])
    ]));
    assert!(!with(&[
        ("X-Amz-Copy-Source", &["demo/ns/t/a"]),
        ("x-amz-copy-source", &["demo/ns/u/secret"])
    ]));
    assert!(!with(&[(
        "x-amz-copy-source",
        &["demo/ns/t/a", "demo/ns/u/secret"]
    )]));
    // A parameter twice: which one a store reads is its choice, so neither is signed.
    assert!(!allowed(
        &rw,
        &request(
            "GET",
            "http://127.0.0.1:9000/demo?list-type=2&prefix=ns%2Ft%2F&prefix="
        )
    ));
    assert!(!allowed(
        &rw,
        &request("GET", "http://127.0.0.1:9000/demo/ns/t/a+b")
    ));
}

fn copy_inside() -> SignRequest {
    let mut copy = request("PUT", "http://127.0.0.1:9000/demo/ns/t/data/b");
    copy.headers
        .insert("x-amz-copy-source".into(), vec!["demo/ns/t/data/a".into()]);
    copy
}

#[test]
fn writes_that_must_not_replace_an_object_are_signed_as_creates() {
    let rw = scope(true);
    let keep = SigningScope {
        may_delete: false,
        ..rw.clone()
    };
    let put = request("PUT", "http://127.0.0.1:9000/demo/ns/t/data/a.parquet");
    let complete = request("POST", "http://127.0.0.1:9000/demo/ns/t/data/a?uploadId=u1");
    let part = request(
        "PUT",
        "http://127.0.0.1:9000/demo/ns/t/data/a?partNumber=1&uploadId=u1",
    );
    let start = request("POST", "http://127.0.0.1:9000/demo/ns/t/data/a?uploads");
    let create_only = Some(("If-None-Match", "*"));
    // Where deletes are allowed, data files may be replaced; where not, only created.
    assert_eq!(check(&rw, &put).unwrap(), None);
    assert_eq!(check(&keep, &put).unwrap(), create_only);
    assert_eq!(check(&keep, &complete).unwrap(), create_only);
    assert_eq!(check(&keep, &part).unwrap(), None);
    assert_eq!(check(&keep, &start).unwrap(), None);
    // Metadata files are never replaced, whoever asks.
    let metadata = request(
        "PUT",
        "http://127.0.0.1:9000/demo/ns/t/metadata/00001-x.metadata.json",
    );
    assert_eq!(check(&rw, &metadata).unwrap(), create_only);
    let mut copy = copy_inside();
    assert!(allowed(&rw, &copy));
    copy.uri = "http://127.0.0.1:9000/demo/ns/t/metadata/v2.metadata.json".into();
    assert!(!allowed(&rw, &copy));
    // A client that asks for a create itself needs nothing added; If-Match (a replace) or
    // another If-None-Match is refused.
    let mut asked = metadata.clone();
    asked
        .headers
        .insert("If-None-Match".into(), vec!["*".into()]);
    assert_eq!(check(&rw, &asked).unwrap(), None);
    asked
        .headers
        .insert("If-None-Match".into(), vec!["\"abc\"".into()]);
    assert!(!allowed(&rw, &asked));
    let mut replace = put.clone();
    replace
        .headers
        .insert("If-Match".into(), vec!["\"abc\"".into()]);
    assert!(allowed(&rw, &replace) && !allowed(&keep, &replace));
    // The added header is signed: a request sent without it fails the store's check.
    let key = SigningKey {
        access_key_id: "AKIDEXAMPLE",
        secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        session_token: None,
    };
    let mut with_header = put.clone();
    with_header
        .headers
        .insert("If-None-Match".into(), vec!["*".into()]);
    let signed = sign_request(&keep, &with_header, &key, SystemTime::UNIX_EPOCH).unwrap();
    let plain = sign_request(&keep, &put, &key, SystemTime::UNIX_EPOCH).unwrap();
    let auth = |h: &BTreeMap<String, Vec<String>>| h["authorization"][0].clone();
    assert!(auth(&signed).contains("if-none-match"), "{}", auth(&signed));
    assert_ne!(auth(&signed), auth(&plain));
}

#[test]
fn a_table_that_moved_is_signed_in_each_of_its_folders() {
    let moved = vec!["ns/x1/".to_string(), "ns/x2/".to_string()];
    let scope = SigningScope {
        prefixes: &moved,
        ..scope(true)
    };
    assert!(allowed(
        &scope,
        &request("GET", "http://127.0.0.1:9000/demo/ns/x1/metadata/snap.avro")
    ));
    assert!(allowed(
        &scope,
        &request("GET", "http://127.0.0.1:9000/demo/ns/x2/data/a")
    ));
    assert!(allowed(
        &scope,
        &request(
            "GET",
            "http://127.0.0.1:9000/demo?list-type=2&prefix=ns%2Fx1%2F"
        )
    ));
    assert!(!allowed(
        &scope,
        &request("GET", "http://127.0.0.1:9000/demo/ns/x3/a")
    ));
    assert!(!allowed(
        &scope,
        &request(
            "GET",
            "http://127.0.0.1:9000/demo?list-type=2&prefix=ns%2Fx"
        )
    ));
}

#[test]
fn readers_get_reads_only() {
    let ro = scope(false);
    assert!(allowed(
        &ro,
        &request("GET", "http://127.0.0.1:9000/demo/ns/t/data/a.parquet")
    ));
    for method in ["PUT", "POST", "DELETE"] {
        assert!(!allowed(
            &ro,
            &request(method, "http://127.0.0.1:9000/demo/ns/t/data/a.parquet")
        ));
    }
}

#[test]
fn copies_and_bulk_deletes_are_checked_key_by_key() {
    let rw = scope(true);
    let mut copy = request("PUT", "http://127.0.0.1:9000/demo/ns/t/data/b");
    copy.headers
        .insert("x-amz-copy-source".into(), vec!["demo/ns/t/data/a".into()]);
    assert!(allowed(&rw, &copy));
    copy.headers
        .insert("X-Amz-Copy-Source".into(), vec!["/demo/ns/u/secret".into()]);
    copy.headers.remove("x-amz-copy-source");
    assert!(!allowed(&rw, &copy));

    let mut delete = request("POST", "http://127.0.0.1:9000/demo?delete");
    delete.body = Some(
        "<Delete><Object><Key>ns/t/a</Key></Object><Object><Key>ns/t/b&amp;c</Key></Object></Delete>"
            .into(),
    );
    assert!(allowed(&rw, &delete));
    // While the warehouse has other refs: writes are signed, deletes are not.
    let keep = SigningScope {
        may_delete: false,
        ..rw.clone()
    };
    assert!(!allowed(&keep, &delete));
    let put = request("PUT", "http://127.0.0.1:9000/demo/ns/t/data/c");
    assert!(allowed(&keep, &put));
    // ...but only as creates: copies onto a key are refused.
    assert!(!allowed(&keep, &copy_inside()));
    let one = request("DELETE", "http://127.0.0.1:9000/demo/ns/t/data/c");
    assert!(allowed(&rw, &one) && !allowed(&keep, &one));
    let abort = request(
        "DELETE",
        "http://127.0.0.1:9000/demo/ns/t/data/c?uploadId=u1",
    );
    assert!(allowed(&keep, &abort));
    for body in [
        "<Delete><Object><Key>ns/t/a</Key></Object><Object><Key>ns/u/b</Key></Object></Delete>",
        "<Delete><Object><Key><![CDATA[ns/u/b]]></Key></Object></Delete>",
        "<Delete><Object><Key>ns/t/&#46;&#46;/u/b</Key></Object></Delete>",
        "<Delete xmlns:x=\"urn:x\"><Object><x:Key>ns/u/b</x:Key></Object></Delete>",
        "<!DOCTYPE d [<!ENTITY e \"ns/u/b\">]><Delete><Object><Key>&e;</Key></Object></Delete>",
        "<Delete></Delete>",
        "<Delete><Object><Key>ns/t/a</Key>",
    ] {
        delete.body = Some(body.into());
        assert!(!allowed(&rw, &delete), "{body}");
    }
    assert!(!allowed(&scope(false), &delete));
}

#[test]
fn signatures_match_the_sigv4_test_vector_shape() {
    // The same request signed twice at the same instant gives the same signature, and the
    // headers the client sent itself are not returned again.
    let rw = scope(true);
    let mut req = request("PUT", "http://127.0.0.1:9000/demo/ns/t/data/a");
    req.headers.insert(
        "Content-MD5".into(),
        vec!["1B2M2Y8AsgTpgAmY7PhCfg==".into()],
    );
    req.headers.insert(
        "x-amz-content-sha256".into(),
        vec!["UNSIGNED-PAYLOAD".into()],
    );
    let key = SigningKey {
        access_key_id: "AKID",
        secret_access_key: "secret",
        session_token: Some("token"),
    };
    let at = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
    let a = sign_request(&rw, &req, &key, at).unwrap();
    let b = sign_request(&rw, &req, &key, at).unwrap();
    assert_eq!(a, b);
    let auth = &a["authorization"][0];
    assert!(
        auth.starts_with("AWS4-HMAC-SHA256 Credential=AKID/20231114/us-east-1/s3/aws4_request")
    );
    assert!(auth.contains(
        "SignedHeaders=content-md5;host;x-amz-content-sha256;x-amz-date;x-amz-security-token"
    ));
    assert_eq!(a["x-amz-security-token"], vec!["token".to_string()]);
    assert!(!a.contains_key("x-amz-content-sha256"));
    assert!(!a.contains_key("content-md5"));

    // A checked body is bound by its hash; a client hash that differs is refused.
    let mut delete = request("POST", "http://127.0.0.1:9000/demo?delete");
    delete.body = Some("<Delete><Object><Key>ns/t/a</Key></Object></Delete>".into());
    let signed = sign_request(&rw, &delete, &key, at).unwrap();
    let expected = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(
        delete.body.as_ref().unwrap().as_bytes(),
    ));
    assert_eq!(signed["x-amz-content-sha256"], vec![expected]);
    delete.headers.insert(
        "x-amz-content-sha256".into(),
        vec!["UNSIGNED-PAYLOAD".into()],
    );
    assert!(sign_request(&rw, &delete, &key, at).is_err());
}
