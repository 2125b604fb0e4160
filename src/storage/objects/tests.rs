//! Unit tests of `storage::objects`.

use super::*;
use std::sync::Arc;

fn put(store: &ObjectStore, key: &str, body: &[u8]) -> ObjectInfo {
    let mut p = store.begin().unwrap();
    p.write(body).unwrap();
    store
        .commit(p, key, ObjectMeta::default(), Overwrite::Allow)
        .unwrap()
}

#[test]
fn keys_that_escape_are_refused_and_odd_keys_map_to_paths() {
    for bad in [
        "..",
        "a/../b",
        "/abs",
        "a/./b",
        "a/%2e%2e/b",
        "a/%2E./b",
        "a/..%5cx",
        "a\\..\\b/x",
        "nul\0x",
        ".floe~tmp/x",
    ] {
        assert!(key_path(bad).is_err(), "{bad:?} must be refused");
    }
    assert_eq!(key_path("").unwrap_err(), KeyError::Empty);
    assert_eq!(key_path(&"a".repeat(1025)).unwrap_err(), KeyError::TooLong);
    assert_eq!(key_path("dir/").unwrap(), PathBuf::from("dir/.floe~empty"));
    assert_eq!(key_path("a//b").unwrap(), PathBuf::from("a/.floe~empty/b"));
    assert_eq!(
        key_path("ünï code/100% sure..x").unwrap(),
        PathBuf::from("ünï code/100% sure..x")
    );
}

#[test]
fn listing_follows_key_order_with_prefixes_and_pages() {
    let dir = tempfile::tempdir().unwrap();
    let store = ObjectStore::new(dir.path().to_path_buf());
    for key in ["a/x", "a-b", "a/y/z", "b", "dir/", "dir/in", "c d%"] {
        put(&store, key, key.as_bytes());
    }
    std::fs::create_dir_all(dir.path().join("empty/deeper")).unwrap();
    let all = store.list("", None, None, 1000, &[]).unwrap();
    let keys: Vec<_> = all.objects.iter().map(|o| o.key.as_str()).collect();
    assert_eq!(keys, ["a-b", "a/x", "a/y/z", "b", "c d%", "dir/", "dir/in"]);
    assert!(all.next_marker.is_none());

    let grouped = store.list("", Some("/"), None, 1000, &[]).unwrap();
    let keys: Vec<_> = grouped.objects.iter().map(|o| o.key.as_str()).collect();
    assert_eq!(keys, ["a-b", "b", "c d%"]);
    assert_eq!(grouped.common_prefixes, ["a/", "dir/"]);

    let under = store.list("a/", Some("/"), None, 1000, &[]).unwrap();
    assert_eq!(under.objects.len(), 1);
    assert_eq!(under.common_prefixes, ["a/y/"]);

    let partial = store.list("a", None, None, 1000, &[]).unwrap();
    assert_eq!(partial.objects.len(), 3);

    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = store.list("", None, after.as_deref(), 2, &[]).unwrap();
        seen.extend(page.objects.iter().map(|o| o.key.clone()));
        match page.next_marker {
            Some(m) => after = Some(m),
            None => break,
        }
    }
    assert_eq!(seen.len(), 7, "{seen:?}");
}

#[test]
fn a_create_only_write_never_replaces_other_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let store = ObjectStore::new(dir.path().to_path_buf());
    put(&store, "t/data/a.parquet", b"first");
    let write = |body: &[u8]| {
        let mut p = store.begin().unwrap();
        p.write(body).unwrap();
        store.commit(
            p,
            "t/data/a.parquet",
            ObjectMeta::default(),
            Overwrite::Never,
        )
    };
    assert!(matches!(write(b"other"), Err(ObjectError::Replace)));
    assert!(matches!(write(b"first longer"), Err(ObjectError::Replace)));
    // The same bytes again (a retried PUT) succeed and change nothing.
    assert_eq!(write(b"first").unwrap().size, 5);
    let (mut file, _) = store.open("t/data/a.parquet").unwrap();
    let mut body = Vec::new();
    std::io::Read::read_to_end(&mut file, &mut body).unwrap();
    assert_eq!(body, b"first");
    // A new key is created; no temporary file is left behind by the refusals.
    let mut p = store.begin().unwrap();
    p.write(b"new").unwrap();
    store
        .commit(
            p,
            "t/data/b.parquet",
            ObjectMeta::default(),
            Overwrite::Never,
        )
        .unwrap();
    let leftovers = std::fs::read_dir(dir.path().join(TMP_DIR)).unwrap().count();
    assert_eq!(leftovers, 0);
}

#[test]
fn a_scoped_listing_names_nothing_outside_its_folders() {
    let dir = tempfile::tempdir().unwrap();
    let store = ObjectStore::new(dir.path().to_path_buf());
    for key in [
        "ns/t/a",
        "ns/t/sub/b",
        "ns/t2/x",
        "ns/t.x/y",
        "ns/t-z",
        "ns/u/secret",
    ] {
        put(&store, key, key.as_bytes());
    }
    let scope = vec!["ns/t/".to_string()];
    // The folder without its slash, with a delimiter: only the folder itself rolls up.
    let listed = store.list("ns/t", Some("/"), None, 1000, &scope).unwrap();
    assert!(listed.objects.is_empty());
    assert_eq!(listed.common_prefixes, ["ns/t/"]);
    // Without a delimiter: the folder's keys and nothing that merely starts like it.
    let listed = store.list("ns/t", None, None, 1000, &scope).unwrap();
    let keys: Vec<_> = listed.objects.iter().map(|o| o.key.as_str()).collect();
    assert_eq!(keys, ["ns/t/a", "ns/t/sub/b"]);
    // Paging by one: every marker is the folder's own, and the last page says so.
    let mut markers = Vec::new();
    let mut after: Option<String> = Some("ns/a".into());
    loop {
        let page = store
            .list("ns/t", None, after.as_deref(), 1, &scope)
            .unwrap();
        for o in &page.objects {
            assert!(o.key.starts_with("ns/t/"), "{}", o.key);
        }
        match page.next_marker {
            Some(m) => {
                markers.push(m.clone());
                after = Some(m);
            }
            None => break,
        }
    }
    assert!(
        markers.iter().all(|m| m.starts_with("ns/t/")),
        "{markers:?}"
    );
    // A start after the folder's last key ends the listing without naming the next table.
    let past = store
        .list("ns/t", None, Some("ns/t/sub/b"), 1, &scope)
        .unwrap();
    assert!(past.objects.is_empty() && past.next_marker.is_none());
    // Two folders (a table that moved): both, and nothing between.
    let moved = vec!["ns/t/".to_string(), "ns/u/".to_string()];
    let listed = store.list("ns/", Some("/"), None, 1000, &moved).unwrap();
    assert_eq!(listed.common_prefixes, ["ns/t/", "ns/u/"]);
    assert!(listed.objects.is_empty());
}

#[test]
fn writes_and_deletes_racing_in_one_folder_all_succeed() {
    // Deleting a folder's last object removes the folder; writers re-creating it at the same
    // time must neither fail nor lose their object.
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(ObjectStore::new(dir.path().to_path_buf()));
    let threads: Vec<_> = ["a", "b", "c", "d"]
        .into_iter()
        .map(|name| {
            let store = store.clone();
            std::thread::spawn(move || {
                let key = format!("x/y/z/{name}");
                for round in 0..400 {
                    let mut p = store.begin().unwrap();
                    p.write(name.as_bytes()).unwrap();
                    let overwrite = if round % 2 == 0 {
                        Overwrite::Allow
                    } else {
                        Overwrite::IfAbsent
                    };
                    store
                        .commit(p, &key, ObjectMeta::default(), overwrite)
                        .unwrap_or_else(|e| panic!("{key} round {round}: {e:?}"));
                    assert_eq!(store.head(&key).unwrap().size, 1);
                    store.delete(&key).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert!(
        !dir.path().join("x").exists(),
        "the emptied folders are gone"
    );
}

#[test]
fn writes_are_whole_and_if_absent_refuses_a_second() {
    let dir = tempfile::tempdir().unwrap();
    let store = ObjectStore::new(dir.path().to_path_buf());
    let first = put(&store, "k", b"one");
    assert_eq!(
        first.meta.etag,
        hex::encode(super::super::md5::digest(b"one"))
    );
    let mut p = store.begin().unwrap();
    p.write(b"two").unwrap();
    let err = store
        .commit(p, "k", ObjectMeta::default(), Overwrite::IfAbsent)
        .unwrap_err();
    assert!(matches!(err, ObjectError::AlreadyExists));
    let (mut f, info) = store.open("k").unwrap();
    let mut s = String::new();
    f.read_to_string(&mut s).unwrap();
    assert_eq!((s.as_str(), info.meta.etag), ("one", first.meta.etag));
    assert_eq!(
        std::fs::read_dir(dir.path().join(TMP_DIR)).unwrap().count(),
        0,
        "no temporary file is left"
    );
    store.delete("k").unwrap();
    assert!(matches!(store.head("k"), Err(ObjectError::NoSuchKey)));
}
