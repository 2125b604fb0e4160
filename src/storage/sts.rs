//! Vended credentials for S3 warehouses through STS `AssumeRole`: the warehouse's credential
//! assumes the warehouse's role with an inline session policy that allows one table's folder and
//! nothing else, so the temporary key is no wider than the table whatever the role allows.
//!
//! Table and namespace names become part of the policy. In IAM policies `*` and `?` are wildcards
//! and `${...}` is a policy variable, so those characters are written as IAM's own escapes
//! (`${*}`, `${?}`, `${$}`); quotes and other JSON syntax are escaped by building the policy as a
//! JSON value, never by formatting strings.

use std::time::Duration;

use aws_sdk_sts::config::{Credentials, Region};
use aws_sdk_sts::error::ProvideErrorMetadata;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::model::FileAccess;

/// A temporary key from STS.
#[derive(Clone)]
pub struct TemporaryKey {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: String,
    pub expires_at: DateTime<Utc>,
}

impl std::fmt::Debug for TemporaryKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TemporaryKey")
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// Escapes the characters IAM reads as wildcards or variables in resources and `StringLike`.
pub fn escape_policy_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '*' => out.push_str("${*}"),
            '?' => out.push_str("${?}"),
            '$' => out.push_str("${$}"),
            c => out.push(c),
        }
    }
    out
}

/// The ARN partition of an AWS region (China and GovCloud regions have their own).
pub fn arn_partition(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else if region.starts_with("us-isob-") {
        "aws-iso-b"
    } else if region.starts_with("us-iso-") {
        "aws-iso"
    } else {
        "aws"
    }
}

/// The session policy for one table's folders (each prefix ends in `/`: where the table is, and
/// where it was before a `set-location`) of `bucket` in `region`.
///
/// What S3 itself then enforces: reads, listings and (for writers) writes inside the folders
/// only; deletes only with `FileAccess::Full`; and metadata files (`*.metadata.json`) written
/// only as creates (`If-None-Match: *`), never replaced. What it cannot: refusing to replace a
/// data file under `FileAccess::NoDelete`, since S3 can refuse a plain PUT only by refusing every
/// PUT without `If-None-Match`, which engines do not send (see README).
pub fn table_policy(bucket: &str, prefixes: &[String], access: FileAccess, region: &str) -> Value {
    let partition = arn_partition(region);
    let bucket = escape_policy_text(bucket);
    let prefixes: Vec<String> = prefixes.iter().map(|p| escape_policy_text(p)).collect();
    let mut object_actions = vec!["s3:GetObject", "s3:GetObjectVersion"];
    if access.may_write() {
        object_actions.extend([
            "s3:PutObject",
            "s3:AbortMultipartUpload",
            "s3:ListMultipartUploadParts",
        ]);
    }
    if access.may_delete() {
        object_actions.push("s3:DeleteObject");
    }
    let objects: Vec<String> = prefixes
        .iter()
        .map(|prefix| format!("arn:{partition}:s3:::{bucket}/{prefix}*"))
        .collect();
    let listed: Vec<String> = prefixes.iter().map(|prefix| format!("{prefix}*")).collect();
    let mut statements = vec![
        json!({
            "Sid": "TableObjects",
            "Effect": "Allow",
            "Action": object_actions,
            "Resource": objects,
        }),
        json!({
            "Sid": "TableListing",
            "Effect": "Allow",
            "Action": ["s3:ListBucket", "s3:ListBucketMultipartUploads"],
            "Resource": [format!("arn:{partition}:s3:::{bucket}")],
            "Condition": {"StringLike": {"s3:prefix": listed}},
        }),
        json!({
            "Sid": "BucketLocation",
            "Effect": "Allow",
            "Action": ["s3:GetBucketLocation"],
            "Resource": [format!("arn:{partition}:s3:::{bucket}")],
        }),
    ];
    if access.may_write() {
        // A PutObject, CopyObject or CompleteMultipartUpload of a metadata file without
        // `If-None-Match` (which S3 honours as "create only") is denied; the parts of a multipart
        // upload (`s3:ObjectCreationOperation` false) are not.
        let metadata: Vec<String> = prefixes
            .iter()
            .map(|prefix| format!("arn:{partition}:s3:::{bucket}/{prefix}*.metadata.json"))
            .collect();
        statements.push(json!({
            "Sid": "MetadataFilesAreNeverReplaced",
            "Effect": "Deny",
            "Action": ["s3:PutObject"],
            "Resource": metadata,
            "Condition": {
                "Null": {"s3:if-none-match": "true"},
                "Bool": {"s3:ObjectCreationOperation": "true"},
            },
        }));
    }
    json!({
        "Version": "2012-10-17",
        "Statement": statements,
    })
}

/// What `AssumeRole` needs.
pub struct AssumeRole<'a> {
    pub endpoint: Option<&'a str>,
    pub region: &'a str,
    pub access_key_id: &'a str,
    pub secret_access_key: &'a str,
    pub role_arn: &'a str,
    pub session_name: &'a str,
    pub policy: &'a Value,
    pub duration: Duration,
}

/// Calls STS `AssumeRole`. Errors name STS's error code and message, never the credential.
pub async fn assume_role(request: AssumeRole<'_>) -> Result<TemporaryKey> {
    let mut config = aws_sdk_sts::Config::builder()
        .region(Region::new(request.region.to_string()))
        .credentials_provider(Credentials::new(
            request.access_key_id,
            request.secret_access_key,
            None,
            None,
            "floe-warehouse",
        ))
        .retry_config(aws_sdk_sts::config::retry::RetryConfig::standard().with_max_attempts(3))
        .timeout_config(
            aws_sdk_sts::config::timeout::TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(5))
                .operation_attempt_timeout(Duration::from_secs(15))
                .operation_timeout(Duration::from_secs(45))
                .build(),
        );
    if let Some(endpoint) = request.endpoint {
        config = config.endpoint_url(endpoint);
    }
    let client = aws_sdk_sts::Client::from_conf(config.build());
    let answer = client
        .assume_role()
        .role_arn(request.role_arn)
        .role_session_name(request.session_name)
        .policy(request.policy.to_string())
        .duration_seconds(request.duration.as_secs().min(43_200) as i32)
        .send()
        .await
        .map_err(|e| {
            let text = match e.as_service_error() {
                Some(service) => format!(
                    "{}: {}",
                    service.code().unwrap_or("error"),
                    service.message().unwrap_or("no message")
                ),
                None => format!("STS could not be reached ({e})"),
            };
            Error::unavailable(
                format!("vending credentials: STS AssumeRole failed: {text}"),
                std::io::Error::other(text),
            )
        })?;
    let credentials = answer.credentials().ok_or_else(|| {
        Error::unavailable(
            "vending credentials: STS AssumeRole answered without credentials",
            std::io::Error::other("no credentials"),
        )
    })?;
    let expiration = credentials.expiration();
    let expires_at = DateTime::from_timestamp(expiration.secs(), 0).unwrap_or_else(Utc::now);
    Ok(TemporaryKey {
        access_key_id: credentials.access_key_id().to_string(),
        secret_access_key: credentials.secret_access_key().to_string(),
        session_token: credentials.session_token().to_string(),
        expires_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(prefix: &str) -> Vec<String> {
        vec![prefix.to_string()]
    }

    #[test]
    fn policy_metacharacters_in_names_stay_literal() {
        let policy = table_policy(
            "bucket",
            &one("wh/ns*/t?$\"x'%/"),
            FileAccess::ReadOnly,
            "us-east-1",
        );
        let text = policy.to_string();
        // The one resource is the folder itself, its wildcard-like characters escaped.
        let resource = policy["Statement"][0]["Resource"][0].as_str().unwrap();
        assert_eq!(resource, "arn:aws:s3:::bucket/wh/ns${*}/t${?}${$}\"x'%/*");
        let listing = policy["Statement"][1]["Condition"]["StringLike"]["s3:prefix"][0]
            .as_str()
            .unwrap();
        assert_eq!(listing, "wh/ns${*}/t${?}${$}\"x'%/*");
        // The quote could not end the string: the document parses back to the same value.
        assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), policy);
        // The only unescaped wildcard is the trailing one Floe adds.
        assert_eq!(resource.matches('*').count(), 2);
        assert!(resource.ends_with("/*"));
        // Read-only keys get no write action.
        let actions = policy["Statement"][0]["Action"].to_string();
        assert!(!actions.contains("Put") && !actions.contains("Delete"));
        let rw = table_policy("bucket", &one("wh/t/"), FileAccess::Full, "us-east-1");
        let actions = rw["Statement"][0]["Action"].to_string();
        assert!(actions.contains("s3:PutObject") && actions.contains("s3:DeleteObject"));
        // While other refs exist: writes, no deletes.
        let keep = table_policy("bucket", &one("wh/t/"), FileAccess::NoDelete, "us-east-1");
        let actions = keep["Statement"][0]["Action"].to_string();
        assert!(actions.contains("s3:PutObject") && !actions.contains("Delete"));
    }

    #[test]
    fn every_folder_is_allowed_and_metadata_files_are_created_only() {
        let folders = vec!["wh/x1/".to_string(), "wh/x2/".to_string()];
        let policy = table_policy("bucket", &folders, FileAccess::Full, "us-east-1");
        assert_eq!(
            policy["Statement"][0]["Resource"],
            json!(["arn:aws:s3:::bucket/wh/x1/*", "arn:aws:s3:::bucket/wh/x2/*"])
        );
        assert_eq!(
            policy["Statement"][1]["Condition"]["StringLike"]["s3:prefix"],
            json!(["wh/x1/*", "wh/x2/*"])
        );
        let deny = &policy["Statement"][3];
        assert_eq!(deny["Effect"], "Deny");
        assert_eq!(deny["Action"], json!(["s3:PutObject"]));
        assert_eq!(
            deny["Resource"],
            json!([
                "arn:aws:s3:::bucket/wh/x1/*.metadata.json",
                "arn:aws:s3:::bucket/wh/x2/*.metadata.json"
            ])
        );
        assert_eq!(deny["Condition"]["Null"]["s3:if-none-match"], "true");
        assert_eq!(
            deny["Condition"]["Bool"]["s3:ObjectCreationOperation"],
            "true"
        );
        // Readers cannot write at all, so they need no deny.
        let read = table_policy("bucket", &folders, FileAccess::ReadOnly, "us-east-1");
        assert_eq!(read["Statement"].as_array().unwrap().len(), 3);
    }

    #[test]
    fn policy_variables_cannot_be_injected() {
        let policy = table_policy(
            "bucket",
            &one("${aws:username}/t/"),
            FileAccess::Full,
            "us-east-1",
        );
        let resource = policy["Statement"][0]["Resource"][0].as_str().unwrap();
        assert_eq!(resource, "arn:aws:s3:::bucket/${$}{aws:username}/t/*");
        // Other partitions name their own ARNs.
        let china = table_policy("bucket", &one("t/"), FileAccess::ReadOnly, "cn-north-1");
        assert_eq!(
            china["Statement"][0]["Resource"][0],
            "arn:aws-cn:s3:::bucket/t/*"
        );
        assert_eq!(
            table_policy("bucket", &one("t/"), FileAccess::ReadOnly, "us-gov-west-1")["Statement"]
                [1]["Resource"][0],
            "arn:aws-us-gov:s3:::bucket"
        );
    }
}
