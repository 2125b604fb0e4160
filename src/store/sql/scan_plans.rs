//! `ScanPlanStore`: scan plans held for clients, one row each, forgotten at expiry.

macro_rules! stamp {
    ($store:ty, $row:ty, $for_update:literal, $location_lock:literal) => {
        use async_trait::async_trait;
        use sqlx::Row as _;

        use crate::error::{Entity, Error, Result};
        use crate::model::WarehouseId;
        use crate::model::events::CloudEvent;
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

            async fn planning_mode(&self, warehouse: WarehouseId) -> Result<Option<String>> {
                let row: Option<Option<String>> =
                    sqlx::query_scalar("SELECT scan_planning_mode FROM warehouses WHERE id = $1")
                        .bind(warehouse.0)
                        .fetch_optional(&self.read)
                        .await
                        .map_err(|e| db_error("reading a scan planning mode", e))?;
                row.ok_or_else(|| {
                    Error::not_found(
                        Entity::Warehouse,
                        format!("warehouse {warehouse} does not exist"),
                    )
                })
            }

            async fn set_planning_mode(
                &self,
                warehouse: WarehouseId,
                mode: Option<&str>,
                events: &[CloudEvent],
            ) -> Result<()> {
                let failed = |e| db_error("setting a scan planning mode", e);
                let mut tx = self.write.begin().await.map_err(failed)?;
                let done =
                    sqlx::query("UPDATE warehouses SET scan_planning_mode = $1 WHERE id = $2")
                        .bind(mode)
                        .bind(warehouse.0)
                        .execute(&mut *tx)
                        .await
                        .map_err(failed)?;
                if done.rows_affected() == 0 {
                    return Err(Error::not_found(
                        Entity::Warehouse,
                        format!("warehouse {warehouse} does not exist"),
                    ));
                }
                super::events::write_events(&mut *tx, events).await?;
                tx.commit().await.map_err(failed)
            }
        }
    };
}

pub(crate) use stamp;
