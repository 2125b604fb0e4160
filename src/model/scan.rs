//! Server-side scan plans held for a client (the Iceberg REST spec's plan ids).

/// Where a held plan stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlanState {
    /// Being split into plan tasks.
    Submitted,
    Completed,
    Cancelled,
    Failed,
}

impl PlanState {
    pub fn as_str(self) -> &'static str {
        match self {
            PlanState::Submitted => "submitted",
            PlanState::Completed => "completed",
            PlanState::Cancelled => "cancelled",
            PlanState::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<PlanState> {
        Some(match s {
            "submitted" => PlanState::Submitted,
            "completed" => PlanState::Completed,
            "cancelled" => PlanState::Cancelled,
            "failed" => PlanState::Failed,
            _ => return None,
        })
    }
}

/// A held plan. Times are unix milliseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanPlan {
    /// Random, and the only handle a client has on it.
    pub id: String,
    /// The table planned (plans are found through their table).
    pub table_uuid: uuid::Uuid,
    /// Who submitted it; no one else sees it.
    pub principal: String,
    pub state: PlanState,
    /// What the state holds: the plan tasks once completed, the error once failed (JSON).
    pub detail: Option<String>,
    pub created_at: i64,
    pub expires_at: i64,
}
