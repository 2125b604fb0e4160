//! Replaying an appended snapshot onto another parent, as Iceberg's own commit retry does: the new
//! snapshot's manifest list is the new parent's manifests plus the manifests the snapshot added
//! (those in its list and not in its parent's), which take the new snapshot's sequence number.
//! Bytes in, bytes out (the manifest list Avro files); reading and writing them is the caller's.
//!
//! A snapshot can be replayed only if it kept every manifest of its own parent and added new ones
//! (a fast append). One that rewrote its parent's manifests (a merge append folds existing entries
//! into a new manifest) would bring those entries twice, so it is refused. Manifests the new parent
//! already lists are not added again: a snapshot an earlier merge replayed onto the target brings
//! only what the target lacks, and a snapshot that brings nothing new is not replayed at all.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use iceberg::io::FileWrite;
use iceberg::spec::{FormatVersion, ManifestFile, ManifestList, ManifestListWriter};

/// Collects what the manifest list writer writes.
struct Collect(Arc<Mutex<Vec<u8>>>);

#[async_trait::async_trait]
impl FileWrite for Collect {
    async fn write(&mut self, bytes: bytes::Bytes) -> iceberg::Result<()> {
        self.0.lock().expect("buffer").extend_from_slice(&bytes);
        Ok(())
    }

    async fn close(&mut self) -> iceberg::Result<()> {
        Ok(())
    }
}

/// What to replay and where.
pub struct Replay<'a> {
    pub format: FormatVersion,
    /// The snapshot's own manifest list, and its parent's (`None`: it had no parent).
    pub list: &'a [u8],
    pub parent_list: Option<&'a [u8]>,
    /// The replayed snapshot's id (the original's, or a fresh one when the target has that id).
    pub snapshot_id: i64,
    /// The new parent's manifest list and id (`None`: the new parent is no snapshot).
    pub onto_list: Option<&'a [u8]>,
    pub onto_id: Option<i64>,
    pub sequence_number: i64,
    /// Format v3 (row lineage): the table's `next-row-id` on the new parent's side, where the
    /// replayed snapshot's rows are numbered from. `None` before v3.
    pub first_row_id: Option<u64>,
}

/// A replayed snapshot's manifest list.
#[derive(Debug)]
pub struct Replayed {
    pub bytes: Vec<u8>,
    /// Format v3: the table's `next-row-id` after the snapshot (its rows are numbered from
    /// [`Replay::first_row_id`] up to here).
    pub next_row_id: Option<u64>,
}

fn parse(bytes: &[u8], format: FormatVersion) -> Result<Vec<ManifestFile>, String> {
    ManifestList::parse_with_version(bytes, format)
        .map(|list| list.consume_entries().into_iter().collect())
        .map_err(|e| format!("a manifest list cannot be read: {e}"))
}

/// The manifest list of the replayed snapshot; `None` when the new parent already lists every
/// manifest the snapshot added; or why it cannot be replayed.
pub async fn replay(replay: Replay<'_>) -> Result<Option<Replayed>, String> {
    if replay.format == FormatVersion::V3 && replay.first_row_id.is_none() {
        return Err("a format-version 3 table without next-row-id cannot be replayed".to_string());
    }
    let own = parse(replay.list, replay.format)?;
    let parent = match replay.parent_list {
        Some(bytes) => parse(bytes, replay.format)?,
        None => Vec::new(),
    };
    let onto = match replay.onto_list {
        Some(bytes) => parse(bytes, replay.format)?,
        None => Vec::new(),
    };
    let parents: BTreeSet<&str> = parent.iter().map(|m| m.manifest_path.as_str()).collect();
    let owned: BTreeSet<&str> = own.iter().map(|m| m.manifest_path.as_str()).collect();
    if !parents.is_subset(&owned) {
        return Err(format!(
            "snapshot {} rewrote its parent's manifests (not a fast append), so it cannot be \
             replayed onto another parent",
            replay.snapshot_id
        ));
    }
    let present: BTreeSet<String> = onto.iter().map(|m| m.manifest_path.clone()).collect();
    let added: Vec<ManifestFile> = own
        .into_iter()
        .filter(|m| !parents.contains(m.manifest_path.as_str()))
        .filter(|m| !present.contains(&m.manifest_path))
        .collect();
    if added
        .iter()
        .any(|m| m.existing_files_count.unwrap_or(1) > 0 || m.deleted_files_count.unwrap_or(1) > 0)
    {
        return Err(format!(
            "snapshot {} added manifests holding existing or deleted entries, so it cannot be \
             replayed onto another parent",
            replay.snapshot_id
        ));
    }
    if added.is_empty() {
        return Ok(None);
    }
    let buffer = Arc::new(Mutex::new(Vec::new()));
    let sink = Box::new(Collect(buffer.clone()));
    let mut writer = match replay.format {
        FormatVersion::V1 => ManifestListWriter::v1(sink, replay.snapshot_id, replay.onto_id),
        FormatVersion::V2 => ManifestListWriter::v2(
            sink,
            replay.snapshot_id,
            replay.onto_id,
            replay.sequence_number,
        ),
        FormatVersion::V3 => ManifestListWriter::v3(
            sink,
            replay.snapshot_id,
            replay.onto_id,
            replay.sequence_number,
            replay.first_row_id,
        ),
    };
    let sequence_number = replay.sequence_number;
    let added = added.into_iter().map(|mut m| {
        // The replayed snapshot's sequence number, which its added entries inherit. Set here
        // rather than left for the writer: a manifest may have been added under another id.
        m.sequence_number = sequence_number;
        m.min_sequence_number = sequence_number;
        // Row lineage: the rows the manifest added were numbered on the other side, from where
        // that side's `next-row-id` stood; the writer numbers them again after the new
        // parent's (which keeps its own numbers).
        m.first_row_id = None;
        m
    });
    writer
        .add_manifests(onto.into_iter().chain(added))
        .map_err(|e| format!("the replayed manifest list cannot be written: {e}"))?;
    let next_row_id = writer.next_row_id();
    writer
        .close()
        .await
        .map_err(|e| format!("the replayed manifest list cannot be written: {e}"))?;
    let bytes = buffer.lock().expect("buffer").clone();
    Ok(Some(Replayed { bytes, next_row_id }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use iceberg::spec::ManifestContentType;

    fn manifest(path: &str, added_by: i64, seq: i64, existing: u32) -> ManifestFile {
        ManifestFile {
            manifest_path: path.to_string(),
            manifest_length: 100,
            partition_spec_id: 0,
            content: ManifestContentType::Data,
            sequence_number: seq,
            min_sequence_number: seq,
            added_snapshot_id: added_by,
            added_files_count: Some(1),
            existing_files_count: Some(existing),
            deleted_files_count: Some(0),
            added_rows_count: Some(10),
            existing_rows_count: Some(0),
            deleted_rows_count: Some(0),
            partitions: None,
            key_metadata: None,
            first_row_id: None,
        }
    }

    async fn list(
        snapshot: i64,
        parent: Option<i64>,
        seq: i64,
        files: Vec<ManifestFile>,
    ) -> Vec<u8> {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let mut writer =
            ManifestListWriter::v2(Box::new(Collect(buffer.clone())), snapshot, parent, seq);
        writer.add_manifests(files.into_iter()).unwrap();
        writer.close().await.unwrap();
        buffer.lock().unwrap().clone()
    }

    #[tokio::test]
    async fn an_append_is_replayed_onto_the_other_side() {
        // base: snapshot 1 (m1). Source appended snapshot 2 (m2); target appended snapshot 4 (m4).
        let base = list(1, None, 1, vec![manifest("m1", 1, 1, 0)]).await;
        let source = list(
            2,
            Some(1),
            2,
            vec![manifest("m1", 1, 1, 0), manifest("m2", 2, 2, 0)],
        )
        .await;
        let target = list(
            4,
            Some(1),
            2,
            vec![manifest("m1", 1, 1, 0), manifest("m4", 4, 2, 0)],
        )
        .await;
        let bytes = replay(Replay {
            format: FormatVersion::V2,
            list: &source,
            parent_list: Some(&base),
            snapshot_id: 2,
            onto_list: Some(&target),
            onto_id: Some(4),
            sequence_number: 3,
            first_row_id: None,
        })
        .await
        .unwrap()
        .unwrap()
        .bytes;
        let entries = parse(&bytes, FormatVersion::V2).unwrap();
        let paths: Vec<&str> = entries.iter().map(|m| m.manifest_path.as_str()).collect();
        assert_eq!(paths, vec!["m1", "m4", "m2"]);
        // The target's manifests keep their numbers; the replayed one takes the new one.
        assert_eq!(entries[0].sequence_number, 1);
        assert_eq!(entries[1].sequence_number, 2);
        assert_eq!(entries[2].sequence_number, 3);
        assert_eq!(entries[2].min_sequence_number, 3);
        assert_eq!(entries[2].added_snapshot_id, 2);

        // Onto an empty table (no parent on the target side).
        let first = list(7, None, 1, vec![manifest("m7", 7, 1, 0)]).await;
        let bytes = replay(Replay {
            format: FormatVersion::V2,
            list: &first,
            parent_list: None,
            snapshot_id: 7,
            onto_list: Some(&target),
            onto_id: Some(4),
            sequence_number: 3,
            first_row_id: None,
        })
        .await
        .unwrap()
        .unwrap()
        .bytes;
        let paths: Vec<String> = parse(&bytes, FormatVersion::V2)
            .unwrap()
            .into_iter()
            .map(|m| m.manifest_path)
            .collect();
        assert_eq!(paths, vec!["m1", "m4", "m7"]);
    }

    #[tokio::test]
    async fn rewritten_manifests_are_not_replayed() {
        let base = list(1, None, 1, vec![manifest("m1", 1, 1, 0)]).await;
        // A merge append: m1's entries folded into m2 as existing entries, m1 gone.
        let merged = list(2, Some(1), 2, vec![manifest("m2", 2, 2, 1)]).await;
        let target = list(
            4,
            Some(1),
            2,
            vec![manifest("m1", 1, 1, 0), manifest("m4", 4, 2, 0)],
        )
        .await;
        let why = replay(Replay {
            format: FormatVersion::V2,
            list: &merged,
            parent_list: Some(&base),
            snapshot_id: 2,
            onto_list: Some(&target),
            onto_id: Some(4),
            sequence_number: 3,
            first_row_id: None,
        })
        .await
        .unwrap_err();
        assert!(why.contains("rewrote"), "{why}");
        // Kept the parent's manifests but added one with existing entries.
        let sneaky = list(
            2,
            Some(1),
            2,
            vec![manifest("m1", 1, 1, 0), manifest("m2", 2, 2, 3)],
        )
        .await;
        let why = replay(Replay {
            format: FormatVersion::V2,
            list: &sneaky,
            parent_list: Some(&base),
            snapshot_id: 2,
            onto_list: Some(&target),
            onto_id: Some(4),
            sequence_number: 3,
            first_row_id: None,
        })
        .await
        .unwrap_err();
        assert!(why.contains("existing or deleted"), "{why}");
    }

    #[tokio::test]
    async fn what_the_new_parent_already_lists_is_not_added_again() {
        // An earlier merge replayed source snapshot 2 (m2) onto target snapshot 4 (m1, m4),
        // keeping id 2. The source then appended 3 (m3); the target's head is the replayed 2.
        let source_2 = list(
            2,
            Some(1),
            2,
            vec![manifest("m1", 1, 1, 0), manifest("m2", 2, 2, 0)],
        )
        .await;
        let source_3 = list(
            3,
            Some(2),
            3,
            vec![
                manifest("m1", 1, 1, 0),
                manifest("m2", 2, 2, 0),
                manifest("m3", 3, 3, 0),
            ],
        )
        .await;
        let target_2 = list(
            2,
            Some(4),
            3,
            vec![
                manifest("m1", 1, 1, 0),
                manifest("m4", 4, 2, 0),
                manifest("m2", 2, 3, 0),
            ],
        )
        .await;
        let bytes = replay(Replay {
            format: FormatVersion::V2,
            list: &source_3,
            parent_list: Some(&source_2),
            snapshot_id: 3,
            onto_list: Some(&target_2),
            onto_id: Some(2),
            sequence_number: 4,
            first_row_id: None,
        })
        .await
        .unwrap()
        .unwrap()
        .bytes;
        let entries = parse(&bytes, FormatVersion::V2).unwrap();
        let paths: Vec<&str> = entries.iter().map(|m| m.manifest_path.as_str()).collect();
        assert_eq!(paths, vec!["m1", "m4", "m2", "m3"]);
        // Snapshot 2 again (as a sync back would see it): nothing new, nothing to replay.
        let nothing = replay(Replay {
            format: FormatVersion::V2,
            list: &source_2,
            parent_list: None,
            snapshot_id: 2,
            onto_list: Some(&target_2),
            onto_id: Some(2),
            sequence_number: 4,
            first_row_id: None,
        })
        .await
        .unwrap();
        assert!(nothing.is_none());
        // Under a fresh id, a manifest another snapshot added still takes the new number.
        let bytes = replay(Replay {
            format: FormatVersion::V2,
            list: &target_2,
            parent_list: Some(&source_2),
            snapshot_id: 99,
            onto_list: Some(&source_3),
            onto_id: Some(3),
            sequence_number: 5,
            first_row_id: None,
        })
        .await
        .unwrap()
        .unwrap()
        .bytes;
        let entries = parse(&bytes, FormatVersion::V2).unwrap();
        let m4 = entries.iter().find(|m| m.manifest_path == "m4").unwrap();
        assert_eq!((m4.sequence_number, m4.added_snapshot_id), (5, 4));
        assert_eq!(entries.len(), 4);
    }

    async fn list_v3(
        snapshot: i64,
        parent: Option<i64>,
        seq: i64,
        first_row_id: u64,
        files: Vec<ManifestFile>,
    ) -> Vec<u8> {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let mut writer = ManifestListWriter::v3(
            Box::new(Collect(buffer.clone())),
            snapshot,
            parent,
            seq,
            Some(first_row_id),
        );
        writer.add_manifests(files.into_iter()).unwrap();
        writer.close().await.unwrap();
        buffer.lock().unwrap().clone()
    }

    /// Format v3: the replayed manifest's rows are numbered again after the target's, whose own
    /// numbers stay; the answer says where the table's `next-row-id` ends.
    #[tokio::test]
    async fn row_ids_of_a_replayed_append_follow_the_new_parent() {
        // Base: snapshot 1, m1 (10 rows, ids 0..10). Source appended m2 (ids 10..20 there);
        // target appended m4 (ids 10..20 here, next-row-id 20).
        let base = list_v3(1, None, 1, 0, vec![manifest("m1", 1, 1, 0)]).await;
        let source = list_v3(
            2,
            Some(1),
            2,
            0,
            vec![manifest("m1", 1, 1, 0), manifest("m2", 2, 2, 0)],
        )
        .await;
        let target = list_v3(
            4,
            Some(1),
            2,
            0,
            vec![manifest("m1", 1, 1, 0), manifest("m4", 4, 2, 0)],
        )
        .await;
        let ids = |bytes: &[u8]| -> Vec<(String, Option<u64>)> {
            parse(bytes, FormatVersion::V3)
                .unwrap()
                .into_iter()
                .map(|m| (m.manifest_path, m.first_row_id))
                .collect()
        };
        assert_eq!(ids(&source)[1], ("m2".to_string(), Some(10)));
        let replayed = replay(Replay {
            format: FormatVersion::V3,
            list: &source,
            parent_list: Some(&base),
            snapshot_id: 2,
            onto_list: Some(&target),
            onto_id: Some(4),
            sequence_number: 3,
            first_row_id: Some(20),
        })
        .await
        .unwrap()
        .unwrap();
        assert_eq!(
            ids(&replayed.bytes),
            vec![
                ("m1".to_string(), Some(0)),
                ("m4".to_string(), Some(10)),
                ("m2".to_string(), Some(20)),
            ]
        );
        assert_eq!(replayed.next_row_id, Some(30));
        // Without the table's next-row-id, a v3 list is not replayed.
        let why = replay(Replay {
            format: FormatVersion::V3,
            list: &source,
            parent_list: Some(&base),
            snapshot_id: 2,
            onto_list: Some(&target),
            onto_id: Some(4),
            sequence_number: 3,
            first_row_id: None,
        })
        .await
        .err()
        .unwrap();
        assert!(why.contains("next-row-id"), "{why}");
    }
}
