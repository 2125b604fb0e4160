//! Format v3 types the catalog's model cannot parse yet (`variant`, `geometry(C)`,
//! `geography(C, A)`, `unknown`), carried through it in disguise.
//!
//! The `iceberg` crate (0.10) that Floe's metadata rules are written over has no such types, so a
//! schema holding one cannot become its `Schema`. Floe does not need to understand them: it never
//! reads their values, and the spec allows them no partition transform but `void`, no sort and
//! no default. So before a schema reaches the crate each such type is *lowered* to a placeholder
//! the crate accepts, `fixed[L]` with a length no real table uses (`2^62` plus a 32-bit hash of
//! the type's text), and the type's text is kept in a table (or view) property named
//! `floe.type.<hash>`. The placeholder names its type by itself, so it survives everything the
//! crate does to a schema (fresh ids on create, renames, moves); the property rides along in the
//! crate's metadata. On the way out, [`raise_metadata`] puts every type back and removes the
//! properties, so no client, file or event ever sees either.
//!
//! Requests: clients may not set or remove `floe.type.*` properties, nor use `fixed` lengths of
//! 2^31 or more (Java's limit, and far below the placeholders).
//!
//! Pure logic over JSON.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// The prefix of the properties that hold the carried types' text.
pub const PROPERTY_PREFIX: &str = "floe.type.";

/// Placeholder lengths start here; a placeholder's length is this plus the type's hash.
const BASE: u64 = 1 << 62;

/// The longest `fixed` a client may declare (Java's lengths are `int`s).
const MAX_FIXED: u64 = (1 << 31) - 1;

/// Whether `ty` (a primitive type's JSON text) is one of the carried types.
pub fn is_carried(ty: &str) -> bool {
    ty == "variant"
        || ty == "unknown"
        || is_parameterized(ty, "geometry")
        || is_parameterized(ty, "geography")
}

fn is_parameterized(ty: &str, name: &str) -> bool {
    ty.strip_prefix(name)
        .is_some_and(|rest| rest.is_empty() || (rest.starts_with('(') && rest.ends_with(')')))
}

/// Whether a `fixed` length is a placeholder for a carried type.
pub fn is_placeholder(length: u64) -> bool {
    length >= BASE
}

/// The carried type a placeholder length stands for, read from `properties`.
pub fn carried_type(
    length: u64,
    properties: &std::collections::HashMap<String, String>,
) -> Option<&str> {
    let hash = length.checked_sub(BASE)?;
    properties
        .get(&format!("{PROPERTY_PREFIX}{hash}"))
        .map(String::as_str)
}

/// Whether any property of `properties` is a carried type's.
pub fn holds_carried<'a>(mut keys: impl Iterator<Item = &'a String>) -> bool {
    keys.any(|k| k.starts_with(PROPERTY_PREFIX))
}

/// 32-bit FNV-1a: stable across builds and machines, which a placeholder must be.
fn hash(text: &str) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for byte in text.bytes() {
        h ^= u32::from(byte);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// Whether a metadata document or request may hold something to lower or refuse: a cheap search
/// of the bytes that lets the common case skip a parse into `Value`.
pub fn may_hold(json: &[u8]) -> bool {
    const MARKS: [&[u8]; 6] = [
        b"\"variant\"",
        b"\"unknown\"",
        b"\"geometry",
        b"\"geography",
        PROPERTY_PREFIX.as_bytes(),
        b"\"fixed[",
    ];
    MARKS
        .iter()
        .any(|mark| memchr::memmem::find(json, mark).is_some())
}

/// Carried types found while lowering: property name to type text.
type Found = BTreeMap<String, String>;

/// Lowers the carried types of one schema (a `struct` type object) in place, recording each in
/// `found`. Refuses what the spec forbids for them (a default value, a required `unknown`) and
/// `fixed` lengths beyond [`MAX_FIXED`].
pub fn lower_schema(schema: &mut Value, found: &mut Found) -> Result<(), String> {
    // Anything but an object is not a schema: left for the parser to refuse as it is.
    if !schema.is_object() {
        return Ok(());
    }
    lower_type(schema, found)
}

fn lower_type(ty: &mut Value, found: &mut Found) -> Result<(), String> {
    match ty {
        Value::String(text) => {
            if is_carried(text) {
                let hash = hash(text);
                let key = format!("{PROPERTY_PREFIX}{hash}");
                match found.get(&key) {
                    Some(other) if other != text => {
                        return Err(format!(
                            "types {other} and {text} cannot be used in one table"
                        ));
                    }
                    Some(_) => {}
                    None => {
                        found.insert(key, text.clone());
                    }
                }
                *text = format!("fixed[{}]", BASE + u64::from(hash));
            } else if let Some(length) = fixed_length(text)
                && length > MAX_FIXED
            {
                return Err(format!(
                    "{text}: a fixed type may be at most {MAX_FIXED} bytes long"
                ));
            }
            Ok(())
        }
        Value::Object(object) => match object.get("type").and_then(Value::as_str) {
            Some("struct") => {
                let Some(Value::Array(fields)) = object.get_mut("fields") else {
                    return Ok(());
                };
                for field in fields {
                    check_field(field)?;
                    if let Some(ty) = field.get_mut("type") {
                        lower_type(ty, found)?;
                    }
                }
                Ok(())
            }
            Some("list") => match object.get_mut("element") {
                Some(element) => lower_type(element, found),
                None => Ok(()),
            },
            Some("map") => {
                if let Some(key) = object.get_mut("key") {
                    lower_type(key, found)?;
                }
                match object.get_mut("value") {
                    Some(value) => lower_type(value, found),
                    None => Ok(()),
                }
            }
            _ => Ok(()),
        },
        _ => Ok(()),
    }
}

/// The spec's rules for a field of a carried type: "must default to null", and `unknown`
/// columns are optional.
fn check_field(field: &Value) -> Result<(), String> {
    let Some(ty) = field.get("type").and_then(Value::as_str) else {
        return Ok(());
    };
    if !is_carried(ty) {
        return Ok(());
    }
    let name = field.get("name").and_then(Value::as_str).unwrap_or("");
    for default in ["initial-default", "write-default"] {
        if field.get(default).is_some_and(|v| !v.is_null()) {
            return Err(format!(
                "field {name:?}: a column of type {ty} cannot have a non-null {default}"
            ));
        }
    }
    if ty == "unknown" && field.get("required").and_then(Value::as_bool) == Some(true) {
        return Err(format!(
            "field {name:?}: a column of type unknown must be optional"
        ));
    }
    Ok(())
}

fn fixed_length(text: &str) -> Option<u64> {
    text.strip_prefix("fixed[")?
        .strip_suffix(']')?
        .trim()
        .parse()
        .ok()
}

/// Lowers every schema of a table or view metadata document and records the carried types in its
/// properties (any `floe.type.*` property it brought is dropped first: only its schemas count).
pub fn lower_metadata(doc: &mut Value) -> Result<(), String> {
    let Some(object) = doc.as_object_mut() else {
        return Ok(());
    };
    let mut found = Found::new();
    for key in ["schemas", "schema"] {
        match object.get_mut(key) {
            Some(Value::Array(schemas)) => {
                for schema in schemas {
                    lower_schema(schema, &mut found)?;
                }
            }
            Some(schema @ Value::Object(_)) => lower_schema(schema, &mut found)?,
            _ => {}
        }
    }
    if let Some(Value::Object(properties)) = object.get_mut("properties") {
        properties.retain(|k, _| !k.starts_with(PROPERTY_PREFIX));
    }
    add_properties(object, found);
    Ok(())
}

/// Records the carried types `found` in a document's or request's `properties`.
fn add_properties(object: &mut Map<String, Value>, found: Found) {
    if found.is_empty() {
        return;
    }
    let properties = object
        .entry("properties")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Some(properties) = properties.as_object_mut() {
        properties.extend(found.into_iter().map(|(k, v)| (k, Value::String(v))));
    }
}

/// Puts the carried types back into every schema of a metadata document and removes their
/// properties. A document without such properties is left as it is.
pub fn raise_metadata(doc: &mut Value) {
    let Some(object) = doc.as_object_mut() else {
        return;
    };
    let types = match object.get_mut("properties") {
        Some(Value::Object(properties)) => take_carried(properties),
        _ => return,
    };
    if types.is_empty() {
        return;
    }
    for key in ["schemas", "schema"] {
        match object.get_mut(key) {
            Some(Value::Array(schemas)) => {
                for schema in schemas {
                    raise_type(schema, &types);
                }
            }
            Some(schema @ Value::Object(_)) => raise_type(schema, &types),
            _ => {}
        }
    }
}

/// [`raise_metadata`] over serialized JSON; the bytes come back unchanged when `properties` names
/// no carried type.
pub fn raise_metadata_json<'a>(
    json: Vec<u8>,
    properties: impl Iterator<Item = &'a String>,
) -> serde_json::Result<Vec<u8>> {
    if !holds_carried(properties) {
        return Ok(json);
    }
    let mut doc: Value = serde_json::from_slice(&json)?;
    raise_metadata(&mut doc);
    serde_json::to_vec(&doc)
}

fn take_carried(properties: &mut Map<String, Value>) -> BTreeMap<u64, String> {
    let mut types = BTreeMap::new();
    properties.retain(|key, value| {
        let Some(hash) = key.strip_prefix(PROPERTY_PREFIX) else {
            return true;
        };
        if let (Ok(hash), Some(ty)) = (hash.parse::<u64>(), value.as_str()) {
            types.insert(BASE + hash, ty.to_string());
        }
        false
    });
    types
}

fn raise_type(ty: &mut Value, types: &BTreeMap<u64, String>) {
    match ty {
        Value::String(text) => {
            if let Some(original) = fixed_length(text).and_then(|length| types.get(&length)) {
                *text = original.clone();
            }
        }
        Value::Object(object) => {
            if let Some(Value::Array(fields)) = object.get_mut("fields") {
                for field in fields {
                    if let Some(ty) = field.get_mut("type") {
                        raise_type(ty, types);
                    }
                }
            }
            for key in ["element", "key", "value"] {
                if let Some(inner) = object.get_mut(key) {
                    raise_type(inner, types);
                }
            }
        }
        _ => {}
    }
}

/// Refuses client-given properties that would forge or drop a carried type.
fn refuse_reserved<'a>(mut names: impl Iterator<Item = &'a str>) -> Result<(), String> {
    match names.find(|k| k.starts_with(PROPERTY_PREFIX)) {
        Some(name) => Err(format!(
            "property {name:?}: properties starting with {PROPERTY_PREFIX:?} are reserved"
        )),
        None => Ok(()),
    }
}

/// Lowers a create request (table or view): its `schema`, with the carried types added to its
/// `properties`.
pub fn lower_create(body: &mut Value) -> Result<(), String> {
    let Some(object) = body.as_object_mut() else {
        return Ok(());
    };
    if let Some(Value::Object(properties)) = object.get("properties") {
        refuse_reserved(properties.keys().map(String::as_str))?;
    }
    let mut found = Found::new();
    if let Some(schema) = object.get_mut("schema") {
        lower_schema(schema, &mut found)?;
    }
    // A view's create carries its first version's schema the same way.
    add_properties(object, found);
    Ok(())
}

/// Lowers a list of table or view updates: each `add-schema`'s schema, with one `set-properties`
/// appended for the carried types they hold; refuses updates that set or remove their properties.
pub fn lower_updates(updates: &mut Value) -> Result<(), String> {
    let Some(list) = updates.as_array_mut() else {
        return Ok(());
    };
    let mut found = Found::new();
    for update in list.iter_mut() {
        match update.get("action").and_then(Value::as_str) {
            Some("set-properties") => {
                if let Some(Value::Object(set)) = update.get("updates") {
                    refuse_reserved(set.keys().map(String::as_str))?;
                }
            }
            Some("remove-properties") => {
                if let Some(Value::Array(removals)) = update.get("removals") {
                    refuse_reserved(removals.iter().filter_map(Value::as_str))?;
                }
            }
            Some("add-schema") => {
                if let Some(schema) = update.get_mut("schema") {
                    lower_schema(schema, &mut found)?;
                }
            }
            _ => {}
        }
    }
    if !found.is_empty() {
        let set: Map<String, Value> = found
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect();
        list.push(serde_json::json!({"action": "set-properties", "updates": set}));
    }
    Ok(())
}

/// The inverse of [`lower_updates`] for what is shown of a commit (its change events): the
/// `add-schema` updates get their types back and the appended `set-properties` goes away.
pub fn raise_updates(updates: &mut Value) {
    let Some(list) = updates.as_array_mut() else {
        return;
    };
    let mut types = BTreeMap::new();
    list.retain_mut(|update| {
        if update.get("action").and_then(Value::as_str) != Some("set-properties") {
            return true;
        }
        match update.get_mut("updates") {
            Some(Value::Object(set)) if set.keys().any(|k| k.starts_with(PROPERTY_PREFIX)) => {
                types.extend(take_carried(set));
                !set.is_empty()
            }
            _ => true,
        }
    });
    if types.is_empty() {
        return;
    }
    for update in list {
        if update.get("action").and_then(Value::as_str) == Some("add-schema")
            && let Some(schema) = update.get_mut("schema")
        {
            raise_type(schema, &types);
        }
    }
}

/// `message` (an error of the crate's) with stand-in types named as what they stand for, in
/// general terms: the crate writes them as `fixed(L)` or `fixed[L]`.
pub fn mask_placeholders(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(at) = rest.find("fixed") {
        out.push_str(&rest[..at]);
        let tail = &rest[at + "fixed".len()..];
        let digits = tail
            .get(1..)
            .map(|t| t.bytes().take_while(u8::is_ascii_digit).count())
            .unwrap_or(0);
        let closes = tail.as_bytes().get(1 + digits).copied();
        let stand_in = matches!(
            (tail.as_bytes().first(), closes),
            (Some(b'('), Some(b')')) | (Some(b'['), Some(b']'))
        ) && tail[1..1 + digits].parse::<u64>().is_ok_and(is_placeholder);
        if stand_in {
            out.push_str("variant/geometry/geography/unknown");
            rest = &tail[digits + 2..];
        } else {
            out.push_str("fixed");
            rest = tail;
        }
    }
    out.push_str(rest);
    out
}

/// A manifest (an Avro object container file) whose header's Iceberg `schema` holds carried
/// types, with that schema lowered: the crate parses the header's schema to read a manifest.
/// `None` when there is nothing to change (not Avro, no such types, a header it cannot read:
/// the crate then reports what is wrong). Only the header is rewritten; the blocks after the
/// sync marker are copied as they are.
pub fn lower_manifest(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut at = 4;
    if bytes.get(..at)? != b"Obj\x01" {
        return None;
    }
    let mut entries: Vec<(&[u8], Vec<u8>)> = Vec::new();
    loop {
        let mut count = read_long(bytes, &mut at)?;
        if count == 0 {
            break;
        }
        if count < 0 {
            count = count.checked_neg()?;
            read_long(bytes, &mut at)?; // the block's size in bytes
        }
        for _ in 0..count {
            let key = read_bytes(bytes, &mut at)?;
            let value = read_bytes(bytes, &mut at)?;
            entries.push((key, value.to_vec()));
        }
    }
    let mut changed = false;
    for (key, value) in &mut entries {
        if *key != b"schema" || !may_hold(value) {
            continue;
        }
        let mut schema: Value = serde_json::from_slice(value).ok()?;
        lower_schema(&mut schema, &mut Found::new()).ok()?;
        *value = serde_json::to_vec(&schema).ok()?;
        changed = true;
    }
    if !changed {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len() + 64);
    out.extend_from_slice(b"Obj\x01");
    write_long(&mut out, entries.len() as i64);
    for (key, value) in &entries {
        write_long(&mut out, key.len() as i64);
        out.extend_from_slice(key);
        write_long(&mut out, value.len() as i64);
        out.extend_from_slice(value);
    }
    write_long(&mut out, 0);
    out.extend_from_slice(&bytes[at..]);
    Some(out)
}

/// An Avro `long`: zig-zag encoded, in base-128 groups, low first.
fn read_long(bytes: &[u8], at: &mut usize) -> Option<i64> {
    let mut value: u64 = 0;
    for shift in (0..64).step_by(7) {
        let byte = *bytes.get(*at)?;
        *at += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some((value >> 1) as i64 ^ -((value & 1) as i64));
        }
    }
    None
}

fn read_bytes<'a>(bytes: &'a [u8], at: &mut usize) -> Option<&'a [u8]> {
    let length = usize::try_from(read_long(bytes, at)?).ok()?;
    let slice = bytes.get(*at..at.checked_add(length)?)?;
    *at += length;
    Some(slice)
}

fn write_long(out: &mut Vec<u8>, value: i64) {
    let mut zigzag = ((value << 1) ^ (value >> 63)) as u64;
    loop {
        let byte = (zigzag & 0x7f) as u8;
        zigzag >>= 7;
        if zigzag == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({"type": "struct", "schema-id": 0, "fields": [
            {"id": 1, "name": "id", "required": true, "type": "long"},
            {"id": 2, "name": "v", "required": false, "type": "variant"},
            {"id": 3, "name": "g", "required": false, "type": "geometry(srid:4326)"},
            {"id": 4, "name": "s", "required": false, "type": {"type": "struct", "fields": [
                {"id": 5, "name": "u", "required": false, "type": "unknown"},
                {"id": 6, "name": "f", "required": false, "type": "fixed[16]"}]}},
            {"id": 7, "name": "l", "required": false, "type": {"type": "list",
                "element-id": 8, "element": "geography(srid:4326, karney)",
                "element-required": false}},
            {"id": 9, "name": "m", "required": false, "type": {"type": "map",
                "key-id": 10, "key": "string", "value-id": 11, "value": "variant",
                "value-required": false}}
        ]})
    }

    #[test]
    fn a_lowered_document_parses_in_the_crate_and_raises_back_to_itself() {
        let original = json!({"format-version": 3, "schemas": [schema()],
            "properties": {"owner": "me"}});
        let mut doc = original.clone();
        lower_metadata(&mut doc).unwrap();
        let text = doc["schemas"].to_string();
        for ty in ["variant", "geometry", "geography", "unknown"] {
            assert!(
                !text.contains(&format!("\"{ty}")),
                "{ty} left in the schema: {text}"
            );
        }
        assert_eq!(
            doc["properties"]
                .as_object()
                .unwrap()
                .keys()
                .filter(|k| k.starts_with(PROPERTY_PREFIX))
                .count(),
            4
        );
        // The crate parses the lowered schema, and writes it back with the placeholders.
        let parsed: iceberg::spec::Schema =
            serde_json::from_value(doc["schemas"][0].clone()).unwrap();
        doc["schemas"][0] = serde_json::to_value(&parsed).unwrap();
        raise_metadata(&mut doc);
        assert_eq!(doc["properties"], json!({"owner": "me"}));
        let fields = |d: &Value| d["schemas"][0]["fields"].clone();
        assert_eq!(fields(&doc), fields(&original));
    }

    #[test]
    fn placeholders_survive_the_crates_fresh_ids_on_create() {
        // Ids out of the crate's order: create reassigns them; the types follow their columns.
        let mut schema = json!({"type": "struct", "fields": [
            {"id": 7, "name": "v", "required": false, "type": "variant"},
            {"id": 3, "name": "l", "required": false, "type": {"type": "list",
                "element-id": 5, "element": "unknown", "element-required": false}}]});
        let mut found = Found::new();
        lower_schema(&mut schema, &mut found).unwrap();
        let schema: iceberg::spec::Schema = serde_json::from_value(schema).unwrap();
        let properties = found.into_iter().collect();
        let metadata = iceberg::spec::TableMetadataBuilder::new(
            schema,
            iceberg::spec::UnboundPartitionSpec::builder().build(),
            iceberg::spec::SortOrder::unsorted_order(),
            "file:///t".into(),
            iceberg::spec::FormatVersion::V3,
            properties,
        )
        .unwrap()
        .build()
        .unwrap()
        .metadata;
        let mut doc = serde_json::to_value(&metadata).unwrap();
        raise_metadata(&mut doc);
        let fields = &doc["schemas"][0]["fields"];
        assert_eq!(fields[0]["type"], "variant");
        assert_eq!(fields[1]["type"]["element"], "unknown");
        assert_ne!(fields[0]["id"], 7);
    }

    #[test]
    fn what_the_spec_forbids_for_carried_types_is_refused() {
        let field = |f: Value| json!({"type": "struct", "fields": [f]});
        for (bad, why) in [
            (
                json!({"id": 1, "name": "v", "required": false, "type": "variant",
                       "write-default": "x"}),
                "non-null write-default",
            ),
            (
                json!({"id": 1, "name": "g", "required": false, "type": "geometry",
                       "initial-default": "x"}),
                "non-null initial-default",
            ),
            (
                json!({"id": 1, "name": "u", "required": true, "type": "unknown"}),
                "must be optional",
            ),
            (
                json!({"id": 1, "name": "f", "required": false,
                       "type": format!("fixed[{}]", BASE)}),
                "at most",
            ),
        ] {
            let err = lower_schema(&mut field(bad), &mut Found::new()).unwrap_err();
            assert!(err.contains(why), "{err}");
        }
        // Not a schema at all: left alone for the parser to refuse.
        let mut text = json!("variant");
        lower_schema(&mut text, &mut Found::new()).unwrap();
        assert_eq!(text, "variant");
        // Null defaults are what the spec asks for.
        lower_schema(
            &mut field(
                json!({"id": 1, "name": "v", "required": false, "type": "variant",
                              "initial-default": null}),
            ),
            &mut Found::new(),
        )
        .unwrap();
        // Names that only look like the types are other types, left to the crate.
        assert!(!is_carried("geometryx"));
        assert!(!is_carried("geography(srid:4326"));
        assert!(is_carried("geography"));
    }

    #[test]
    fn requests_may_not_touch_the_carried_types_properties() {
        let mut create = json!({"name": "t", "schema": schema(),
            "properties": {"floe.type.1": "variant"}});
        assert!(lower_create(&mut create).unwrap_err().contains("reserved"));
        for update in [
            json!({"action": "set-properties", "updates": {"floe.type.9": "unknown"}}),
            json!({"action": "remove-properties", "removals": ["a", "floe.type.9"]}),
        ] {
            assert!(
                lower_updates(&mut json!([update]))
                    .unwrap_err()
                    .contains("reserved")
            );
        }
    }

    #[test]
    fn updates_lower_and_raise_back() {
        let original = json!([
            {"action": "add-schema", "schema": schema()},
            {"action": "set-current-schema", "schema-id": -1},
            {"action": "set-properties", "updates": {"a": "1"}}
        ]);
        let mut updates = original.clone();
        lower_updates(&mut updates).unwrap();
        assert_eq!(updates.as_array().unwrap().len(), 4);
        assert!(!updates[0].to_string().contains("variant"));
        let parsed: Vec<iceberg::TableUpdate> = serde_json::from_value(updates.clone()).unwrap();
        assert_eq!(parsed.len(), 4);
        raise_updates(&mut updates);
        assert_eq!(updates, original);

        let mut create = json!({"name": "t", "schema": schema()});
        lower_create(&mut create).unwrap();
        assert_eq!(create["properties"].as_object().unwrap().len(), 4);
    }

    #[test]
    fn a_manifests_header_schema_is_lowered_and_its_blocks_kept() {
        let schema = json!({"type": "struct", "schema-id": 0, "fields": [
            {"id": 1, "name": "v", "required": false, "type": "variant"}]})
        .to_string();
        let mut file = b"Obj\x01".to_vec();
        // One block of two entries (negative count with a size), then the end.
        write_long(&mut file, -2);
        write_long(&mut file, 0);
        for (key, value) in [("avro.codec", "null"), ("schema", schema.as_str())] {
            write_long(&mut file, key.len() as i64);
            file.extend_from_slice(key.as_bytes());
            write_long(&mut file, value.len() as i64);
            file.extend_from_slice(value.as_bytes());
        }
        write_long(&mut file, 0);
        let rest = b"0123456789abcdef-blocks-";
        file.extend_from_slice(rest);

        let lowered = lower_manifest(&file).unwrap();
        assert!(lowered.ends_with(rest));
        let mut at = 4;
        assert_eq!(read_long(&lowered, &mut at), Some(2));
        assert_eq!(read_bytes(&lowered, &mut at), Some(&b"avro.codec"[..]));
        assert_eq!(read_bytes(&lowered, &mut at), Some(&b"null"[..]));
        assert_eq!(read_bytes(&lowered, &mut at), Some(&b"schema"[..]));
        let schema: iceberg::spec::Schema =
            serde_json::from_slice(read_bytes(&lowered, &mut at).unwrap()).unwrap();
        assert_eq!(schema.highest_field_id(), 1);
        assert_eq!(read_long(&lowered, &mut at), Some(0));
        // Nothing to change: no copy.
        assert!(lower_manifest(&lowered).is_none());
        assert!(lower_manifest(b"PAR1").is_none());
        for value in [0, 1, -1, 63, -64, 64, 1 << 40, i64::MIN, i64::MAX] {
            let mut out = Vec::new();
            write_long(&mut out, value);
            assert_eq!(read_long(&out, &mut 0), Some(value));
        }
    }

    #[test]
    fn error_messages_name_no_stand_in() {
        let stand_in = BASE + 17;
        assert_eq!(
            mask_placeholders(&format!(
                "cannot promote fixed({stand_in}) to string; fixed[{stand_in}] either; fixed(16) stays"
            )),
            "cannot promote variant/geometry/geography/unknown to string; \
             variant/geometry/geography/unknown either; fixed(16) stays"
        );
        assert_eq!(mask_placeholders("fixed("), "fixed(");
        assert_eq!(mask_placeholders("prefixed[12x]"), "prefixed[12x]");
    }
}
