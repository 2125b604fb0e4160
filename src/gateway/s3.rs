//! The S3 operations, over `storage::objects`. File-system work runs on the blocking pool; bodies
//! are streamed in both directions and never held whole in memory.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use s3s::dto::*;
use s3s::{S3, S3Request, S3Response, S3Result, s3_error};

use super::body::*;
use super::checks::*;
use super::convert::*;
use super::{Backend, remote};
use crate::storage::objects::{self, ObjectError, ObjectMeta, UploadInfo};

pub(crate) struct FloeS3 {
    pub region: String,
}

#[async_trait::async_trait]
impl S3 for FloeS3 {
    async fn list_buckets(
        &self,
        req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        let target = target(&req)?;
        let created = match &target.backend {
            Backend::Local(objects) => std::fs::metadata(objects.root())
                .and_then(|m| m.created().or_else(|_| m.modified()))
                .ok()
                .map(timestamp),
            Backend::Remote(_) => None,
        };
        Ok(S3Response::new(ListBucketsOutput {
            buckets: Some(vec![Bucket {
                name: Some(target.bucket),
                creation_date: created,
                bucket_region: Some(self.region.clone()),
            }]),
            ..Default::default()
        }))
    }

    async fn head_bucket(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        target(&req)?;
        Ok(S3Response::new(HeadBucketOutput {
            bucket_region: Some(self.region.clone()),
            ..Default::default()
        }))
    }

    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        target(&req)?;
        // S3 answers an empty constraint for us-east-1.
        let constraint = (self.region != "us-east-1")
            .then(|| BucketLocationConstraint::from(self.region.clone()));
        Ok(S3Response::new(GetBucketLocationOutput {
            location_constraint: constraint,
        }))
    }

    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        let target = target(&req)?;
        let input = req.input;
        let max = max_keys(input.max_keys)?;
        let prefix = input.prefix.clone().unwrap_or_default();
        let token_after = match &input.continuation_token {
            Some(token) => Some(
                BASE64
                    .decode(token)
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .ok_or_else(|| {
                        s3_error!(InvalidArgument, "the continuation token is invalid")
                    })?,
            ),
            None => None,
        };
        let after = token_after.or_else(|| input.start_after.clone());
        let encoder = Encoder::of(input.encoding_type.as_ref())?;
        if let Some(bucket) = target.remote() {
            // The store's own continuation token, carried as ours (base64 of it).
            let page = remote::list(
                &target,
                bucket,
                &prefix,
                input.delimiter.clone(),
                input
                    .start_after
                    .clone()
                    .filter(|_| input.continuation_token.is_none()),
                after.filter(|_| input.continuation_token.is_some()),
                max,
            )
            .await?;
            let page = encoder.page(Page {
                objects: page.objects,
                prefixes: page.prefixes,
                next: page.next_token,
            });
            return Ok(S3Response::new(ListObjectsV2Output {
                name: Some(target.bucket),
                prefix: encoder.opt(input.prefix),
                max_keys: Some(max as i32),
                key_count: Some((page.objects.len() + page.prefixes.len()) as i32),
                continuation_token: input.continuation_token,
                is_truncated: Some(page.next.is_some()),
                next_continuation_token: page.next.map(|k| BASE64.encode(k)),
                contents: Some(page.objects),
                common_prefixes: Some(page.prefixes),
                delimiter: encoder.opt(input.delimiter),
                encoding_type: input.encoding_type,
                start_after: encoder.opt(input.start_after),
                ..Default::default()
            }));
        }
        let page = list_page(&target, prefix, input.delimiter.clone(), after, max).await?;
        let page = encoder.page(page);
        let key_count = (page.objects.len() + page.prefixes.len()) as i32;
        Ok(S3Response::new(ListObjectsV2Output {
            name: Some(target.bucket),
            prefix: encoder.opt(input.prefix),
            max_keys: Some(max as i32),
            key_count: Some(key_count),
            continuation_token: input.continuation_token,
            is_truncated: Some(page.next.is_some()),
            next_continuation_token: page.next.map(|k| BASE64.encode(k)),
            contents: Some(page.objects),
            common_prefixes: Some(page.prefixes),
            delimiter: encoder.opt(input.delimiter),
            encoding_type: input.encoding_type,
            start_after: encoder.opt(input.start_after),
            ..Default::default()
        }))
    }

    async fn list_objects(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        let target = target(&req)?;
        let input = req.input;
        let max = max_keys(input.max_keys)?;
        let prefix = input.prefix.clone().unwrap_or_default();
        let encoder = Encoder::of(input.encoding_type.as_ref())?;
        let page = match target.remote() {
            Some(bucket) => {
                let page = remote::list(
                    &target,
                    bucket,
                    &prefix,
                    input.delimiter.clone(),
                    input.marker.clone(),
                    None,
                    max,
                )
                .await?;
                Page {
                    objects: page.objects,
                    prefixes: page.prefixes,
                    next: page.next_marker,
                }
            }
            None => {
                list_page(
                    &target,
                    prefix,
                    input.delimiter.clone(),
                    input.marker.clone(),
                    max,
                )
                .await?
            }
        };
        let page = encoder.page(page);
        let truncated = page.next.is_some();
        Ok(S3Response::new(ListObjectsOutput {
            name: Some(target.bucket),
            prefix: encoder.opt(input.prefix),
            marker: encoder.opt(input.marker),
            max_keys: Some(max as i32),
            is_truncated: Some(truncated),
            // Sent even without a delimiter: clients may use it instead of the last key.
            next_marker: encoder.opt(page.next),
            contents: Some(page.objects),
            common_prefixes: Some(page.prefixes),
            delimiter: encoder.opt(input.delimiter),
            encoding_type: input.encoding_type,
            ..Default::default()
        }))
    }

    async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        let target = target(&req)?;
        let input = req.input;
        check_key(&input.key)?;
        if let Some(bucket) = target.remote() {
            return remote::head_object(bucket.clone(), input).await;
        }
        let objects = target.objects()?.clone();
        let key = input.key.clone();
        let info = blocking(move || objects.head(&key)).await?;
        check_preconditions(
            &info,
            input.if_match.as_ref(),
            input.if_none_match.as_ref(),
            input.if_modified_since.as_ref(),
            input.if_unmodified_since.as_ref(),
        )?;
        let (start, end, content_range) =
            byte_range(&info, input.range.as_ref(), input.part_number)?;
        let length = end - start;
        Ok(S3Response::new(HeadObjectOutput {
            accept_ranges: Some("bytes".into()),
            content_length: Some(length as i64),
            content_range,
            content_type: info.meta.content_type.clone(),
            e_tag: Some(etag_of(&info.meta)),
            last_modified: Some(timestamp(info.modified)),
            metadata: user_metadata(&info.meta),
            parts_count: info.meta.parts.map(|p| p as i32),
            ..Default::default()
        }))
    }

    async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        let target = target(&req)?;
        let input = req.input;
        check_key(&input.key)?;
        if let Some(bucket) = target.remote() {
            return remote::get_object(bucket.clone(), input).await;
        }
        let objects = target.objects()?.clone();
        let key = input.key.clone();
        // Small objects are read whole in the same trip to the blocking pool as the lookup.
        let (file, info, small) = blocking(move || {
            let (mut file, info) = objects.open(&key)?;
            let small = if info.size <= SMALL_OBJECT {
                let mut bytes = Vec::with_capacity(info.size as usize);
                std::io::Read::read_to_end(&mut file, &mut bytes)?;
                Some(Bytes::from(bytes))
            } else {
                None
            };
            Ok((file, info, small))
        })
        .await?;
        check_preconditions(
            &info,
            input.if_match.as_ref(),
            input.if_none_match.as_ref(),
            input.if_modified_since.as_ref(),
            input.if_unmodified_since.as_ref(),
        )?;
        let (start, end, content_range) =
            byte_range(&info, input.range.as_ref(), input.part_number)?;
        let length = end - start;
        let body = match small {
            Some(bytes) if bytes.len() as u64 == info.size => {
                StreamingBlob::from(s3s::Body::from(bytes.slice(start as usize..end as usize)))
            }
            _ => StreamingBlob::new(WrapErr(FileStream::new(file, start, length))),
        };
        let output = GetObjectOutput {
            accept_ranges: Some("bytes".into()),
            body: Some(body),
            content_length: Some(length as i64),
            content_range: content_range.clone(),
            content_type: input
                .response_content_type
                .or(info.meta.content_type.clone()),
            e_tag: Some(etag_of(&info.meta)),
            last_modified: Some(timestamp(info.modified)),
            metadata: user_metadata(&info.meta),
            parts_count: info.meta.parts.map(|p| p as i32),
            ..Default::default()
        };
        if content_range.is_some() {
            Ok(S3Response::with_status(
                output,
                http::StatusCode::PARTIAL_CONTENT,
            ))
        } else {
            Ok(S3Response::new(output))
        }
    }

    async fn put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        let target = target(&req)?;
        let trailers = req.trailing_headers.clone();
        let mut input = req.input;
        check_key(&input.key)?;
        if let Some(bucket) = target.remote().cloned() {
            return remote::put_object(&target, bucket, input, req.trailing_headers.clone()).await;
        }
        let overwrite = overwrite_mode(&target, &input.key, input.if_none_match.as_ref())?;
        check_may_replace(&target, &input.key, input.if_match.as_ref())?;
        check_if_match(target.objects()?, &input.key, input.if_match.as_ref()).await?;
        let (pending, computed) =
            receive_upload(target.objects()?, upload_of!(input), trailers.as_ref()).await?;
        let meta = ObjectMeta {
            etag: String::new(),
            content_type: input.content_type,
            user: input.metadata.unwrap_or_default().into_iter().collect(),
            parts: None,
            part_sizes: Vec::new(),
        };
        let objects = target.objects()?.clone();
        let key = input.key;
        let info = blocking(move || objects.commit(pending, &key, meta, overwrite)).await?;
        Ok(S3Response::new(PutObjectOutput {
            e_tag: Some(etag_of(&info.meta)),
            size: Some(info.size as i64),
            checksum_crc32: computed.checksum_crc32,
            checksum_crc32c: computed.checksum_crc32c,
            checksum_sha1: computed.checksum_sha1,
            checksum_sha256: computed.checksum_sha256,
            checksum_crc64nvme: computed.checksum_crc64nvme,
            ..Default::default()
        }))
    }

    async fn copy_object(
        &self,
        req: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        let target = target(&req)?;
        let input = req.input;
        check_key(&input.key)?;
        if let Some(bucket) = target.remote().cloned() {
            return remote::copy_object(&target, bucket, input).await;
        }
        let source = copy_source_key(&target, &input.copy_source)?;
        let overwrite = overwrite_mode(&target, &input.key, None)?;
        let replace = input
            .metadata_directive
            .as_ref()
            .is_some_and(|d| d.as_str() == MetadataDirective::REPLACE);
        let objects = target.objects()?.clone();
        let key = input.key.clone();
        let content_type = input.content_type.clone();
        let metadata = input.metadata.clone();
        let conditions = CopyConditions {
            if_match: input.copy_source_if_match.clone(),
            if_none_match: input.copy_source_if_none_match.clone(),
            if_modified_since: input.copy_source_if_modified_since.clone(),
            if_unmodified_since: input.copy_source_if_unmodified_since.clone(),
        };
        let info = blocking(move || {
            let (mut file, source_info) = objects.open(&source)?;
            conditions.check(&source_info)?;
            let mut pending = objects.begin()?;
            objects::copy_range(&mut file, 0, source_info.size, &mut pending)?;
            let mut meta = if replace {
                ObjectMeta {
                    content_type,
                    user: metadata.unwrap_or_default().into_iter().collect(),
                    ..ObjectMeta::default()
                }
            } else {
                ObjectMeta {
                    etag: String::new(),
                    ..source_info.meta
                }
            };
            // A copy is one whole object: its ETag is its MD5 (even when the source was multipart).
            meta.etag = String::new();
            meta.parts = None;
            meta.part_sizes = Vec::new();
            objects.commit(pending, &key, meta, overwrite)
        })
        .await?;
        Ok(S3Response::new(CopyObjectOutput {
            copy_object_result: Some(CopyObjectResult {
                e_tag: Some(etag_of(&info.meta)),
                last_modified: Some(timestamp(info.modified)),
                ..Default::default()
            }),
            ..Default::default()
        }))
    }

    async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        let target = target(&req)?;
        let input = req.input;
        check_key(&input.key)?;
        if let Some(bucket) = target.remote().cloned() {
            return remote::delete_object(&target, bucket, input).await;
        }
        if !may_delete_key(&target.grant, &input.key) {
            return Err(s3_error!(AccessDenied, "{}", METADATA_DELETE_REFUSED));
        }
        check_if_match(target.objects()?, &input.key, input.if_match.as_ref()).await?;
        let objects = target.objects()?.clone();
        let key = input.key;
        blocking(move || objects.delete(&key)).await?;
        Ok(S3Response::with_status(
            DeleteObjectOutput::default(),
            http::StatusCode::NO_CONTENT,
        ))
    }

    async fn delete_objects(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        let target = target(&req)?;
        let input = req.input;
        if input.delete.objects.len() > 1000 {
            return Err(s3_error!(
                MalformedXML,
                "at most 1000 keys are deleted per request"
            ));
        }
        if let Some(bucket) = target.remote().cloned() {
            return remote::delete_objects(&target, bucket, input).await;
        }
        let quiet = input.delete.quiet.unwrap_or(false);
        let grant = target.grant.clone();
        let objects = target.objects()?.clone();
        let keys: Vec<String> = input.delete.objects.into_iter().map(|o| o.key).collect();
        let (deleted, errors) = blocking(move || {
            let mut deleted = Vec::new();
            let mut errors = Vec::new();
            for key in keys {
                // Each key is authorized on its own: one outside the scope fails alone.
                let outcome = if !grant.covers(&key) {
                    Err((
                        "AccessDenied",
                        "the key is outside the access key's scope".to_string(),
                    ))
                } else if !may_delete_key(&grant, &key) {
                    Err(("AccessDenied", METADATA_DELETE_REFUSED.to_string()))
                } else {
                    match objects.delete(&key) {
                        Ok(()) => Ok(()),
                        Err(ObjectError::Key(e)) => Err(("InvalidArgument", e.to_string())),
                        Err(e) => Err(("InternalError", e.to_string())),
                    }
                };
                match outcome {
                    Ok(()) => deleted.push(DeletedObject {
                        key: Some(key),
                        ..Default::default()
                    }),
                    Err((code, message)) => errors.push(Error {
                        code: Some(code.into()),
                        key: Some(key),
                        message: Some(message),
                        version_id: None,
                    }),
                }
            }
            Ok((deleted, errors))
        })
        .await?;
        Ok(S3Response::new(DeleteObjectsOutput {
            deleted: (!quiet).then_some(deleted),
            errors: Some(errors),
            ..Default::default()
        }))
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        let target = target(&req)?;
        let input = req.input;
        check_key(&input.key)?;
        if let Some(bucket) = target.remote().cloned() {
            return remote::create_multipart_upload(&target, bucket, input).await;
        }
        let info = UploadInfo {
            key: input.key.clone(),
            initiated: crate::model::now(),
            content_type: input.content_type,
            user: input.metadata.unwrap_or_default().into_iter().collect(),
        };
        let objects = target.objects()?.clone();
        let upload_id = blocking(move || objects.create_upload(&info)).await?;
        Ok(S3Response::new(CreateMultipartUploadOutput {
            bucket: Some(target.bucket),
            key: Some(input.key),
            upload_id: Some(upload_id),
            ..Default::default()
        }))
    }

    async fn upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        let target = target(&req)?;
        let trailers = req.trailing_headers.clone();
        let mut input = req.input;
        check_key(&input.key)?;
        if let Some(bucket) = target.remote().cloned() {
            return remote::upload_part(bucket, input, req.trailing_headers.clone()).await;
        }
        {
            let objects = target.objects()?.clone();
            let (key, id) = (input.key.clone(), input.upload_id.clone());
            blocking(move || objects.upload(&key, &id)).await?;
        }
        let (pending, computed) =
            receive_upload(target.objects()?, upload_of!(input), trailers.as_ref()).await?;
        let objects = target.objects()?.clone();
        let (key, id, number) = (input.key, input.upload_id, input.part_number);
        let part = blocking(move || objects.commit_part(pending, &key, &id, number)).await?;
        Ok(S3Response::new(UploadPartOutput {
            e_tag: Some(ETag::Strong(part.etag)),
            checksum_crc32: computed.checksum_crc32,
            checksum_crc32c: computed.checksum_crc32c,
            checksum_sha1: computed.checksum_sha1,
            checksum_sha256: computed.checksum_sha256,
            checksum_crc64nvme: computed.checksum_crc64nvme,
            ..Default::default()
        }))
    }

    async fn upload_part_copy(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        let target = target(&req)?;
        let input = req.input;
        check_key(&input.key)?;
        if let Some(bucket) = target.remote().cloned() {
            return remote::upload_part_copy(&target, bucket, input).await;
        }
        let source = copy_source_key(&target, &input.copy_source)?;
        let range = match &input.copy_source_range {
            None => None,
            Some(text) => {
                let parsed = text
                    .strip_prefix("bytes=")
                    .and_then(|r| r.split_once('-'))
                    .and_then(|(a, b)| Some((a.parse::<u64>().ok()?, b.parse::<u64>().ok()?)))
                    .filter(|(a, b)| a <= b)
                    .ok_or_else(|| {
                        s3_error!(
                            InvalidArgument,
                            "x-amz-copy-source-range must be bytes=first-last"
                        )
                    })?;
                Some(parsed)
            }
        };
        let objects = target.objects()?.clone();
        let (key, id, number) = (input.key, input.upload_id, input.part_number);
        let conditions = CopyConditions {
            if_match: input.copy_source_if_match,
            if_none_match: input.copy_source_if_none_match,
            if_modified_since: input.copy_source_if_modified_since,
            if_unmodified_since: input.copy_source_if_unmodified_since,
        };
        let part = blocking(move || {
            objects.upload(&key, &id)?;
            let (mut file, info) = objects.open(&source)?;
            conditions.check(&info)?;
            let (offset, len) = match range {
                None => (0, info.size),
                Some((first, last)) => {
                    if last >= info.size {
                        return Err(ObjectError::InvalidPart(
                            "the copy range is outside the source object".into(),
                        ));
                    }
                    (first, last - first + 1)
                }
            };
            let mut pending = objects.begin()?;
            objects::copy_range(&mut file, offset, len, &mut pending)?;
            objects.commit_part(pending, &key, &id, number)
        })
        .await?;
        Ok(S3Response::new(UploadPartCopyOutput {
            copy_part_result: Some(CopyPartResult {
                e_tag: Some(ETag::Strong(part.etag)),
                last_modified: Some(timestamp(part.modified)),
                ..Default::default()
            }),
            ..Default::default()
        }))
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        let target = target(&req)?;
        let input = req.input;
        check_key(&input.key)?;
        if let Some(bucket) = target.remote().cloned() {
            return remote::complete_multipart_upload(&target, bucket, input).await;
        }
        let overwrite = overwrite_mode(&target, &input.key, input.if_none_match.as_ref())?;
        check_may_replace(&target, &input.key, input.if_match.as_ref())?;
        check_if_match(target.objects()?, &input.key, input.if_match.as_ref()).await?;
        let parts: Vec<(i32, String)> = input
            .multipart_upload
            .and_then(|m| m.parts)
            .unwrap_or_default()
            .into_iter()
            .map(|p| {
                let number = p
                    .part_number
                    .ok_or_else(|| s3_error!(InvalidPart, "a part has no PartNumber"))?;
                let etag = p
                    .e_tag
                    .map(ETag::into_value)
                    .ok_or_else(|| s3_error!(InvalidPart, "a part has no ETag"))?;
                Ok((number, etag))
            })
            .collect::<S3Result<_>>()?;
        let objects = target.objects()?.clone();
        let (key, id) = (input.key.clone(), input.upload_id);
        let info = blocking(move || objects.complete_upload(&key, &id, &parts, overwrite)).await?;
        Ok(S3Response::new(CompleteMultipartUploadOutput {
            bucket: Some(target.bucket),
            key: Some(input.key),
            e_tag: Some(etag_of(&info.meta)),
            ..Default::default()
        }))
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        let target = target(&req)?;
        let input = req.input;
        check_key(&input.key)?;
        if let Some(bucket) = target.remote().cloned() {
            return remote::abort_multipart_upload(bucket, input).await;
        }
        let objects = target.objects()?.clone();
        blocking(move || objects.abort_upload(&input.key, &input.upload_id)).await?;
        Ok(S3Response::with_status(
            AbortMultipartUploadOutput::default(),
            http::StatusCode::NO_CONTENT,
        ))
    }

    async fn list_parts(
        &self,
        req: S3Request<ListPartsInput>,
    ) -> S3Result<S3Response<ListPartsOutput>> {
        let target = target(&req)?;
        let input = req.input;
        check_key(&input.key)?;
        if let Some(bucket) = target.remote().cloned() {
            return remote::list_parts(&target, bucket, input).await;
        }
        let max = input.max_parts.map_or(1000, |n| n.clamp(0, 1000) as usize);
        let marker = input.part_number_marker.unwrap_or(0);
        let objects = target.objects()?.clone();
        let (key, id) = (input.key.clone(), input.upload_id.clone());
        let parts = blocking(move || objects.list_parts(&key, &id)).await?;
        let mut page: Vec<Part> = Vec::new();
        let mut truncated = false;
        for p in parts.into_iter().filter(|p| p.number > marker) {
            if page.len() == max {
                truncated = true;
                break;
            }
            page.push(Part {
                e_tag: Some(ETag::Strong(p.etag)),
                last_modified: Some(timestamp(p.modified)),
                part_number: Some(p.number),
                size: Some(p.size as i64),
                ..Default::default()
            });
        }
        let next = page.last().and_then(|p| p.part_number);
        Ok(S3Response::new(ListPartsOutput {
            bucket: Some(target.bucket),
            key: Some(input.key),
            upload_id: Some(input.upload_id),
            max_parts: Some(max as i32),
            part_number_marker: input.part_number_marker,
            next_part_number_marker: if truncated { next } else { None },
            is_truncated: Some(truncated),
            parts: Some(page),
            ..Default::default()
        }))
    }

    async fn list_multipart_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        let target = target(&req)?;
        let input = req.input;
        let prefix = input.prefix.clone().unwrap_or_default();
        listing_scope(&target, &prefix)?;
        if let Some(bucket) = target.remote().cloned() {
            return remote::list_multipart_uploads(&target, bucket, input).await;
        }
        let max = input
            .max_uploads
            .map_or(1000, |n| n.clamp(0, 1000) as usize);
        let objects = target.objects()?.clone();
        let uploads = blocking(move || objects.list_uploads()).await?;
        let encoder = Encoder::of(input.encoding_type.as_ref())?;
        let key_marker = input.key_marker.clone().unwrap_or_default();
        let id_marker = input.upload_id_marker.clone().unwrap_or_default();
        let mut page = Vec::new();
        let mut prefixes: Vec<CommonPrefix> = Vec::new();
        let mut truncated = false;
        for (id, info) in uploads {
            if !info.key.starts_with(&prefix) || !target.grant.covers(&info.key) {
                continue;
            }
            // With a key marker alone, uploads of keys after it; with an upload id marker too,
            // also the marker key's uploads after that id.
            if !key_marker.is_empty() {
                let skip = if id_marker.is_empty() {
                    info.key <= key_marker
                } else {
                    (info.key.as_str(), id.as_str()) <= (key_marker.as_str(), id_marker.as_str())
                };
                if skip {
                    continue;
                }
            }
            if let Some(d) = input.delimiter.as_deref().filter(|d| !d.is_empty())
                && let Some(at) = info.key[prefix.len()..].find(d)
            {
                let group = format!(
                    "{}{}",
                    prefix,
                    &info.key[prefix.len()..prefix.len() + at + d.len()]
                );
                if prefixes.last().and_then(|p| p.prefix.as_deref()) != Some(group.as_str()) {
                    prefixes.push(CommonPrefix {
                        prefix: Some(group),
                    });
                }
                continue;
            }
            if page.len() == max {
                truncated = true;
                break;
            }
            page.push(MultipartUpload {
                initiated: Some(Timestamp::from(std::time::SystemTime::from(info.initiated))),
                key: Some(info.key),
                upload_id: Some(id),
                storage_class: Some(StorageClass::from_static(StorageClass::STANDARD)),
                ..Default::default()
            });
        }
        let (next_key, next_id) = match (truncated, page.last()) {
            (true, Some(last)) => (last.key.clone(), last.upload_id.clone()),
            _ => (None, None),
        };
        for upload in &mut page {
            upload.key = encoder.opt(upload.key.take());
        }
        for prefix in &mut prefixes {
            prefix.prefix = encoder.opt(prefix.prefix.take());
        }
        Ok(S3Response::new(ListMultipartUploadsOutput {
            bucket: Some(target.bucket),
            prefix: encoder.opt(input.prefix),
            delimiter: encoder.opt(input.delimiter),
            key_marker: encoder.opt(input.key_marker),
            upload_id_marker: input.upload_id_marker,
            max_uploads: Some(max as i32),
            is_truncated: Some(truncated),
            next_key_marker: encoder.opt(next_key),
            next_upload_id_marker: next_id,
            uploads: Some(page),
            common_prefixes: Some(prefixes),
            encoding_type: input.encoding_type,
            ..Default::default()
        }))
    }
}
