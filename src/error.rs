//! The one error type that crosses layers: a transport-neutral [`ErrorKind`], a lowercase message meant
//! for the caller, and an optional source chain meant only for the logs.
//!
//! The HTTP edge (`api::error`) is the one place that turns a kind into a status code and an Iceberg
//! `ErrorModel`; nothing below `api/` knows about HTTP. This module depends on nothing else in Floe.

use std::fmt;

/// What kind of thing an error is about; it picks the Iceberg exception type (`NoSuchTableException`...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entity {
    Server,
    Project,
    Warehouse,
    Ref,
    Namespace,
    Table,
    View,
    Secret,
    AccessKey,
    User,
    Role,
    Task,
    DeletedTabular,
    /// A held scan plan (`NoSuchPlanIdException`).
    PlanId,
    /// A scan plan's task (`NoSuchPlanTaskException`).
    PlanTask,
}

impl Entity {
    pub fn as_str(self) -> &'static str {
        match self {
            Entity::Server => "server",
            Entity::Project => "project",
            Entity::Warehouse => "warehouse",
            Entity::Ref => "ref",
            Entity::Namespace => "namespace",
            Entity::Table => "table",
            Entity::View => "view",
            Entity::Secret => "secret",
            Entity::AccessKey => "access key",
            Entity::User => "user",
            Entity::Role => "role",
            Entity::Task => "task",
            Entity::DeletedTabular => "soft-deleted table or view",
            Entity::PlanId => "scan plan",
            Entity::PlanTask => "plan task",
        }
    }
}

/// The condition, independent of any transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The caller's input is malformed or invalid.
    BadRequest,
    /// Well-formed input that cannot be processed (e.g. a key both updated and removed).
    Unprocessable,
    /// The request body is larger than the configured limit.
    PayloadTooLarge,
    NotFound(Entity),
    AlreadyExists(Entity),
    /// The entity still holds children (a namespace with tables, a warehouse with namespaces...).
    NotEmpty(Entity),
    /// A state conflict that retrying the same request will not fix (e.g. already bootstrapped).
    Conflict,
    /// A compare-and-swap lost: the client should refresh and retry.
    CommitConflict,
    Unauthenticated,
    Forbidden,
    /// The server has not been bootstrapped yet.
    NotBootstrapped,
    /// A dependency (database, object store) is not reachable right now.
    Unavailable,
    /// A dependency answered with an error of its own (an object store's 5xx or refusal): the
    /// message names it, and the caller sees it.
    BadGateway,
    /// A disk Floe writes to (a local warehouse, gateway objects, the embedded database) or the
    /// database server is full; writes work again once space is freed.
    InsufficientStorage,
    /// A bug or an unexpected failure; details go to the log only.
    Internal,
}

/// Floe's error: a kind, a message for the caller, and an optional cause for the log.
pub struct Error {
    pub kind: ErrorKind,
    pub message: String,
    pub source: Option<anyhow::Error>,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            source: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::BadRequest, message)
    }

    pub fn unprocessable(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unprocessable, message)
    }

    pub fn not_found(entity: Entity, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound(entity), message)
    }

    pub fn already_exists(entity: Entity, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::AlreadyExists(entity), message)
    }

    pub fn not_empty(entity: Entity, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotEmpty(entity), message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Conflict, message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Forbidden, message)
    }

    pub fn unavailable(message: impl Into<String>, source: impl Into<anyhow::Error>) -> Self {
        Self::new(ErrorKind::Unavailable, message).with_source(source)
    }

    /// An internal error: `context` is logged with the cause; the caller sees only an error id.
    /// A cause that is a full disk makes it [`ErrorKind::InsufficientStorage`] instead.
    pub fn internal(context: impl Into<String>, source: impl Into<anyhow::Error>) -> Self {
        let source = source.into();
        let full = source.chain().any(|cause| {
            cause
                .downcast_ref::<std::io::Error>()
                .is_some_and(is_storage_full)
        });
        let kind = if full {
            ErrorKind::InsufficientStorage
        } else {
            ErrorKind::Internal
        };
        Self::new(kind, context).with_source(source)
    }

    /// A dependency answered with an error; `message` names it (no secret ever goes in it).
    pub fn bad_gateway(message: impl Into<String>, source: impl Into<anyhow::Error>) -> Self {
        Self::new(ErrorKind::BadGateway, message).with_source(source)
    }

    /// A disk or the database is full (the cause is logged; the caller is told only that).
    pub fn insufficient_storage(
        context: impl Into<String>,
        source: impl Into<anyhow::Error>,
    ) -> Self {
        Self::new(ErrorKind::InsufficientStorage, context).with_source(source)
    }

    pub fn with_source(mut self, source: impl Into<anyhow::Error>) -> Self {
        self.source = Some(source.into());
        self
    }

    pub fn is_server_error(&self) -> bool {
        matches!(
            self.kind,
            ErrorKind::Internal | ErrorKind::Unavailable | ErrorKind::InsufficientStorage
        )
    }
}

/// Whether an I/O error says the disk (or the user's quota, or the file size limit) is full.
pub fn is_storage_full(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::StorageFull
            | std::io::ErrorKind::QuotaExceeded
            | std::io::ErrorKind::FileTooLarge
    )
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.kind, self.message)?;
        if let Some(source) = &self.source {
            write!(f, ": {source:#}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_ref().map(|e| e.as_ref() as _)
    }
}
