//! Filters of scan planning requests: the REST spec's expression JSON made into the `iceberg`
//! crate's `Predicate`, with each literal typed by the field it is compared with.
//!
//! Both forms the spec allows are read: the current one (`child`, `left`/`right`, references as
//! `{"type": "reference", "name": ...}` or by `id`, literal objects) and the deprecated one older
//! clients send (`term` as a plain name, `value`). Transforms applied to a term are refused (400):
//! the crate's predicates take plain references only. Names are resolved here, case-insensitively
//! when asked, and handed to the crate exactly as the schema spells them.

use iceberg::expr::{Predicate, Reference};
use iceberg::spec::{Datum, Literal, PrimitiveLiteral, PrimitiveType, Schema, Type};
use serde_json::Value;

use crate::error::{Error, Result};

/// How deep a filter may nest (a bound on the recursion a client can ask for).
const MAX_DEPTH: usize = 64;
/// How many values an `in` or `not-in` may list.
const MAX_SET: usize = 10_000;

/// The predicate a filter stands for, over `schema`.
pub fn parse_filter(filter: &Value, schema: &Schema, case_sensitive: bool) -> Result<Predicate> {
    Parser {
        schema,
        case_sensitive,
    }
    .predicate(filter, 0)
}

/// A field name as the schema spells it (`name`, matched case-insensitively when asked).
pub fn resolve_name(schema: &Schema, name: &str, case_sensitive: bool) -> Result<String> {
    let field = if case_sensitive {
        schema.field_by_name(name)
    } else {
        schema.field_by_name_case_insensitive(name)
    };
    field
        .and_then(|f| schema.name_by_field_id(f.id))
        .map(str::to_string)
        .ok_or_else(|| Error::bad_request(format!("the table has no field {name:?}")))
}

struct Parser<'a> {
    schema: &'a Schema,
    case_sensitive: bool,
}

fn bad(message: impl Into<String>) -> Error {
    Error::bad_request(format!("invalid filter: {}", message.into()))
}

impl Parser<'_> {
    fn predicate(&self, value: &Value, depth: usize) -> Result<Predicate> {
        if depth > MAX_DEPTH {
            return Err(bad(format!("nested deeper than {MAX_DEPTH} levels")));
        }
        let object = match value {
            Value::Bool(true) => return Ok(Predicate::AlwaysTrue),
            Value::Bool(false) => return Ok(Predicate::AlwaysFalse),
            Value::Object(object) => object,
            other => return Err(bad(format!("expected a predicate, found {other}"))),
        };
        let kind = object
            .get("type")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("a predicate needs a string \"type\""))?;
        let child = |key: &str| {
            object
                .get(key)
                .ok_or_else(|| bad(format!("{kind:?} needs {key:?}")))
        };
        Ok(match kind {
            "true" => Predicate::AlwaysTrue,
            "false" => Predicate::AlwaysFalse,
            "and" => self
                .predicate(child("left")?, depth + 1)?
                .and(self.predicate(child("right")?, depth + 1)?),
            "or" => self
                .predicate(child("left")?, depth + 1)?
                .or(self.predicate(child("right")?, depth + 1)?),
            "not" => !self.predicate(child("child")?, depth + 1)?,
            "is-null" | "not-null" | "is-nan" | "not-nan" => {
                let (reference, _) = self.operand(object, &["child", "term"], kind)?;
                match kind {
                    "is-null" => reference.is_null(),
                    "not-null" => reference.is_not_null(),
                    "is-nan" => reference.is_nan(),
                    _ => reference.is_not_nan(),
                }
            }
            "lt" | "lt-eq" | "gt" | "gt-eq" | "eq" | "not-eq" | "starts-with"
            | "not-starts-with" => {
                let (reference, ty) = self.operand(object, &["left", "term"], kind)?;
                let literal = object
                    .get("right")
                    .or_else(|| object.get("value"))
                    .ok_or_else(|| bad(format!("{kind:?} needs a value (\"right\")")))?;
                let datum = datum(literal_value(literal)?, &ty, kind)?;
                if matches!(kind, "starts-with" | "not-starts-with") && ty != PrimitiveType::String
                {
                    return Err(bad(format!("{kind:?} applies to strings only")));
                }
                match kind {
                    "lt" => reference.less_than(datum),
                    "lt-eq" => reference.less_than_or_equal_to(datum),
                    "gt" => reference.greater_than(datum),
                    "gt-eq" => reference.greater_than_or_equal_to(datum),
                    "eq" => reference.equal_to(datum),
                    "not-eq" => reference.not_equal_to(datum),
                    "starts-with" => reference.starts_with(datum),
                    _ => reference.not_starts_with(datum),
                }
            }
            "in" | "not-in" => {
                let (reference, ty) = self.operand(object, &["child", "term"], kind)?;
                let values = match child("values")? {
                    Value::Array(values) => values.clone(),
                    Value::Object(typed) => match typed.get("values") {
                        Some(Value::Array(values)) => values.clone(),
                        _ => return Err(bad("typed literals need a \"values\" array")),
                    },
                    other => return Err(bad(format!("\"values\" must be a list, not {other}"))),
                };
                if values.len() > MAX_SET {
                    return Err(bad(format!("{kind:?} lists more than {MAX_SET} values")));
                }
                let datums = values
                    .iter()
                    .map(|v| datum(literal_value(v)?, &ty, kind))
                    .collect::<Result<Vec<_>>>()?;
                if kind == "in" {
                    reference.is_in(datums)
                } else {
                    reference.is_not_in(datums)
                }
            }
            other => return Err(bad(format!("unknown predicate type {other:?}"))),
        })
    }

    /// The field a predicate tests (under the first of `keys` present) and its type.
    fn operand(
        &self,
        object: &serde_json::Map<String, Value>,
        keys: &[&str],
        kind: &str,
    ) -> Result<(Reference, PrimitiveType)> {
        let term = keys
            .iter()
            .find_map(|k| object.get(*k))
            .ok_or_else(|| bad(format!("{kind:?} needs {:?}", keys[0])))?;
        let field = match term {
            Value::String(name) => self.field_by_name(name)?,
            Value::Object(reference) => match reference.get("type").and_then(Value::as_str) {
                Some("reference") => match (reference.get("name"), reference.get("id")) {
                    (Some(Value::String(name)), _) => self.field_by_name(name)?,
                    (_, Some(id)) => {
                        let id = id
                            .as_i64()
                            .and_then(|id| i32::try_from(id).ok())
                            .ok_or_else(|| bad(format!("field id {id} is not an integer")))?;
                        let name = self
                            .schema
                            .name_by_field_id(id)
                            .ok_or_else(|| bad(format!("the table has no field with id {id}")))?;
                        name.to_string()
                    }
                    _ => return Err(bad("a reference needs a \"name\" or an \"id\"")),
                },
                Some("transform" | "apply") => {
                    return Err(bad(
                        "transforms and functions in filters are not supported; filter on the \
                         source column",
                    ));
                }
                _ => return Err(bad(format!("expected a field reference, found {term}"))),
            },
            other => return Err(bad(format!("expected a field reference, found {other}"))),
        };
        let ty = match self.schema.field_by_name(&field).map(|f| &*f.field_type) {
            Some(Type::Primitive(ty)) => ty.clone(),
            _ => return Err(bad(format!("field {field:?} is not of a primitive type"))),
        };
        Ok((Reference::new(field), ty))
    }

    fn field_by_name(&self, name: &str) -> Result<String> {
        resolve_name(self.schema, name, self.case_sensitive).map_err(|_| {
            bad(format!(
                "the table has no field {name:?}{}",
                if self.case_sensitive {
                    " (names are case-sensitive unless case-sensitive is false)"
                } else {
                    ""
                }
            ))
        })
    }
}

/// The value of a literal: bare, or inside `{"type": "literal", "value": ...}`.
fn literal_value(value: &Value) -> Result<Value> {
    match value {
        Value::Object(object) => match (object.get("type"), object.get("value")) {
            (Some(Value::String(t)), Some(v)) if t == "literal" => Ok(v.clone()),
            _ => Err(bad(format!("expected a literal, found {value}"))),
        },
        Value::Array(_) => Err(bad(format!("expected a single literal, found {value}"))),
        other => Ok(other.clone()),
    }
}

/// A literal typed as the field it meets. Values follow the spec's single-value JSON; numbers
/// are also taken for dates, times and timestamps (days, microseconds, or nanoseconds for the
/// nanosecond types), as clients holding an untyped long send them.
fn datum(value: Value, ty: &PrimitiveType, kind: &str) -> Result<Datum> {
    let wrong = || bad(format!("{value} is not a {ty} value (in {kind:?})"));
    // A v3 type carried through the crate as a stand-in (`model::v3_types`): its values are
    // opaque to Floe, and the spec compares none of them with a literal.
    if let PrimitiveType::Fixed(length) = ty
        && crate::model::v3_types::is_placeholder(*length)
    {
        return Err(bad(format!(
            "columns of type variant, geometry, geography or unknown cannot be compared with a \
             value (in {kind:?})"
        )));
    }
    if value.is_null() {
        return Err(bad(format!(
            "null is not a value to compare with (in {kind:?}); use is-null"
        )));
    }
    if let (
        PrimitiveType::Date
        | PrimitiveType::Time
        | PrimitiveType::Timestamp
        | PrimitiveType::Timestamptz
        | PrimitiveType::TimestampNs
        | PrimitiveType::TimestamptzNs,
        Value::Number(n),
    ) = (ty, &value)
    {
        let n = n.as_i64().ok_or_else(wrong)?;
        return Ok(match ty {
            PrimitiveType::Date => Datum::date(i32::try_from(n).map_err(|_| wrong())?),
            PrimitiveType::Time => Datum::time_micros(n).map_err(|_| wrong())?,
            PrimitiveType::Timestamp => Datum::timestamp_micros(n),
            PrimitiveType::Timestamptz => Datum::timestamptz_micros(n),
            PrimitiveType::TimestampNs => Datum::timestamp_nanos(n),
            _ => Datum::timestamptz_nanos(n),
        });
    }
    if let PrimitiveType::Decimal { .. } = ty {
        let text = match &value {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            _ => return Err(wrong()),
        };
        return Datum::decimal_from_str(&text)
            .and_then(|d| d.to(&Type::Primitive(ty.clone())))
            .map_err(|_| wrong());
    }
    let literal = Literal::try_from_json(value.clone(), &Type::Primitive(ty.clone()))
        .map_err(|_| wrong())?
        .ok_or_else(wrong)?;
    let Literal::Primitive(literal) = literal else {
        return Err(wrong());
    };
    Ok(match (ty, literal) {
        (PrimitiveType::Boolean, PrimitiveLiteral::Boolean(v)) => Datum::bool(v),
        (PrimitiveType::Int, PrimitiveLiteral::Int(v)) => Datum::int(v),
        (PrimitiveType::Long, PrimitiveLiteral::Long(v)) => Datum::long(v),
        (PrimitiveType::Long, PrimitiveLiteral::Int(v)) => Datum::long(v),
        (PrimitiveType::Float, PrimitiveLiteral::Float(v)) => Datum::float(v.0),
        (PrimitiveType::Double, PrimitiveLiteral::Double(v)) => Datum::double(v.0),
        (PrimitiveType::Date, PrimitiveLiteral::Int(v)) => Datum::date(v),
        (PrimitiveType::Time, PrimitiveLiteral::Long(v)) => {
            Datum::time_micros(v).map_err(|_| wrong())?
        }
        (PrimitiveType::Timestamp, PrimitiveLiteral::Long(v)) => Datum::timestamp_micros(v),
        (PrimitiveType::Timestamptz, PrimitiveLiteral::Long(v)) => Datum::timestamptz_micros(v),
        (PrimitiveType::TimestampNs, PrimitiveLiteral::Long(v)) => Datum::timestamp_nanos(v),
        (PrimitiveType::TimestamptzNs, PrimitiveLiteral::Long(v)) => Datum::timestamptz_nanos(v),
        (PrimitiveType::String, PrimitiveLiteral::String(v)) => Datum::string(v),
        (PrimitiveType::Uuid, PrimitiveLiteral::UInt128(v)) => {
            Datum::uuid(uuid::Uuid::from_u128(v))
        }
        (PrimitiveType::Fixed(_), PrimitiveLiteral::Binary(v)) => Datum::fixed(v),
        (PrimitiveType::Binary, PrimitiveLiteral::Binary(v)) => Datum::binary(v),
        _ => return Err(wrong()),
    })
}

#[cfg(test)]
mod tests {
    use iceberg::spec::{NestedField, Schema};
    use serde_json::json;

    use super::*;

    fn schema() -> Schema {
        Schema::builder()
            .with_fields(vec![
                NestedField::required(1, "id", Type::Primitive(PrimitiveType::Long)).into(),
                NestedField::optional(2, "Name", Type::Primitive(PrimitiveType::String)).into(),
                NestedField::optional(3, "ts", Type::Primitive(PrimitiveType::Timestamptz)).into(),
                NestedField::optional(4, "d", Type::Primitive(PrimitiveType::Date)).into(),
                NestedField::optional(
                    5,
                    "amount",
                    Type::Primitive(PrimitiveType::Decimal {
                        precision: 10,
                        scale: 2,
                    }),
                )
                .into(),
            ])
            .build()
            .unwrap()
    }

    fn parse(filter: serde_json::Value) -> Result<String> {
        parse_filter(&filter, &schema(), true).map(|p| p.to_string())
    }

    #[test]
    fn both_spellings_of_the_spec_parse_to_the_same_predicate() {
        let old = parse(json!({"type": "and",
            "left": {"type": "gt-eq", "term": "id", "value": 5},
            "right": {"type": "not", "child": {"type": "is-null", "term": "Name"}}}))
        .unwrap();
        let new = parse(json!({"type": "and",
            "left": {"type": "gt-eq", "left": {"type": "reference", "name": "id"},
                     "right": {"type": "literal", "value": 5}},
            "right": {"type": "not", "child": {"type": "is-null",
                      "child": {"type": "reference", "id": 2}}}}))
        .unwrap();
        assert_eq!(old, new);
        assert_eq!(old, "(id >= 5) AND (NOT (Name IS NULL))");
    }

    #[test]
    fn literals_take_the_type_of_their_field() {
        assert_eq!(
            parse(json!({"type": "lt", "term": "ts", "value": "2024-01-02T03:04:05+00:00"}))
                .unwrap(),
            parse(json!({"type": "lt", "term": "ts", "value": 1_704_164_645_000_000_i64})).unwrap()
        );
        assert_eq!(
            parse(json!({"type": "eq", "term": "d", "value": "1970-01-11"})).unwrap(),
            parse(json!({"type": "eq", "term": "d", "value": 10})).unwrap()
        );
        assert!(
            parse(json!({"type": "eq", "term": "amount", "value": "12.50"}))
                .unwrap()
                .contains("12.50")
        );
        let set = parse(json!({"type": "in", "term": "Name", "values": ["a", "b"]})).unwrap();
        assert!(set.contains("IN"), "{set}");
        assert_eq!(parse(json!(true)).unwrap(), "TRUE");
    }

    #[test]
    fn bad_filters_are_client_errors() {
        for filter in [
            json!({"type": "eq", "term": "nope", "value": 1}),
            json!({"type": "eq", "term": "id", "value": "x"}),
            json!({"type": "eq", "term": "id", "value": null}),
            json!({"type": "starts-with", "term": "id", "value": 1}),
            json!({"type": "frobnicate", "term": "id"}),
            json!({"type": "eq", "term": {"type": "transform", "transform": "day", "term": "ts"}, "value": 1}),
            json!({"type": "in", "term": "id", "values": 3}),
            json!("id = 3"),
            json!({"type": "and", "left": true}),
        ] {
            let e = parse(filter.clone()).unwrap_err();
            assert_eq!(
                e.kind,
                crate::error::ErrorKind::BadRequest,
                "{filter}: {e:?}"
            );
        }
        let mut deep = json!(true);
        for _ in 0..100 {
            deep = json!({"type": "not", "child": deep});
        }
        assert!(parse(deep).is_err());
    }

    #[test]
    fn names_match_without_case_when_asked() {
        let filter = json!({"type": "eq", "term": "name", "value": "x"});
        assert!(parse_filter(&filter, &schema(), true).is_err());
        assert_eq!(
            parse_filter(&filter, &schema(), false).unwrap().to_string(),
            "Name = \"x\""
        );
    }
}
