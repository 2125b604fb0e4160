//! The rules for names: general names (projects, namespace levels, tables, views), warehouse
//! names, and the bucket a warehouse is on the S3 gateway.

use super::MAX_NAME_BYTES;
use crate::error::{Error, Result};

/// Checks a general name (project, namespace level, table, view): non-empty, at most
/// [`MAX_NAME_BYTES`], no control characters (NUL and the `0x1F` namespace separator included),
/// not made only of `/`, and not `.` or `..` (names become parts of storage paths).
pub fn validate_name(what: &str, name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(Error::bad_request(format!("{what} must not be empty")));
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(Error::bad_request(format!(
            "{what} is {} bytes long; the limit is {MAX_NAME_BYTES}",
            name.len()
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(Error::bad_request(format!(
            "{what} must not contain control characters (NUL, 0x1F...)"
        )));
    }
    if name.chars().all(|c| c == '/') {
        return Err(Error::bad_request(format!(
            "{what} must not consist only of '/'"
        )));
    }
    if name == "." || name == ".." {
        return Err(Error::bad_request(format!(
            "{what} must not be '.' or '..'"
        )));
    }
    if name.trim() != name {
        return Err(Error::bad_request(format!(
            "{what} must not start or end with whitespace"
        )));
    }
    Ok(())
}

/// Checks a warehouse name: the names other catalogs accept (`analytics_prod`, `Sales`, ...),
/// within [`validate_name`]'s rules, without `/` (a warehouse is one segment of the catalog's
/// paths and one folder of the local warehouses) or `@` (a client's `warehouse` setting may be
/// followed by `@branch`). Gateway-served warehouses need a bucket name: see
/// [`gateway_bucket_name`].
pub fn validate_warehouse_name(name: &str) -> Result<()> {
    validate_name("warehouse name", name)?;
    if name.contains('/') || name.contains('@') || name.contains('\\') {
        return Err(Error::bad_request(format!(
            "warehouse name {name:?} is invalid: it must not contain '/', '\\' or '@' \
             ('@' separates a branch in a client's warehouse setting)"
        )));
    }
    Ok(())
}

/// Whether `name` follows S3's bucket rules without dots: 3 to 63 characters of `a-z`, `0-9` and
/// `-`, starting and ending with a letter or digit (what every S3 client accepts, virtual-host
/// style included).
pub fn is_bucket_safe(name: &str) -> bool {
    (3..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && name
            .bytes()
            .next()
            .zip(name.bytes().last())
            .is_some_and(|(a, b)| a.is_ascii_alphanumeric() && b.is_ascii_alphanumeric())
}

/// The bucket a warehouse is on the S3 gateway: its name when that is bucket-safe, else a
/// bucket-safe form of it with a hash of the whole name (`Sales` -> `sales-4c2e...`), the same
/// on every instance and every start. The gateway finds a request's warehouse from its access
/// key, never from the bucket, so two warehouses whose buckets are named alike (in two projects,
/// or a name chosen to equal another's derived bucket) still never reach each other's files.
pub fn gateway_bucket_name(name: &str) -> String {
    if is_bucket_safe(name) {
        return name.to_string();
    }
    let mut base = String::with_capacity(name.len());
    for c in name.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            base.push(c);
        } else if !base.ends_with('-') {
            base.push('-');
        }
    }
    let base: String = base.trim_matches('-').chars().take(44).collect();
    let base = base.trim_end_matches('-');
    use sha2::Digest as _;
    let hash = hex::encode(&sha2::Sha256::digest(name.as_bytes())[..6]);
    if base.is_empty() {
        format!("wh-{hash}")
    } else {
        format!("{base}-{hash}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_reject_the_documented_cases() {
        for bad in ["", "\0", "a\u{1f}b", "/", "///", ".", "..", " a", "a\n"] {
            assert!(validate_name("name", bad).is_err(), "{bad:?} accepted");
        }
        assert!(validate_name("name", &"x".repeat(MAX_NAME_BYTES + 1)).is_err());
        for good in [
            "a",
            "a/b",
            "sales.eu",
            "Ünïcode ✓",
            "a b",
            &"x".repeat(MAX_NAME_BYTES),
        ] {
            assert!(validate_name("name", good).is_ok(), "{good:?} rejected");
        }
    }

    #[test]
    fn warehouse_names_are_what_other_catalogs_accept() {
        for good in [
            "demo",
            "my-warehouse-1",
            "analytics_prod",
            "Sales",
            "a",
            "de.mo",
            "Data Lake",
            "café",
            &"a".repeat(64),
        ] {
            assert!(validate_warehouse_name(good).is_ok(), "{good:?}");
        }
        for bad in [
            "", "demo@dev", "a/b", "a\\b", ".", "..", "a\u{0}b", " lead", "trail ",
        ] {
            assert!(validate_warehouse_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn gateway_buckets_are_bucket_safe_and_stable() {
        assert_eq!(gateway_bucket_name("demo"), "demo");
        assert_eq!(gateway_bucket_name("my-warehouse-1"), "my-warehouse-1");
        for name in [
            "Sales",
            "analytics_prod",
            "a",
            "Data Lake",
            "café",
            "__",
            &"X".repeat(200),
        ] {
            let bucket = gateway_bucket_name(name);
            assert!(is_bucket_safe(&bucket), "{name:?} -> {bucket:?}");
            assert_eq!(bucket, gateway_bucket_name(name), "not stable");
        }
        assert!(gateway_bucket_name("analytics_prod").starts_with("analytics-prod-"));
        // Names that differ only in case or separators get different buckets.
        assert_ne!(gateway_bucket_name("Sales"), gateway_bucket_name("SALES"));
        assert_ne!(gateway_bucket_name("a_b"), gateway_bucket_name("a b"));
        assert_ne!(gateway_bucket_name("Sales"), "sales");
    }
}
