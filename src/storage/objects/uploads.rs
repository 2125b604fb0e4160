//! Multipart uploads of the S3 object model: each upload is a folder of parts under the
//! reserved uploads folder, completed by concatenating them into one new object.

use super::*;

impl ObjectStore {
    pub(super) fn upload_dir(&self, upload_id: &str) -> ObjectResult<PathBuf> {
        if upload_id.is_empty()
            || upload_id.len() > 64
            || !upload_id.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            return Err(ObjectError::NoSuchUpload);
        }
        Ok(self.root.join(UPLOADS_DIR).join(upload_id))
    }

    pub fn create_upload(&self, info: &UploadInfo) -> ObjectResult<String> {
        key_path(&info.key)?;
        let id = uuid::Uuid::new_v4().simple().to_string();
        let dir = self.upload_dir(&id)?;
        std::fs::create_dir_all(&dir)?;
        let json = serde_json::to_vec(info).expect("upload info serializes");
        std::fs::write(dir.join("upload.json"), json)?;
        Ok(id)
    }

    pub fn upload(&self, key: &str, upload_id: &str) -> ObjectResult<UploadInfo> {
        let dir = self.upload_dir(upload_id)?;
        let bytes = match std::fs::read(dir.join("upload.json")) {
            Ok(b) => b,
            Err(e) if is_absent(&e) => return Err(ObjectError::NoSuchUpload),
            Err(e) => return Err(e.into()),
        };
        let info: UploadInfo = serde_json::from_slice(&bytes)
            .map_err(|e| ObjectError::Io(std::io::Error::other(e)))?;
        if info.key != key {
            return Err(ObjectError::NoSuchUpload);
        }
        Ok(info)
    }

    /// Stores a pending file as part `number` of an upload, replacing an earlier part `number`.
    pub fn commit_part(
        &self,
        mut pending: PendingObject,
        key: &str,
        upload_id: &str,
        number: i32,
    ) -> ObjectResult<PartInfo> {
        if !(1..=MAX_PART_NUMBER).contains(&number) {
            return Err(ObjectError::InvalidPart(format!(
                "part numbers run from 1 to {MAX_PART_NUMBER}"
            )));
        }
        self.upload(key, upload_id)?;
        let dir = self.upload_dir(upload_id)?;
        let etag = hex::encode(pending.md5());
        pending.file.flush()?;
        pending.file.sync_all()?;
        let meta = ObjectMeta {
            etag: etag.clone(),
            ..ObjectMeta::default()
        };
        write_meta(&pending.path, &meta);
        let target = dir.join(format!("part-{number:05}"));
        std::fs::rename(&pending.path, &target)?;
        pending.done = true;
        let stat = std::fs::metadata(&target)?;
        Ok(PartInfo {
            number,
            etag,
            size: stat.len(),
            modified: stat.modified()?,
        })
    }

    pub fn list_parts(&self, key: &str, upload_id: &str) -> ObjectResult<Vec<PartInfo>> {
        self.upload(key, upload_id)?;
        let dir = self.upload_dir(upload_id)?;
        let mut parts = Vec::new();
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(number) = name
                .to_str()
                .and_then(|n| n.strip_prefix("part-"))
                .and_then(|n| n.parse::<i32>().ok())
            else {
                continue;
            };
            let path = entry.path();
            let stat = entry.metadata()?;
            let meta = read_meta(&path, &stat);
            parts.push(PartInfo {
                number,
                etag: meta.etag,
                size: stat.len(),
                modified: stat.modified()?,
            });
        }
        parts.sort_by_key(|p| p.number);
        Ok(parts)
    }

    /// Joins the listed parts into the object. Each listed part must exist with the given ETag,
    /// numbers must ascend, and every part but the last must be at least 5 MiB.
    pub fn complete_upload(
        &self,
        key: &str,
        upload_id: &str,
        requested: &[(i32, String)],
        overwrite: Overwrite,
    ) -> ObjectResult<ObjectInfo> {
        let info = self.upload(key, upload_id)?;
        if requested.is_empty() {
            return Err(ObjectError::InvalidPart(
                "a multipart upload is completed with at least one part".into(),
            ));
        }
        let stored = self.list_parts(key, upload_id)?;
        let dir = self.upload_dir(upload_id)?;
        let mut md5s = Md5::new();
        let mut chosen = Vec::with_capacity(requested.len());
        let mut sizes = Vec::with_capacity(requested.len());
        let mut previous = 0;
        for (i, (number, etag)) in requested.iter().enumerate() {
            if *number <= previous {
                return Err(ObjectError::InvalidPart(
                    "the list of parts is not in ascending order (InvalidPartOrder)".into(),
                ));
            }
            previous = *number;
            let etag = etag.trim_matches('"');
            let part = stored
                .iter()
                .find(|p| p.number == *number && p.etag == etag)
                .ok_or_else(|| {
                    ObjectError::InvalidPart(format!(
                        "part {number} with ETag {etag:?} was not uploaded"
                    ))
                })?;
            if i + 1 < requested.len() && part.size < MIN_PART_BYTES {
                return Err(ObjectError::EntityTooSmall(format!(
                    "part {number} is {} bytes; every part but the last must be at least 5 MiB",
                    part.size
                )));
            }
            md5s.update(&hex::decode(&part.etag).unwrap_or_default());
            sizes.push(part.size);
            chosen.push(dir.join(format!("part-{number:05}")));
        }
        let mut pending = self.begin()?;
        for path in &chosen {
            let mut part = std::fs::File::open(path)?;
            // Not hashed: the object's ETag is made of the parts' MD5s.
            std::io::copy(&mut part, &mut pending.file)?;
        }
        let meta = ObjectMeta {
            etag: format!("{}-{}", hex::encode(md5s.finalize()), requested.len()),
            content_type: info.content_type,
            user: info.user,
            parts: Some(requested.len() as u32),
            part_sizes: sizes,
        };
        let object = self.commit(pending, key, meta, overwrite)?;
        let _ = std::fs::remove_dir_all(&dir);
        Ok(object)
    }

    pub fn abort_upload(&self, key: &str, upload_id: &str) -> ObjectResult<()> {
        self.upload(key, upload_id)?;
        let dir = self.upload_dir(upload_id)?;
        std::fs::remove_dir_all(dir)?;
        Ok(())
    }

    /// All uploads in progress, ordered by key then id.
    pub fn list_uploads(&self) -> ObjectResult<Vec<(String, UploadInfo)>> {
        let dir = self.root.join(UPLOADS_DIR);
        let mut uploads = Vec::new();
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if is_absent(&e) => return Ok(uploads),
            Err(e) => return Err(e.into()),
        };
        for entry in entries {
            let entry = entry?;
            let Some(id) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            let Ok(bytes) = std::fs::read(entry.path().join("upload.json")) else {
                continue;
            };
            if let Ok(info) = serde_json::from_slice::<UploadInfo>(&bytes) {
                uploads.push((id, info));
            }
        }
        uploads.sort_by(|a, b| (&a.1.key, &a.0).cmp(&(&b.1.key, &b.0)));
        Ok(uploads)
    }

    /// Removes uploads begun before `cutoff` and temporary files older than it. Returns how many
    /// uploads went.
    pub fn clean_abandoned(&self, cutoff: chrono::DateTime<chrono::Utc>) -> ObjectResult<usize> {
        let mut removed = 0;
        for (id, info) in self.list_uploads()? {
            if info.initiated < cutoff {
                let _ = std::fs::remove_dir_all(self.root.join(UPLOADS_DIR).join(&id));
                removed += 1;
            }
        }
        if let Ok(entries) = std::fs::read_dir(self.root.join(TMP_DIR)) {
            let cutoff: SystemTime = cutoff.into();
            for entry in entries.flatten() {
                let old = entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .is_ok_and(|t| t < cutoff);
                if old {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
        Ok(removed)
    }
}
