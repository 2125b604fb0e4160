//! Replaying an appended snapshot onto another parent, as Iceberg's own commit retry does: the new
//! snapshot's manifest list is the new parent's manifests plus the manifests the snapshot added,
//! whose sequence numbers become the new snapshot's. Bytes in, bytes out (the manifest list Avro
//! files); reading and writing them is the caller's.
//!
//! A snapshot can be replayed only if it kept every manifest of its own parent and added new ones
//! (a fast append). One that rewrote its parent's manifests (a merge append folds existing entries
//! into a new manifest) would bring those entries twice, so it is refused.

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
    pub snapshot_id: i64,
    /// The new parent's manifest list and id (`None`: the new parent is no snapshot).
    pub onto_list: Option<&'a [u8]>,
    pub onto_id: Option<i64>,
    pub sequence_number: i64,
}

fn parse(bytes: &[u8], format: FormatVersion) -> Result<Vec<ManifestFile>, String> {
    ManifestList::parse_with_version(bytes, format)
        .map(|list| list.consume_entries().into_iter().collect())
        .map_err(|e| format!("a manifest list cannot be read: {e}"))
}

/// The manifest list of the replayed snapshot, or why it cannot be replayed.
pub async fn replay(replay: Replay<'_>) -> Result<Vec<u8>, String> {
    if replay.format == FormatVersion::V3 {
        return Err("format-version 3 tables (row lineage) are not replayed yet".to_string());
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
    let (added, kept): (Vec<ManifestFile>, Vec<ManifestFile>) = own
        .into_iter()
        .partition(|m| m.added_snapshot_id == replay.snapshot_id);
    let kept: BTreeSet<&str> = kept.iter().map(|m| m.manifest_path.as_str()).collect();
    let parents: BTreeSet<&str> = parent.iter().map(|m| m.manifest_path.as_str()).collect();
    if kept != parents {
        return Err(format!(
            "snapshot {} rewrote its parent's manifests (not a fast append), so it cannot be \
             replayed onto another parent",
            replay.snapshot_id
        ));
    }
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
    let buffer = Arc::new(Mutex::new(Vec::new()));
    let sink = Box::new(Collect(buffer.clone()));
    let mut writer = match replay.format {
        FormatVersion::V1 => ManifestListWriter::v1(sink, replay.snapshot_id, replay.onto_id),
        _ => ManifestListWriter::v2(
            sink,
            replay.snapshot_id,
            replay.onto_id,
            replay.sequence_number,
        ),
    };
    let added = added.into_iter().map(|mut m| {
        // Assigned by the writer: the replayed snapshot's sequence number.
        m.sequence_number = iceberg::spec::UNASSIGNED_SEQUENCE_NUMBER;
        m.min_sequence_number = iceberg::spec::UNASSIGNED_SEQUENCE_NUMBER;
        m
    });
    writer
        .add_manifests(onto.into_iter().chain(added))
        .map_err(|e| format!("the replayed manifest list cannot be written: {e}"))?;
    writer
        .close()
        .await
        .map_err(|e| format!("the replayed manifest list cannot be written: {e}"))?;
    let bytes = buffer.lock().expect("buffer").clone();
    Ok(bytes)
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
        })
        .await
        .unwrap();
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
        })
        .await
        .unwrap();
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
        })
        .await
        .unwrap_err();
        assert!(why.contains("existing or deleted"), "{why}");
    }
}
