//! Residual filters: what of a scan's filter is left to check on the rows of one file, given
//! the file's partition values (the spec's `residual-filter` of a file scan task).
//!
//! Each leaf of the request's filter on a column the file's partition spec derives a field from
//! is projected onto that partition field by the `iceberg` crate (`Transform::strict_project`
//! and `Transform::project`, the projections its own pruning uses): when the file's partition
//! value satisfies the strict projection, every row of the file satisfies the leaf, which becomes
//! `true`; when it fails the inclusive projection, no row does, and the leaf becomes `false`.
//! Then `and`, `or` and `not` fold the constants away. A leaf that cannot be decided (a null
//! or NaN partition value, a literal of another kind than the partition's) is kept as the
//! client sent it, so a residual is never wrong, only sometimes wider than it could be.

use std::collections::HashMap;

use iceberg::expr::{Bind as _, BoundPredicate, Predicate, PredicateOperator};
use iceberg::spec::{Literal, PartitionSpecRef, PrimitiveLiteral, SchemaRef, Struct};
use serde_json::{Value, json};

use super::expr;
use crate::error::Result;

/// The residuals of one filter, per partition.
pub(super) struct Residuals {
    filter: Value,
    /// Each leaf of the filter (by its place in a walk of the tree), bound to the schema, or
    /// `None` when it is not a single predicate on one column.
    leaves: Vec<Option<BoundPredicate>>,
    known: HashMap<(i32, Vec<Option<Literal>>), Value>,
}

impl Residuals {
    pub(super) fn new(filter: Value, schema: SchemaRef, case_sensitive: bool) -> Result<Self> {
        let mut leaves = Vec::new();
        collect_leaves(&filter, &schema, case_sensitive, &mut leaves)?;
        Ok(Residuals {
            filter,
            leaves,
            known: HashMap::new(),
        })
    }

    /// The residual for a file of `spec` with this partition.
    pub(super) fn of(&mut self, spec: &PartitionSpecRef, partition: &Struct) -> Value {
        if spec.fields().is_empty() {
            return self.filter.clone();
        }
        let key = (spec.spec_id(), partition.fields().to_vec());
        if let Some(known) = self.known.get(&key) {
            return known.clone();
        }
        let mut next = 0;
        let residual = self.fold(&self.filter, spec, partition, &mut next);
        self.known.insert(key, residual.clone());
        residual
    }

    fn fold(
        &self,
        node: &Value,
        spec: &PartitionSpecRef,
        partition: &Struct,
        next: &mut usize,
    ) -> Value {
        let kind = node.get("type").and_then(Value::as_str);
        match (node, kind) {
            (Value::Bool(_), _) => node.clone(),
            (_, Some("true")) => Value::Bool(true),
            (_, Some("false")) => Value::Bool(false),
            (_, Some(op @ ("and" | "or"))) => {
                let left = self.fold(&node["left"], spec, partition, next);
                let right = self.fold(&node["right"], spec, partition, next);
                let absorbing = op == "or";
                match (left.as_bool(), right.as_bool()) {
                    (Some(b), _) | (_, Some(b)) if b == absorbing => Value::Bool(absorbing),
                    (Some(_), _) => right,
                    (_, Some(_)) => left,
                    _ => json!({"type": op, "left": left, "right": right}),
                }
            }
            (_, Some("not")) => {
                let child = self.fold(&node["child"], spec, partition, next);
                match child.as_bool() {
                    Some(b) => Value::Bool(!b),
                    None => json!({"type": "not", "child": child}),
                }
            }
            _ => {
                let leaf = self.leaves.get(*next).and_then(Option::as_ref);
                *next += 1;
                match leaf.and_then(|leaf| decide(leaf, spec, partition)) {
                    Some(b) => Value::Bool(b),
                    None => node.clone(),
                }
            }
        }
    }
}

/// The leaves of a filter in walk order (the order `Residuals::fold` meets them).
fn collect_leaves(
    node: &Value,
    schema: &SchemaRef,
    case_sensitive: bool,
    out: &mut Vec<Option<BoundPredicate>>,
) -> Result<()> {
    match node.get("type").and_then(Value::as_str) {
        _ if node.is_boolean() => {}
        Some("true" | "false") => {}
        Some("and" | "or") => {
            collect_leaves(&node["left"], schema, case_sensitive, out)?;
            collect_leaves(&node["right"], schema, case_sensitive, out)?;
        }
        Some("not") => collect_leaves(&node["child"], schema, case_sensitive, out)?,
        _ => {
            let predicate = expr::parse_filter(node, schema, case_sensitive)?;
            let bound = predicate
                .bind(schema.clone(), case_sensitive)
                .ok()
                .filter(|b| {
                    matches!(
                        b,
                        BoundPredicate::Unary(_)
                            | BoundPredicate::Binary(_)
                            | BoundPredicate::Set(_)
                    )
                });
            out.push(bound);
        }
    }
    Ok(())
}

/// Whether every row (`Some(true)`) or no row (`Some(false)`) of a file with this partition
/// satisfies the leaf; `None` when the partition cannot tell.
fn decide(leaf: &BoundPredicate, spec: &PartitionSpecRef, partition: &Struct) -> Option<bool> {
    let source = match leaf {
        BoundPredicate::Unary(e) => e.term().field().id,
        BoundPredicate::Binary(e) => e.term().field().id,
        BoundPredicate::Set(e) => e.term().field().id,
        _ => return None,
    };
    for (position, field) in spec.fields().iter().enumerate() {
        if field.source_id != source {
            continue;
        }
        let value = partition.fields().get(position)?.as_ref();
        if let Ok(Some(strict)) = field.transform.strict_project(&field.name, leaf)
            && holds(&strict, value) == Some(true)
        {
            return Some(true);
        }
        if let Ok(Some(inclusive)) = field.transform.project(&field.name, leaf)
            && holds(&inclusive, value) == Some(false)
        {
            return Some(false);
        }
    }
    None
}

/// A projected predicate (on one partition field) evaluated on the partition's value.
fn holds(predicate: &Predicate, value: Option<&Literal>) -> Option<bool> {
    let primitive = match value {
        Some(Literal::Primitive(p)) => Some(p),
        Some(_) => return None,
        None => None,
    };
    let nan = matches!(primitive, Some(PrimitiveLiteral::Float(f)) if f.is_nan())
        || matches!(primitive, Some(PrimitiveLiteral::Double(d)) if d.is_nan());
    match predicate {
        Predicate::AlwaysTrue => Some(true),
        Predicate::AlwaysFalse => Some(false),
        Predicate::And(e) => {
            let [a, b] = e.inputs();
            match (holds(a, value), holds(b, value)) {
                (Some(false), _) | (_, Some(false)) => Some(false),
                (Some(true), Some(true)) => Some(true),
                _ => None,
            }
        }
        Predicate::Or(e) => {
            let [a, b] = e.inputs();
            match (holds(a, value), holds(b, value)) {
                (Some(true), _) | (_, Some(true)) => Some(true),
                (Some(false), Some(false)) => Some(false),
                _ => None,
            }
        }
        Predicate::Not(e) => holds(e.inputs()[0], value).map(|b| !b),
        Predicate::Unary(e) => match (e.op(), primitive) {
            (PredicateOperator::IsNull, p) => Some(p.is_none()),
            (PredicateOperator::NotNull, p) => Some(p.is_some()),
            (PredicateOperator::IsNan, Some(_)) => Some(nan),
            (PredicateOperator::NotNan, Some(_)) => Some(!nan),
            _ => None,
        },
        Predicate::Binary(e) => {
            let p = primitive?;
            let literal = e.literal().literal();
            if nan || std::mem::discriminant(p) != std::mem::discriminant(literal) {
                return None;
            }
            use std::cmp::Ordering::*;
            let order = p.partial_cmp(literal)?;
            match e.op() {
                PredicateOperator::LessThan => Some(order == Less),
                PredicateOperator::LessThanOrEq => Some(order != Greater),
                PredicateOperator::GreaterThan => Some(order == Greater),
                PredicateOperator::GreaterThanOrEq => Some(order != Less),
                PredicateOperator::Eq => Some(order == Equal),
                PredicateOperator::NotEq => Some(order != Equal),
                PredicateOperator::StartsWith | PredicateOperator::NotStartsWith => {
                    let (PrimitiveLiteral::String(s), PrimitiveLiteral::String(prefix)) =
                        (p, literal)
                    else {
                        return None;
                    };
                    let starts = s.starts_with(prefix.as_str());
                    Some(if e.op() == PredicateOperator::StartsWith {
                        starts
                    } else {
                        !starts
                    })
                }
                _ => None,
            }
        }
        Predicate::Set(e) => {
            let p = primitive?;
            if nan
                || e.literals()
                    .iter()
                    .any(|d| std::mem::discriminant(d.literal()) != std::mem::discriminant(p))
            {
                return None;
            }
            let contains = e.literals().iter().any(|d| d.literal() == p);
            match e.op() {
                PredicateOperator::In => Some(contains),
                PredicateOperator::NotIn => Some(!contains),
                _ => None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use iceberg::spec::{NestedField, PartitionSpec, PrimitiveType, Schema, Transform, Type};

    use super::*;

    fn schema() -> SchemaRef {
        Arc::new(
            Schema::builder()
                .with_fields(vec![
                    NestedField::optional(1, "id", Type::Primitive(PrimitiveType::Long)).into(),
                    NestedField::optional(2, "category", Type::Primitive(PrimitiveType::String))
                        .into(),
                    NestedField::optional(3, "day", Type::Primitive(PrimitiveType::Date)).into(),
                ])
                .build()
                .unwrap(),
        )
    }

    fn spec(fields: &[(&str, Transform)]) -> PartitionSpecRef {
        let mut builder = PartitionSpec::builder(schema()).with_spec_id(1);
        for (i, (source, transform)) in fields.iter().enumerate() {
            builder = builder
                .add_partition_field(*source, format!("p{i}"), *transform)
                .unwrap();
        }
        Arc::new(builder.build().unwrap())
    }

    fn residual(filter: Value, spec: &PartitionSpecRef, partition: Vec<Option<Literal>>) -> Value {
        Residuals::new(filter, schema(), true)
            .unwrap()
            .of(spec, &Struct::from_iter(partition))
    }

    fn eq(term: &str, value: Value) -> Value {
        json!({"type": "eq", "term": term, "value": value})
    }

    #[test]
    fn identity_partitions_decide_their_leaves() {
        let by_category = spec(&[("category", Transform::Identity)]);
        let a = || vec![Some(Literal::string("a"))];
        let b = || vec![Some(Literal::string("b"))];
        let id_gt = json!({"type": "gt", "term": "id", "value": 5});
        let and = json!({"type": "and", "left": eq("category", json!("a")), "right": id_gt});
        assert_eq!(residual(and.clone(), &by_category, a()), id_gt);
        assert_eq!(residual(and, &by_category, b()), json!(false));
        let or = json!({"type": "or", "left": eq("category", json!("a")), "right": id_gt});
        assert_eq!(residual(or.clone(), &by_category, a()), json!(true));
        assert_eq!(residual(or, &by_category, b()), id_gt);
        let not = json!({"type": "not", "child": eq("category", json!("a"))});
        assert_eq!(residual(not.clone(), &by_category, b()), json!(true));
        assert_eq!(residual(not, &by_category, a()), json!(false));
        let within = json!({"type": "in", "term": "category", "values": ["a", "c"]});
        assert_eq!(residual(within.clone(), &by_category, a()), json!(true));
        assert_eq!(residual(within, &by_category, b()), json!(false));
        let prefix = json!({"type": "starts-with", "term": "category", "value": "a"});
        assert_eq!(residual(prefix, &by_category, a()), json!(true));
        // A leaf on a column the spec does not hold is kept as sent.
        assert_eq!(residual(id_gt.clone(), &by_category, a()), id_gt);
    }

    #[test]
    fn null_partition_values_decide_only_null_checks() {
        let by_category = spec(&[("category", Transform::Identity)]);
        let leaf = eq("category", json!("a"));
        assert_eq!(residual(leaf.clone(), &by_category, vec![None]), leaf);
        let null = json!({"type": "is-null", "term": "category"});
        assert_eq!(
            residual(null.clone(), &by_category, vec![None]),
            json!(true)
        );
        assert_eq!(
            residual(null, &by_category, vec![Some(Literal::string("a"))]),
            json!(false)
        );
    }

    #[test]
    fn transforms_decide_through_the_crates_projections() {
        // Months of a date: a range that covers the whole month is true for its files.
        let by_month = spec(&[("day", Transform::Month)]);
        let range = json!({"type": "and",
            "left": {"type": "gt-eq", "term": "day", "value": "2024-03-01"},
            "right": {"type": "lt", "term": "day", "value": "2024-05-01"}});
        // A month partition value counts months since 1970-01.
        let month = |y: i32, m: i32| Some(Literal::int((y - 1970) * 12 + (m - 1)));
        assert_eq!(
            residual(range.clone(), &by_month, vec![month(2024, 4)]),
            json!(true)
        );
        assert_eq!(
            residual(range.clone(), &by_month, vec![month(2024, 6)]),
            json!(false)
        );
        assert_eq!(
            residual(range.clone(), &by_month, vec![month(2024, 2)]),
            json!(false)
        );
        // A bucket can rule a value out, never in.
        let by_bucket = spec(&[("id", Transform::Bucket(16))]);
        let leaf = eq("id", json!(34));
        let mut decided = Vec::new();
        for bucket in 0..16 {
            decided.push(residual(
                leaf.clone(),
                &by_bucket,
                vec![Some(Literal::int(bucket))],
            ));
        }
        assert_eq!(
            decided.iter().filter(|r| **r == leaf).count(),
            1,
            "{decided:?}"
        );
        assert_eq!(decided.iter().filter(|r| **r == json!(false)).count(), 15);
    }
}
