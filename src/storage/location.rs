//! Storage locations (`file:///abs/path`, `s3://bucket/key`) in one normalized form, and the rules
//! that keep every location a client can influence inside the place it belongs: no `.`/`..`
//! segments (plain or percent-encoded), no empty segments, no control characters, no backslashes,
//! and containment checked on path boundaries (`/wh/t` does not contain `/wh/t2`).

use std::fmt;
use std::path::PathBuf;

use crate::error::{Error, Result};

/// A validated, normalized storage location without a trailing slash.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Location(String);

impl Location {
    /// Parses and normalizes a location. Accepts `file:/p`, `file:///p` and `s3://bucket/key`
    /// (`s3a://` and `s3n://` are read as `s3://`).
    pub fn parse(text: &str) -> Result<Location> {
        let bad = |why: &str| Error::bad_request(format!("location {text:?} is invalid: {why}"));
        if text.chars().any(|c| c.is_control()) {
            return Err(bad("it contains control characters"));
        }
        if text.contains('\\') {
            return Err(bad("it contains a backslash"));
        }
        let lower = text.to_ascii_lowercase();
        for encoded in ["%2e", "%2f", "%5c", "%00"] {
            if lower.contains(encoded) {
                return Err(bad("it contains a percent-encoded '.', '/', '\\' or NUL"));
            }
        }
        let (scheme, rest) = text
            .split_once(':')
            .ok_or_else(|| bad("it has no scheme (file:// or s3://)"))?;
        let scheme = scheme.to_ascii_lowercase();
        let (scheme, authority, path) = match scheme.as_str() {
            "file" => {
                let path = if let Some(after) = rest.strip_prefix("//") {
                    // file://host/path: only an empty host is local.
                    if !after.starts_with('/') {
                        return Err(bad("file locations must not name a host"));
                    }
                    after
                } else {
                    rest
                };
                if !path.starts_with('/') {
                    return Err(bad("file locations must be absolute"));
                }
                if path.contains('%') {
                    return Err(bad("file locations must not contain '%'"));
                }
                ("file", String::new(), path.to_string())
            }
            "s3" | "s3a" | "s3n" => {
                let after = rest
                    .strip_prefix("//")
                    .ok_or_else(|| bad("s3 locations look like s3://bucket/key"))?;
                let (bucket, key) = after.split_once('/').unwrap_or((after, ""));
                if bucket.is_empty() {
                    return Err(bad("it names no bucket"));
                }
                ("s3", bucket.to_string(), format!("/{key}"))
            }
            _ => return Err(bad("only file:// and s3:// locations are supported")),
        };
        let trimmed = path.trim_end_matches('/');
        if scheme == "file" && trimmed.is_empty() {
            return Err(bad("it names the filesystem's root"));
        }
        let segments: Vec<&str> = trimmed.split('/').skip(1).collect();
        for segment in &segments {
            if segment.is_empty() {
                return Err(bad("it contains an empty path segment ('//')"));
            }
            if *segment == "." || *segment == ".." {
                return Err(bad("it contains a '.' or '..' segment"));
            }
        }
        let normalized = match scheme {
            "file" => format!("file://{trimmed}"),
            _ => format!("s3://{authority}{trimmed}"),
        };
        Ok(Location(normalized))
    }

    /// The location of a local directory (which must be absolute).
    pub fn from_local_path(path: &std::path::Path) -> Result<Location> {
        Location::parse(&format!("file://{}", path.display()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `self` is `base` or lies below it, on a path boundary.
    pub fn is_within(&self, base: &Location) -> bool {
        self.0 == base.0
            || (self.0.starts_with(&base.0) && self.0.as_bytes().get(base.0.len()) == Some(&b'/'))
    }

    /// The part of `self` below `base` (no leading '/'), when `self` is within `base`.
    pub fn relative_to(&self, base: &Location) -> Option<String> {
        if !self.is_within(base) {
            return None;
        }
        Some(self.0[base.0.len()..].trim_start_matches('/').to_string())
    }

    /// The bucket and key of an `s3://` location.
    pub fn bucket_and_key(&self) -> Option<(&str, &str)> {
        let rest = self.0.strip_prefix("s3://")?;
        Some(rest.split_once('/').unwrap_or((rest, "")))
    }

    /// A child location; `segment` may hold several `/`-separated segments, each checked.
    pub fn join(&self, segment: &str) -> Result<Location> {
        Location::parse(&format!("{}/{}", self.0, segment.trim_matches('/')))
    }

    /// The local file-system path of a `file://` location.
    pub fn local_path(&self) -> Option<PathBuf> {
        self.0.strip_prefix("file://").map(PathBuf::from)
    }

    /// The last path segment.
    pub fn file_name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or("")
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Turns a name into a path segment that is safe on every store and in every client's URI
/// handling: ASCII letters, digits, `_` and `-` kept, everything else `_`, at most 64 bytes.
/// Uniqueness comes from elsewhere (a table's location ends in a fresh id).
pub fn path_segment(name: &str) -> String {
    let mut segment: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    if segment.is_empty() {
        segment.push('_');
    }
    segment
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_schemes_and_slashes() {
        assert_eq!(
            Location::parse("file:/a/b").unwrap().as_str(),
            "file:///a/b"
        );
        assert_eq!(
            Location::parse("file:///a/b/").unwrap().as_str(),
            "file:///a/b"
        );
        assert_eq!(
            Location::parse("s3a://bkt/k/x/").unwrap().as_str(),
            "s3://bkt/k/x"
        );
        assert_eq!(Location::parse("s3://bkt").unwrap().as_str(), "s3://bkt");
        // The filesystem's root is no location (it would normalize to `file://`, which does not
        // read back); found by tests/it/properties.rs.
        assert!(Location::parse("file:///").is_err());
        assert!(Location::parse("file:////").is_err());
        assert_eq!(
            Location::parse("file:///a/b")
                .unwrap()
                .local_path()
                .unwrap(),
            PathBuf::from("/a/b")
        );
    }

    #[test]
    fn rejects_path_tricks() {
        for bad in [
            "file:///a/../b",
            "file:///a/./b",
            "file:///a/%2e%2e/b",
            "file:///a/%2E%2E/b",
            "file:///a/b%2fc",
            "file:///a//b",
            "file://host/a",
            "file:relative",
            "file:///a\\b",
            "file:///a\u{0}b",
            "file:///a%20b",
            "s3:///key",
            "s3://b/a/../c",
            "hdfs://x/y",
            "/no/scheme",
        ] {
            assert!(Location::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn containment_respects_path_boundaries() {
        let base = Location::parse("file:///wh/t").unwrap();
        assert!(Location::parse("file:///wh/t").unwrap().is_within(&base));
        assert!(
            Location::parse("file:///wh/t/data/x.parquet")
                .unwrap()
                .is_within(&base)
        );
        assert!(!Location::parse("file:///wh/t2").unwrap().is_within(&base));
        assert!(!Location::parse("file:///wh").unwrap().is_within(&base));
        assert!(!Location::parse("s3://wh/t").unwrap().is_within(&base));
        assert!(base.join("metadata/x.json").unwrap().is_within(&base));
        assert!(base.join("../escape").is_err());
    }

    #[test]
    fn path_segments_are_tame() {
        assert_eq!(path_segment("orders"), "orders");
        assert_eq!(path_segment("a b/c.d%"), "a_b_c_d_");
        assert_eq!(path_segment(".."), "__");
        assert_eq!(path_segment("日本"), "__");
        assert_eq!(path_segment(&"x".repeat(100)).len(), 64);
    }
}
