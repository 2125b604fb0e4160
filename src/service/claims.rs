//! The service's side of folder claims (the store holds the claims and checks them again inside
//! each commit's transaction): early checks that a table's location is free, that a new table
//! brings a UUID of its own, and that the files a client names are the table's.

use super::Services;
use super::commit::OpenWarehouse;
use super::metadata::{file_outside_error, files_outside};
use crate::error::{Entity, Error, Result};
use crate::model::TabularKind;
use crate::storage::Location;

impl Services {
    /// Refuses a table location that overlaps another table's folder, or a folder another table
    /// still claims (one it moved away from, or a dropped table's that is not purged): equal to
    /// it, inside it, or (for `explicit` locations, which can be anything) containing it. A key
    /// vended for one table must never reach another's files. The table's own claims (`uuid`)
    /// do not count.
    pub(crate) async fn check_location_is_free(
        &self,
        wh: &OpenWarehouse,
        location: &Location,
        explicit: bool,
        uuid: uuid::Uuid,
    ) -> Result<()> {
        let Some(prefixes) = folder_and_parents(&wh.base, location) else {
            return Ok(());
        };
        if let Some(other) = self
            .store
            .tabulars
            .overlapping_table(
                wh.warehouse.id,
                &prefixes,
                explicit.then_some(location.as_str()),
                Some(uuid),
            )
            .await?
        {
            return Err(Error::bad_request(format!(
                "location {location} overlaps the folder of another table at {other}; every \
                 table needs a folder of its own"
            )));
        }
        Ok(())
    }
}

impl Services {
    /// Refuses a new table (a create, or a registered file) whose UUID another table of the
    /// warehouse already has or had: folder claims belong to a UUID, so a table that borrowed
    /// another's UUID could move into that table's folders. Registering a version the warehouse
    /// recorded for that very UUID (bringing a dropped table back) is the one exception. Answers
    /// whether the UUID is new to the warehouse.
    pub(crate) async fn check_new_uuid(
        &self,
        wh: &OpenWarehouse,
        uuid: uuid::Uuid,
        registered: Option<&Location>,
    ) -> Result<bool> {
        if !self
            .store
            .tabulars
            .uuid_known(wh.warehouse.id, uuid, None)
            .await?
        {
            return Ok(true);
        }
        // Only while no row of that UUID lives on this branch: two tables of one UUID on one
        // line would share claims, and purging one would delete the other's files.
        if let Some(file) = registered
            && self
                .store
                .tabulars
                .recorded_version(wh.warehouse.id, uuid, file.as_str())
                .await?
            && !self
                .store
                .tabulars
                .lines_holding(wh.warehouse.id, uuid)
                .await?
                .contains(&wh.branch.id)
        {
            return Ok(false);
        }
        Err(Error::already_exists(
            Entity::Table,
            format!(
                "a table with UUID {uuid} exists or existed in this warehouse; a new table needs \
                 a UUID of its own"
            ),
        ))
    }

    /// Refuses files a commit or a registered table points at (manifest lists, statistics) that
    /// lie outside the table's folders: its location, and the folders the table `uuid` claims.
    pub(crate) async fn check_files_are_the_tables(
        &self,
        wh: &OpenWarehouse,
        uuid: uuid::Uuid,
        location: &Location,
        files: &[(String, &str)],
    ) -> Result<()> {
        if files.is_empty() {
            return Ok(());
        }
        if files_outside(files, std::slice::from_ref(location)).is_empty() {
            return Ok(());
        }
        let folders = self.table_folders(wh.warehouse.id, uuid, location).await?;
        match files_outside(files, &folders).first() {
            None => Ok(()),
            Some((what, path)) => Err(file_outside_error(what, path)),
        }
    }
}

impl Services {
    /// A table's folders: where it is (`location`), and every folder the table `uuid` claims
    /// (where it was before a `set-location`). What Floe reads for a table stays inside them.
    pub(crate) async fn table_folders(
        &self,
        warehouse: crate::model::WarehouseId,
        uuid: uuid::Uuid,
        location: &Location,
    ) -> Result<Vec<Location>> {
        let mut folders = vec![location.clone()];
        for folder in self
            .store
            .tabulars
            .claimed_folders(warehouse, uuid, Some(TabularKind::Table))
            .await?
        {
            if let Ok(folder) = Location::parse(&folder) {
                folders.push(folder);
            }
        }
        Ok(folders)
    }
}

/// A folder of the warehouse and each folder above it, up to (not including) the warehouse's base;
/// `None` outside the warehouse.
pub(super) fn folder_and_parents(base: &Location, location: &Location) -> Option<Vec<String>> {
    let relative = location.relative_to(base)?;
    let parts: Vec<&str> = relative.split('/').filter(|p| !p.is_empty()).collect();
    let base = base.as_str().trim_end_matches('/');
    Some(
        (1..=parts.len())
            .map(|i| format!("{base}/{}", parts[..i].join("/")))
            .collect(),
    )
}
