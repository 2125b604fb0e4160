//! `ScanPlanStore`: scan plans held for clients, one row each, forgotten at expiry.

macro_rules! stamp {
    ($store:ty, $row:ty, $for_update:literal, $location_lock:literal) => {
        use async_trait::async_trait;
        use sqlx::Row as _;

        use crate::error::{Error, Result};
        use crate::model::scan::{PlanState, ScanPlan};
        use crate::store::{ScanPlanStore, db_error};

        #[async_trait]
        impl ScanPlanStore for $store {
            async fn insert_plan(&self, plan: &ScanPlan) -> Result<()> {
                let failed = |e| db_error("holding a scan plan", e);
                sqlx::query("DELETE FROM scan_plans WHERE expires_at < $1")
                    .bind(plan.created_at)
                    .execute(&self.write)
                    .await
                    .map_err(failed)?;
                sqlx::query(
                    "INSERT INTO scan_plans (id, table_uuid, principal, state, detail, \
                     created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(&plan.id)
                .bind(plan.table_uuid.to_string())
                .bind(&plan.principal)
                .bind(plan.state.as_str())
                .bind(&plan.detail)
                .bind(plan.created_at)
                .bind(plan.expires_at)
                .execute(&self.write)
                .await
                .map_err(failed)?;
                Ok(())
            }

            async fn get_plan(&self, id: &str, now: i64) -> Result<Option<ScanPlan>> {
                let failed = |e| db_error("reading a scan plan", e);
                let row = sqlx::query(
                    "SELECT id, table_uuid, principal, state, detail, created_at, expires_at \
                     FROM scan_plans WHERE id = $1 AND expires_at >= $2",
                )
                .bind(id)
                .bind(now)
                .fetch_optional(&self.write)
                .await
                .map_err(failed)?;
                let Some(row) = row else { return Ok(None) };
                let table: String = row.try_get("table_uuid").map_err(failed)?;
                let state: String = row.try_get("state").map_err(failed)?;
                let corrupt = |what: &str| {
                    Error::internal(
                        "reading a scan plan",
                        anyhow::anyhow!("plan {id} has an invalid {what}"),
                    )
                };
                Ok(Some(ScanPlan {
                    id: row.try_get("id").map_err(failed)?,
                    table_uuid: table.parse().map_err(|_| corrupt("table uuid"))?,
                    principal: row.try_get("principal").map_err(failed)?,
                    state: PlanState::parse(&state).ok_or_else(|| corrupt("state"))?,
                    detail: row.try_get("detail").map_err(failed)?,
                    created_at: row.try_get("created_at").map_err(failed)?,
                    expires_at: row.try_get("expires_at").map_err(failed)?,
                }))
            }

            async fn finish_plan(&self, id: &str, state: PlanState, detail: &str) -> Result<bool> {
                let done = sqlx::query(
                    "UPDATE scan_plans SET state = $1, detail = $2 \
                     WHERE id = $3 AND state = 'submitted'",
                )
                .bind(state.as_str())
                .bind(detail)
                .bind(id)
                .execute(&self.write)
                .await
                .map_err(|e| db_error("finishing a scan plan", e))?;
                Ok(done.rows_affected() == 1)
            }

            async fn cancel_plan(&self, id: &str, now: i64) -> Result<bool> {
                let done = sqlx::query(
                    "UPDATE scan_plans SET state = 'cancelled', detail = NULL \
                     WHERE id = $1 AND expires_at >= $2",
                )
                .bind(id)
                .bind(now)
                .execute(&self.write)
                .await
                .map_err(|e| db_error("cancelling a scan plan", e))?;
                Ok(done.rows_affected() == 1)
            }
        }
    };
}

pub(crate) use stamp;
