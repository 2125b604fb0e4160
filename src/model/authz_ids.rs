//! The ids of namespaces, tables and views in the authorization model (`authz/floe.fga`).

use uuid::Uuid;

use super::{NamespaceIdent, WarehouseId};

impl NamespaceIdent {
    /// The id of the namespace in the authorization model: `<warehouse id>/<levels>`, the
    /// levels joined by U+001F and percent-encoded (only ASCII letters, digits and `-._~` stay),
    /// so that it holds no `:`, `#`, `/` or whitespace and reads back exactly. Namespaces are
    /// named by path because every branch's copy of one shares it (Iceberg has no namespace
    /// rename).
    pub fn object_id(&self, warehouse: WarehouseId) -> String {
        let mut out = format!("{}/", warehouse.0);
        for b in self.joined().bytes() {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                out.push(b as char);
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
        out
    }

    /// Reads back [`NamespaceIdent::object_id`].
    pub fn from_object_id(id: &str) -> Option<(WarehouseId, NamespaceIdent)> {
        let (warehouse, encoded) = id.split_once('/')?;
        let warehouse = WarehouseId(Uuid::parse_str(warehouse).ok()?);
        let bytes = encoded.as_bytes();
        let mut raw = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%' {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                if hex.chars().any(|c| c.is_ascii_lowercase()) {
                    return None;
                }
                raw.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            } else {
                let b = bytes[i];
                if !(b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')) {
                    return None;
                }
                raw.push(b);
                i += 1;
            }
        }
        let ident = NamespaceIdent::from_joined(&String::from_utf8(raw).ok()?).ok()?;
        // One spelling per namespace: what does not read back to itself is not an id.
        (ident.object_id(warehouse) == id).then_some((warehouse, ident))
    }
}

/// The id of a table or view in the authorization model: `<warehouse id>/<its UUID>`. The UUID
/// follows it across branches, renames and merges, and is the warehouse's alone (a new table
/// cannot take one the warehouse has known, see `service::claims`).
pub fn tabular_object_id(warehouse: WarehouseId, uuid: Uuid) -> String {
    format!("{}/{}", warehouse.0, uuid)
}

/// Reads back [`tabular_object_id`] (only its one spelling).
pub fn parse_tabular_object_id(id: &str) -> Option<(WarehouseId, Uuid)> {
    let (warehouse, uuid) = id.split_once('/')?;
    let (warehouse, uuid) = (
        Uuid::parse_str(warehouse).ok()?,
        Uuid::parse_str(uuid).ok()?,
    );
    (tabular_object_id(WarehouseId(warehouse), uuid) == id)
        .then_some((WarehouseId(warehouse), uuid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorization_ids_read_back_in_one_spelling() {
        let w = WarehouseId(Uuid::parse_str("0192a000-0000-7000-8000-000000000001").unwrap());
        for levels in [
            vec!["a"],
            vec!["a", "b"],
            vec!["with space", "per%cent", "sl/ash", "colon:hash#", "dé.jà~"],
        ] {
            let ident =
                NamespaceIdent::new(levels.iter().map(|s| s.to_string()).collect()).unwrap();
            let id = ident.object_id(w);
            assert!(!id[37..].contains(['/', ':', '#', ' ']), "{id}");
            assert_eq!(NamespaceIdent::from_object_id(&id), Some((w, ident)));
        }
        assert_eq!(
            NamespaceIdent::new(vec!["a".into(), "b".into()])
                .unwrap()
                .object_id(w),
            format!("{}/a%1Fb", w.0)
        );
        // Other spellings of the same name are not ids: one object, one id.
        for other in [
            format!("{}/a%1fb", w.0),
            format!("{}/%61", w.0),
            format!("{}/a b", w.0),
            format!("{}/", w.0),
            format!("{}/a", w.0.to_string().to_uppercase()),
            "a".to_string(),
        ] {
            assert_eq!(NamespaceIdent::from_object_id(&other), None, "{other}");
        }
        let t = Uuid::now_v7();
        assert_eq!(
            parse_tabular_object_id(&tabular_object_id(w, t)),
            Some((w, t))
        );
        assert_eq!(
            parse_tabular_object_id(&format!("{}/{}", w.0, t.to_string().to_uppercase())),
            None
        );
    }
}
