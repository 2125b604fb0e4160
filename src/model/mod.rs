//! The shared vocabulary of Floe: ids, validated names, and the records every layer talks about
//! (projects, warehouses, storage profiles, refs, namespaces).
//!
//! This is the ground floor: it depends only on `error` and on serialization crates, never on HTTP,
//! SQL or any other Floe module.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{Error, Result};

mod authz_ids;
pub mod events;
pub mod idempotency;
pub mod lifecycle;
mod names;
mod operation;
mod queued;
mod refs;
pub mod scan;
pub mod v3_types;

pub use authz_ids::{parse_tabular_object_id, tabular_object_id};
pub use names::{gateway_bucket_name, is_bucket_safe, validate_name, validate_warehouse_name};
pub use operation::{Action, DataAccess, Operation, Permission, Route, Surface};
pub use queued::Queued;
use refs::{HIDDEN_REF_MARK, is_hidden_ref_name};
pub use refs::{RefSelector, WarehouseRef, WarehouseSelector};

macro_rules! id_type {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A new, time-ordered (UUIDv7) id.
            pub fn new() -> Self {
                $name(Uuid::now_v7())
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl std::str::FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
                Uuid::parse_str(s).map($name)
            }
        }
    };
}

id_type!(ProjectId);
id_type!(WarehouseId);
id_type!(RefId);
id_type!(NamespaceId);
id_type!(SecretId);
id_type!(TabularId);
id_type!(
    /// A commit of a warehouse's branching index.
    CommitId
);

/// The longest name (a project name, a namespace level, a table name), in UTF-8 bytes.
pub const MAX_NAME_BYTES: usize = 255;
/// The deepest namespace.
pub const MAX_NAMESPACE_LEVELS: usize = 16;
/// The longest property key, in UTF-8 bytes.
pub const MAX_PROPERTY_KEY_BYTES: usize = 1024;
/// The longest property value, in UTF-8 bytes.
pub const MAX_PROPERTY_VALUE_BYTES: usize = 64 * 1024;
/// The name of the branch every warehouse starts with.
pub const MAIN_BRANCH: &str = "main";
/// How long a purged table's folders stay claimed after the purge began: longer than any
/// credential Floe vends for a table lives (gateway keys: an hour from a 15-minute window; STS
/// keys: an hour), so no key still valid for the old folders reaches a table placed there later.
pub const CLAIM_RELEASE_GRACE: std::time::Duration = std::time::Duration::from_secs(90 * 60);
/// The most folders a table may claim at once (where it is and where it was): every one is in
/// each key, signing scope and STS session policy vended for it, and AWS limits a session policy
/// to 2,048 characters.
pub const MAX_TABLE_FOLDERS: usize = 4;

/// Checks a property map: keys non-empty and bounded, no NUL anywhere (PostgreSQL cannot store it).
pub fn validate_properties<'a>(
    keys_and_values: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
) -> Result<()> {
    for (key, value) in keys_and_values {
        if key.is_empty() {
            return Err(Error::bad_request("property keys must not be empty"));
        }
        if key.len() > MAX_PROPERTY_KEY_BYTES {
            return Err(Error::bad_request(format!(
                "property key is {} bytes long; the limit is {MAX_PROPERTY_KEY_BYTES}",
                key.len()
            )));
        }
        if key.contains('\0') {
            return Err(Error::bad_request("property keys must not contain NUL"));
        }
        if let Some(value) = value {
            if value.len() > MAX_PROPERTY_VALUE_BYTES {
                return Err(Error::bad_request(format!(
                    "value of property {key:?} is {} bytes long; the limit is {MAX_PROPERTY_VALUE_BYTES}",
                    value.len()
                )));
            }
            if value.contains('\0') {
                return Err(Error::bad_request(format!(
                    "value of property {key:?} must not contain NUL"
                )));
            }
        }
    }
    Ok(())
}

/// A validated, multi-level namespace name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct NamespaceIdent(Vec<String>);

impl NamespaceIdent {
    /// The separator between levels in storage keys and in the `%1F`-encoded path parameter.
    pub const SEPARATOR: char = '\u{1f}';

    pub fn new(levels: Vec<String>) -> Result<Self> {
        if levels.is_empty() {
            return Err(Error::bad_request("namespace must have at least one level"));
        }
        if levels.len() > MAX_NAMESPACE_LEVELS {
            return Err(Error::bad_request(format!(
                "namespace has {} levels; the limit is {MAX_NAMESPACE_LEVELS}",
                levels.len()
            )));
        }
        for level in &levels {
            validate_name("namespace level", level)?;
        }
        Ok(NamespaceIdent(levels))
    }

    /// Parses the `0x1F`-separated form used in URL paths (`a%1Fb`) and in the store.
    pub fn from_joined(joined: &str) -> Result<Self> {
        Self::new(joined.split(Self::SEPARATOR).map(str::to_owned).collect())
    }

    /// The `0x1F`-separated form; unique per namespace, sorts parents before children.
    pub fn joined(&self) -> String {
        self.0.join("\u{1f}")
    }

    pub fn levels(&self) -> &[String] {
        &self.0
    }

    pub fn parent(&self) -> Option<NamespaceIdent> {
        (self.0.len() > 1).then(|| NamespaceIdent(self.0[..self.0.len() - 1].to_vec()))
    }
}

impl fmt::Display for NamespaceIdent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join("."))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Project {
    pub id: ProjectId,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Where a warehouse keeps its files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum StorageProfile {
    /// A directory on the server's local file system.
    #[serde(rename_all = "kebab-case")]
    Local {
        /// Absolute path of the warehouse's root directory.
        #[schema(value_type = String)]
        root: PathBuf,
        /// Serve the warehouse through Floe's built-in S3 gateway: tables live at
        /// `s3://<bucket>/...`, engines get short-lived keys scoped to one table, and no local
        /// path reaches a client. The bucket is the warehouse's name when that is a valid S3
        /// bucket name, else a bucket-safe form of it (`Sales_Prod` -> `sales-prod-<hash>`); the
        /// warehouse cannot be renamed (its table locations name the bucket).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        s3_gateway: bool,
    },
    /// An S3 bucket (AWS or any S3-compatible store).
    #[serde(rename_all = "kebab-case")]
    S3 {
        bucket: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        key_prefix: Option<String>,
        region: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        endpoint: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        path_style_access: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sts_enabled: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sts_role_arn: Option<String>,
        /// STS endpoint (`http(s)://...`); the AWS default for the region when unset.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sts_endpoint: Option<String>,
        /// Serve the warehouse through Floe's built-in S3 gateway, in front of this bucket: tables
        /// live at `s3://<warehouse>/...`, engines get the gateway's endpoint and keys scoped to
        /// one table, and the bucket's own credential never leaves Floe (no STS needed at the
        /// store). As for local warehouses, the name must be a valid bucket name and the
        /// warehouse cannot be renamed.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        s3_gateway: bool,
    },
}

impl StorageProfile {
    /// Validates the profile's own fields (not whether the store is reachable).
    pub fn validate(&self) -> Result<()> {
        match self {
            StorageProfile::Local { root, .. } => {
                if !root.is_absolute() {
                    return Err(Error::bad_request(format!(
                        "local storage root {root:?} must be an absolute path"
                    )));
                }
                let text = root.to_string_lossy();
                if text.contains('\0') {
                    return Err(Error::bad_request(
                        "local storage root must not contain NUL",
                    ));
                }
                if root
                    .components()
                    .any(|c| matches!(c, std::path::Component::ParentDir))
                {
                    return Err(Error::bad_request(
                        "local storage root must not contain '..' components",
                    ));
                }
                Ok(())
            }
            StorageProfile::S3 {
                bucket,
                key_prefix,
                region,
                endpoint,
                sts_role_arn,
                sts_enabled,
                sts_endpoint,
                ..
            } => {
                let bucket_ok = (3..=63).contains(&bucket.len())
                    && bucket.bytes().all(|b| {
                        b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.'
                    });
                if !bucket_ok {
                    return Err(Error::bad_request(format!(
                        "s3 bucket name {bucket:?} is invalid"
                    )));
                }
                if region.is_empty() || region.chars().any(|c| c.is_control() || c == '/') {
                    return Err(Error::bad_request("s3 region must be a region name"));
                }
                if let Some(prefix) = key_prefix
                    && (prefix.chars().any(char::is_control)
                        || prefix.split('/').any(|part| part == ".." || part == "."))
                {
                    return Err(Error::bad_request(
                        "s3 key-prefix must not contain control characters or '.'/'..' segments",
                    ));
                }
                if let Some(endpoint) = endpoint
                    && !(endpoint.starts_with("http://") || endpoint.starts_with("https://"))
                {
                    return Err(Error::bad_request(
                        "s3 endpoint must be an http:// or https:// URL",
                    ));
                }
                if sts_enabled == &Some(true) && sts_role_arn.as_deref().unwrap_or("").is_empty() {
                    return Err(Error::bad_request("sts-enabled requires sts-role-arn"));
                }
                if let Some(endpoint) = sts_endpoint
                    && !(endpoint.starts_with("http://") || endpoint.starts_with("https://"))
                {
                    return Err(Error::bad_request(
                        "sts-endpoint must be an http:// or https:// URL",
                    ));
                }
                Ok(())
            }
        }
    }

    /// Where the profile's files are, as one comparable text: `file:<root>/` for local roots,
    /// `s3:<endpoint>|<bucket>/<prefix>/` for S3 (the endpoint lower-cased, `aws` for AWS's own).
    /// Two profiles overlap when one's text starts with the other's.
    pub fn storage_key(&self) -> String {
        match self {
            StorageProfile::Local { root, .. } => {
                let root = root.to_string_lossy();
                format!("file:{}/", root.trim_end_matches('/'))
            }
            StorageProfile::S3 {
                bucket,
                key_prefix,
                endpoint,
                ..
            } => {
                let endpoint = endpoint
                    .as_deref()
                    .map(|e| e.trim_end_matches('/').to_ascii_lowercase())
                    .unwrap_or_else(|| "aws".to_string());
                let prefix = key_prefix
                    .as_deref()
                    .unwrap_or("")
                    .split('/')
                    .filter(|part| !part.is_empty())
                    .map(|part| format!("{part}/"))
                    .collect::<String>();
                format!("s3:{endpoint}|{bucket}/{prefix}")
            }
        }
    }

    /// Whether Floe's S3 gateway serves the warehouse (as the bucket named after it).
    pub fn gateway_served(&self) -> bool {
        match self {
            StorageProfile::Local { s3_gateway, .. } | StorageProfile::S3 { s3_gateway, .. } => {
                *s3_gateway
            }
        }
    }

    /// Whether the two profiles' files could meet: the same local root or bucket and prefix, or
    /// one inside the other. Warehouses never overlap, so that no warehouse (nor a key scoped to
    /// one) reaches another's files.
    pub fn overlaps(&self, other: &StorageProfile) -> bool {
        let (a, b) = (self.storage_key(), other.storage_key());
        a.starts_with(&b) || b.starts_with(&a)
    }
}

/// A credential for a warehouse's store. Stored only through the `SecretStore`; never returned.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum StorageCredential {
    #[serde(rename_all = "kebab-case")]
    S3AccessKey {
        access_key_id: String,
        secret_access_key: String,
    },
}

impl fmt::Debug for StorageCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StorageCredential::S3AccessKey { .. } => f.write_str("S3AccessKey(<redacted>)"),
        }
    }
}

impl StorageCredential {
    pub fn validate(&self) -> Result<()> {
        match self {
            StorageCredential::S3AccessKey {
                access_key_id,
                secret_access_key,
            } => {
                if access_key_id.is_empty() || secret_access_key.is_empty() {
                    return Err(Error::bad_request(
                        "s3-access-key needs a non-empty access-key-id and secret-access-key",
                    ));
                }
                Ok(())
            }
        }
    }

    /// Checks that this kind of credential fits the profile.
    pub fn check_fits(&self, profile: &StorageProfile) -> Result<()> {
        match (self, profile) {
            (StorageCredential::S3AccessKey { .. }, StorageProfile::S3 { .. }) => Ok(()),
            (StorageCredential::S3AccessKey { .. }, StorageProfile::Local { .. }) => Err(
                Error::bad_request("a local storage profile takes no storage credential"),
            ),
        }
    }
}

/// An S3 access key of the built-in gateway that opens one whole warehouse. Its secret is derived
/// from the id with the server's key and never stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessKey {
    pub id: String,
    pub warehouse_id: WarehouseId,
    pub description: Option<String>,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    /// The user who created it (`None` on an open server, or for keys older than identity).
    pub created_by: Option<String>,
}

/// A role: a named group of users (and of other roles' assignees) that grants can name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Role {
    pub id: Uuid,
    pub name: String,
    pub description: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// One relationship of the authorization model: `subject` has `relation` on `object`, where the
/// subject is a user (`user:<id>`) or the assignees of a role (`role:<id>#assignee`), and the
/// object an object of the model (`warehouse:<id>`, `role:<id>`...).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Relationship {
    pub object_type: String,
    pub object_id: String,
    pub relation: String,
    pub subject_type: String,
    pub subject_id: String,
    /// `assignee` for a role's assignees; `None` for a user.
    pub subject_relation: Option<String>,
}

/// Whether a user is a person or a program.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UserKind {
    Human,
    Machine,
}

impl UserKind {
    pub fn as_str(self) -> &'static str {
        match self {
            UserKind::Human => "human",
            UserKind::Machine => "machine",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "human" => Some(UserKind::Human),
            "machine" => Some(UserKind::Machine),
            _ => None,
        }
    }
}

/// A user Floe knows: recorded on first successful authentication, or provisioned ahead of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// `<provider>~<subject>`.
    pub id: String,
    pub name: Option<String>,
    pub email: Option<String>,
    pub kind: UserKind,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// When a token of this user was last accepted by a Floe instance that had not seen them yet
    /// (recorded on first sight per instance, not on every request).
    pub last_seen_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warehouse {
    pub id: WarehouseId,
    pub project_id: ProjectId,
    pub name: String,
    pub storage_profile: StorageProfile,
    /// Id of the storage credential in the `SecretStore`, if the warehouse has one.
    pub credential_secret_id: Option<SecretId>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RefKind {
    Branch,
    Tag,
}

impl RefKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RefKind::Branch => "branch",
            RefKind::Tag => "tag",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "branch" => Some(RefKind::Branch),
            "tag" => Some(RefKind::Tag),
            _ => None,
        }
    }
}

/// A named ref (branch or tag) of a warehouse. A branch is also a line of the branching index
/// (docs/branching.md): every namespace, table and view row belongs to one, and the line numbers
/// its commits with `head_seq`. A tag names a commit and holds no rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ref {
    pub id: RefId,
    pub warehouse_id: WarehouseId,
    pub name: String,
    pub kind: RefKind,
    pub created_at: DateTime<Utc>,
    /// The line and seq a branch forked at (`None` for `main` and for tags).
    pub parent: Option<(RefId, i64)>,
    /// The seq of the line's last commit (0 before its first).
    pub head_seq: i64,
    /// The branch's current commit, or the commit a tag names.
    pub head_commit: Option<CommitId>,
    /// That commit's generation (its distance from the warehouse's root commit).
    pub head_generation: i64,
}

impl Ref {
    /// The `main` branch of a new warehouse (its root commit is written with it).
    pub fn new_main(warehouse: WarehouseId, at: DateTime<Utc>) -> Ref {
        Ref {
            id: RefId::new(),
            warehouse_id: warehouse,
            name: MAIN_BRANCH.to_string(),
            kind: RefKind::Branch,
            created_at: at,
            parent: None,
            head_seq: 0,
            head_commit: Some(CommitId::new()),
            head_generation: 0,
        }
    }

    /// Whether clients never see this ref by its name: the read-only ref a commit is read
    /// through, and a deleted or reset branch kept for its history.
    pub fn is_hidden(&self) -> bool {
        is_hidden_ref_name(&self.name)
    }

    /// The name of the hidden read-only ref that reads a warehouse as of `commit`.
    pub fn commit_ref_name(commit: CommitId) -> String {
        format!("{HIDDEN_REF_MARK}{commit}")
    }

    /// The name a deleted or reset branch `name` keeps for its history (unique, hidden).
    pub fn retired_name(name: &str) -> String {
        format!(
            "{HIDDEN_REF_MARK}{name}{HIDDEN_REF_MARK}{}",
            Uuid::new_v4().simple()
        )
    }

    /// How a client addresses this ref after `@`: `main`, a branch or tag by its name, a
    /// commit's ref by the commit's id.
    pub fn selector(&self) -> RefSelector {
        if self.name == MAIN_BRANCH {
            RefSelector::Main
        } else {
            RefSelector::Named(
                self.name
                    .strip_prefix(HIDDEN_REF_MARK)
                    .unwrap_or(&self.name)
                    .to_string(),
            )
        }
    }
}

/// An encrypted secret as the database keeps it; `secrets::DbSecretStore` seals and opens it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedSecret {
    pub nonce: Vec<u8>,
    pub ciphertext: Vec<u8>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Where a secret kept outside the catalog database lives (`secrets::VaultSecretStore`): the
/// database holds this reference, never the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretRef {
    /// Which store holds it (`vault`).
    pub store: String,
    pub mount: String,
    pub path: String,
    /// The version the catalog reads; a change writes a new one and then moves this.
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A request a client asks Floe to sign (remote signing; both the legacy and the current
/// request shape).
#[derive(Debug, Clone)]
pub struct SignRequest {
    pub method: String,
    pub uri: String,
    pub headers: BTreeMap<String, Vec<String>>,
    pub body: Option<String>,
}

/// What a key of the branching index names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ContentKind {
    Namespace,
    Table,
    View,
}

/// What a merge does when both sides changed something in ways that do not compose.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MergeStrategy {
    /// Change nothing and report every conflict.
    #[default]
    Fail,
    /// Take the source's version.
    SourceWins,
    /// Keep the target's version.
    TargetWins,
}

/// Who made a catalog change and why: recorded on the commit it becomes, and in the change's
/// events (`events::commit_events`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitMeta {
    pub author: String,
    pub message: String,
    /// The request that made the change (its events carry it).
    pub request_id: String,
    /// How the change is announced.
    pub event: CommitEvent,
    /// More data for a name's event, by `events::detail_key` (a table commit's updates).
    pub event_data: std::collections::BTreeMap<String, serde_json::Value>,
}

/// What kind of change a commit's events describe, beyond what its changes say.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum CommitEvent {
    /// Each change as it is: created, committed (replaced), dropped.
    #[default]
    Changes,
    /// A drop and a create that are one rename.
    Rename,
    /// A create that registers existing metadata.
    Register,
    /// A merge from `source`.
    Merge { source: String },
    /// No events (none are published: `events.backends` is empty).
    Silent,
}

impl CommitMeta {
    pub fn new(author: impl Into<String>, message: impl Into<String>) -> Self {
        CommitMeta {
            author: author.into(),
            message: message.into(),
            request_id: String::new(),
            event: CommitEvent::Changes,
            event_data: Default::default(),
        }
    }

    /// The same, with `data` added to the event of the name (`namespace`, and `name` for a
    /// table or view).
    pub fn with_event_data(
        mut self,
        namespace: &[String],
        name: &Option<String>,
        data: serde_json::Value,
    ) -> Self {
        self.event_data
            .insert(events::detail_key(namespace, name), data);
        self
    }

    /// The same, announced as `event`.
    pub fn announced_as(mut self, event: CommitEvent) -> Self {
        if self.event != CommitEvent::Silent {
            self.event = event;
        }
        self
    }
}

/// What one commit did to one name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct CommitChange {
    /// `namespace`, `table` or `view`.
    pub kind: String,
    /// The namespace (of a table or view: the one it is in), level by level.
    pub namespace: Vec<String>,
    /// The table's or view's name (absent for a namespace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `create`, `update` or `drop` (a rename is a drop and a create).
    pub op: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata_location: Option<String>,
}

/// One commit of a warehouse's branching index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    pub id: CommitId,
    pub warehouse_id: WarehouseId,
    /// The line it was written on and its seq there.
    pub line: RefId,
    pub seq: i64,
    pub parents: Vec<CommitId>,
    pub generation: i64,
    pub message: String,
    pub author: String,
    pub created_at: DateTime<Utc>,
    pub changes: Vec<CommitChange>,
}

/// Where a branch forks from or a tag points: a commit and the (line, seq) point it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForkPoint {
    pub line: RefId,
    pub seq: i64,
    pub commit: CommitId,
    pub generation: i64,
}

pub type Properties = BTreeMap<String, String>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Namespace {
    pub id: NamespaceId,
    pub warehouse_id: WarehouseId,
    pub ref_id: RefId,
    pub ident: NamespaceIdent,
    pub properties: Properties,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Tables and views share one name space per namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TabularKind {
    Table,
    View,
}

impl TabularKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TabularKind::Table => "table",
            TabularKind::View => "view",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "table" => Some(TabularKind::Table),
            "view" => Some(TabularKind::View),
            _ => None,
        }
    }

    pub fn entity(self) -> crate::error::Entity {
        match self {
            TabularKind::Table => crate::error::Entity::Table,
            TabularKind::View => crate::error::Entity::View,
        }
    }
}

/// A validated table or view name within its namespace.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TabularIdent {
    pub namespace: NamespaceIdent,
    pub name: String,
}

impl TabularIdent {
    pub fn new(namespace: NamespaceIdent, name: String) -> Result<Self> {
        validate_name("table or view name", &name)?;
        Ok(TabularIdent { namespace, name })
    }
}

impl fmt::Display for TabularIdent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.namespace, self.name)
    }
}

/// A table's or view's pointer as the catalog keeps it: where its current metadata file is, and
/// that metadata itself (JSON), so loading never re-reads storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tabular {
    pub id: TabularId,
    pub warehouse_id: WarehouseId,
    pub ref_id: RefId,
    pub ident: TabularIdent,
    pub kind: TabularKind,
    /// The table's or view's own UUID (from its metadata).
    pub uuid: Uuid,
    /// Base location of the table or view.
    pub location: String,
    pub metadata_location: String,
    /// The current metadata, as JSON (shared, never copied on the way to a response).
    pub metadata: bytes::Bytes,
    /// Counts commits; the compare-and-swap token.
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What the server knows about itself once bootstrapped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerInfo {
    pub server_id: Uuid,
    pub bootstrapped_at: DateTime<Utc>,
    pub default_project_id: ProjectId,
    /// The user who bootstrapped the server (its first admin), when authentication was on.
    pub admin: Option<String>,
}

/// One page of a listing: items and the key to continue after, if there is more.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

/// Paging request: start after `after` (exclusive), at most `limit` items.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    pub after: Option<String>,
    pub limit: Option<u32>,
}

impl PageRequest {
    pub fn all() -> Self {
        PageRequest {
            after: None,
            limit: None,
        }
    }
}

/// Current time, truncated to microseconds so that every backend stores and returns the same value.
pub fn now() -> DateTime<Utc> {
    let now = Utc::now();
    DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_ident_round_trips_through_the_separator() {
        let ns = NamespaceIdent::new(vec!["a".into(), "b.c".into()]).unwrap();
        assert_eq!(ns.joined(), "a\u{1f}b.c");
        assert_eq!(NamespaceIdent::from_joined(&ns.joined()).unwrap(), ns);
        assert_eq!(ns.parent().unwrap().levels(), ["a"]);
        assert!(NamespaceIdent::new(vec![]).is_err());
        assert!(NamespaceIdent::new(vec!["a".into(); MAX_NAMESPACE_LEVELS + 1]).is_err());
        assert!(NamespaceIdent::from_joined("a\u{1f}").is_err());
    }

    #[test]
    fn storage_profiles_are_validated() {
        let local = |p: &str| StorageProfile::Local {
            root: p.into(),
            s3_gateway: false,
        };
        assert!(local("/data/wh").validate().is_ok());
        assert!(local("relative").validate().is_err());
        assert!(local("/data/../etc").validate().is_err());
        let s3: StorageProfile = serde_json::from_value(serde_json::json!({
            "type": "s3", "bucket": "lake", "region": "us-east-1", "key-prefix": "a/../b"
        }))
        .unwrap();
        assert!(s3.validate().is_err());
        let creds = StorageCredential::S3AccessKey {
            access_key_id: "AKIA".into(),
            secret_access_key: "very-secret".into(),
        };
        assert!(!format!("{creds:?}").contains("very-secret"));
    }
}

/// What a client may do with a table's files (vended keys, STS session policies, remote signing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileAccess {
    /// Read and list only: through a tag or a commit, or for callers that may not commit.
    ReadOnly,
    /// Read and write, but delete nothing: while the warehouse has branches, tags or commit
    /// reads, a file a line no longer uses may be one another line still reads.
    NoDelete,
    /// Read, write and delete.
    Full,
}

impl FileAccess {
    pub fn may_write(self) -> bool {
        self != FileAccess::ReadOnly
    }

    pub fn may_delete(self) -> bool {
        self == FileAccess::Full
    }
}
