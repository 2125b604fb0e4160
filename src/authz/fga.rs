//! Floe's authorization model (`authz/floe.fga`, OpenFGA's DSL) and the built-in evaluator of it.
//!
//! The model is read in OpenFGA's JSON form (`authz/floe.json`, what `fga model transform` makes
//! of the DSL; a check in `scripts/test` keeps the two in step), so the built-in backend evaluates
//! exactly the model an OpenFGA server would be given: direct relations (`this`), computed
//! relations, tuple-to-userset (inheritance from a parent, visibility from a child), union,
//! intersection and difference, with usersets (`role:x#assignee`) as subjects. The assertions of
//! `authz/floe.fga.yaml`, which OpenFGA's own engine checks in CI, are run against this evaluator
//! one by one (`tests` below).

use std::collections::{HashMap, HashSet};

use serde_json::Value;

/// The model as Floe ships it.
pub const MODEL_JSON: &str = include_str!("../../authz/floe.json");

/// An object (`type:id`) or a userset (`type:id#relation`): what a tuple's user side holds.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Subject {
    pub kind: String,
    pub id: String,
    pub relation: Option<String>,
}

impl Subject {
    /// Parses `type:id` or `type:id#relation`.
    pub fn parse(s: &str) -> Option<Subject> {
        let (object, relation) = match s.split_once('#') {
            Some((object, relation)) if !relation.is_empty() => {
                (object, Some(relation.to_string()))
            }
            Some(_) => return None,
            None => (s, None),
        };
        let (kind, id) = object.split_once(':')?;
        if kind.is_empty() || id.is_empty() {
            return None;
        }
        Some(Subject {
            kind: kind.to_string(),
            id: id.to_string(),
            relation,
        })
    }

    pub fn object(kind: &str, id: &str) -> Subject {
        Subject {
            kind: kind.to_string(),
            id: id.to_string(),
            relation: None,
        }
    }
}

impl std::fmt::Display for Subject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.kind, self.id)?;
        if let Some(r) = &self.relation {
            write!(f, "#{r}")?;
        }
        Ok(())
    }
}

/// How a relation is computed.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Rewrite {
    /// Tuples written on the object for the relation.
    This,
    /// Another relation of the same object.
    Computed(String),
    /// For each object the object's `tupleset` relation names, that object's `computed` relation.
    TupleToUserset {
        tupleset: String,
        computed: String,
    },
    Union(Vec<Rewrite>),
    Intersection(Vec<Rewrite>),
    Difference(Box<Rewrite>, Box<Rewrite>),
}

/// A parsed model: each type's relations, and which subjects each relation may be written for.
#[derive(Debug, Clone)]
pub struct Model {
    types: HashMap<String, HashMap<String, Rewrite>>,
    /// (type, relation) -> the subjects a tuple may name.
    direct: HashMap<(String, String), Vec<DirectSubject>>,
}

/// A subject a relation may be written for: objects of a type, or a userset of them.
type DirectSubject = (String, Option<String>);

impl Model {
    /// Floe's own model.
    pub fn floe() -> Model {
        Model::from_json(MODEL_JSON).expect("authz/floe.json is a valid model")
    }

    /// Floe's own model, parsed once.
    pub fn shared() -> &'static Model {
        static MODEL: std::sync::OnceLock<Model> = std::sync::OnceLock::new();
        MODEL.get_or_init(Model::floe)
    }

    /// Parses OpenFGA's JSON form of a model (schema 1.1).
    pub fn from_json(json: &str) -> Result<Model, String> {
        let doc: Value = serde_json::from_str(json).map_err(|e| e.to_string())?;
        let definitions = doc
            .get("type_definitions")
            .and_then(Value::as_array)
            .ok_or("the model has no type_definitions")?;
        let mut types = HashMap::new();
        let mut direct = HashMap::new();
        for definition in definitions {
            let name = definition
                .get("type")
                .and_then(Value::as_str)
                .ok_or("a type definition has no name")?;
            let mut relations = HashMap::new();
            if let Some(map) = definition.get("relations").and_then(Value::as_object) {
                for (relation, rewrite) in map {
                    relations.insert(relation.clone(), parse_rewrite(rewrite)?);
                }
            }
            types.insert(name.to_string(), relations);
            let metadata = definition
                .get("metadata")
                .and_then(|m| m.get("relations"))
                .and_then(Value::as_object);
            for (relation, meta) in metadata.into_iter().flatten() {
                let subjects: Vec<DirectSubject> = meta
                    .get("directly_related_user_types")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|t| {
                        let kind = t.get("type")?.as_str()?.to_string();
                        let relation = t
                            .get("relation")
                            .and_then(Value::as_str)
                            .map(str::to_string);
                        Some((kind, relation))
                    })
                    .collect();
                if !subjects.is_empty() {
                    direct.insert((name.to_string(), relation.clone()), subjects);
                }
            }
        }
        let model = Model { types, direct };
        model.check_references()?;
        Ok(model)
    }

    /// Every computed relation names a relation of its type.
    fn check_references(&self) -> Result<(), String> {
        fn walk(model: &Model, kind: &str, rewrite: &Rewrite) -> Result<(), String> {
            match rewrite {
                Rewrite::This | Rewrite::TupleToUserset { .. } => Ok(()),
                Rewrite::Computed(r) if model.has_relation(kind, r) => Ok(()),
                Rewrite::Computed(r) => Err(format!("{kind} has no relation {r}")),
                Rewrite::Union(children) | Rewrite::Intersection(children) => {
                    children.iter().try_for_each(|c| walk(model, kind, c))
                }
                Rewrite::Difference(base, subtract) => {
                    walk(model, kind, base)?;
                    walk(model, kind, subtract)
                }
            }
        }
        for (kind, relations) in &self.types {
            for rewrite in relations.values() {
                walk(self, kind, rewrite)?;
            }
        }
        Ok(())
    }

    pub fn has_relation(&self, kind: &str, relation: &str) -> bool {
        self.types
            .get(kind)
            .is_some_and(|relations| relations.contains_key(relation))
    }

    /// Whether a tuple may give `relation` on a `kind` object to the subject: a `subject_type`
    /// object, or the `subject_relation` set of one.
    pub fn accepts(
        &self,
        kind: &str,
        relation: &str,
        subject_type: &str,
        subject_relation: Option<&str>,
    ) -> bool {
        self.direct
            .get(&(kind.to_string(), relation.to_string()))
            .is_some_and(|subjects| {
                subjects
                    .iter()
                    .any(|(t, r)| t == subject_type && r.as_deref() == subject_relation)
            })
    }

    /// The relations of a type that may be granted to users (and roles' assignees).
    pub fn grantable(&self, kind: &str) -> Vec<&str> {
        self.relations(kind)
            .into_iter()
            .filter(|r| self.accepts(kind, r, "user", None))
            .collect()
    }

    /// The relations of a type.
    pub fn relations(&self, kind: &str) -> Vec<&str> {
        let mut out: Vec<&str> = self
            .types
            .get(kind)
            .map(|r| r.keys().map(String::as_str).collect())
            .unwrap_or_default();
        out.sort_unstable();
        out
    }
}

fn parse_rewrite(value: &Value) -> Result<Rewrite, String> {
    let object = value.as_object().ok_or("a rewrite is not an object")?;
    if object.contains_key("this") {
        return Ok(Rewrite::This);
    }
    if let Some(computed) = object.get("computedUserset") {
        let relation = computed
            .get("relation")
            .and_then(Value::as_str)
            .ok_or("computedUserset without a relation")?;
        return Ok(Rewrite::Computed(relation.to_string()));
    }
    if let Some(ttu) = object.get("tupleToUserset") {
        let relation = |key: &str| {
            ttu.get(key)
                .and_then(|v| v.get("relation"))
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| format!("tupleToUserset without {key}"))
        };
        return Ok(Rewrite::TupleToUserset {
            tupleset: relation("tupleset")?,
            computed: relation("computedUserset")?,
        });
    }
    let children = |key: &str| -> Result<Vec<Rewrite>, String> {
        object
            .get(key)
            .and_then(|v| v.get("child"))
            .and_then(Value::as_array)
            .ok_or_else(|| format!("{key} without children"))?
            .iter()
            .map(parse_rewrite)
            .collect()
    };
    if object.contains_key("union") {
        return Ok(Rewrite::Union(children("union")?));
    }
    if object.contains_key("intersection") {
        return Ok(Rewrite::Intersection(children("intersection")?));
    }
    if let Some(difference) = object.get("difference") {
        let part = |key: &str| -> Result<Box<Rewrite>, String> {
            Ok(Box::new(parse_rewrite(
                difference
                    .get(key)
                    .ok_or_else(|| format!("difference without {key}"))?,
            )?))
        };
        return Ok(Rewrite::Difference(part("base")?, part("subtract")?));
    }
    Err(format!("unknown rewrite {value}"))
}

/// Where the evaluator reads relationships: the subjects written for `relation` on `object`.
pub trait Tuples {
    fn subjects(&self, object_kind: &str, object_id: &str, relation: &str) -> Vec<Subject>;
    /// Every object of a type that some tuple names (for `list_objects`).
    fn objects_of(&self, kind: &str) -> Vec<String>;
}

/// Relationships held in memory.
#[derive(Debug, Default, Clone)]
pub struct MemoryTuples {
    by_object: HashMap<(String, String, String), Vec<Subject>>,
    objects: HashMap<String, HashSet<String>>,
}

impl MemoryTuples {
    /// Writes `user` `relation` `object` (both in `type:id[#relation]` form).
    pub fn write(&mut self, user: &str, relation: &str, object: &str) -> Result<(), String> {
        let user = Subject::parse(user).ok_or_else(|| format!("bad user {user:?}"))?;
        let object = Subject::parse(object)
            .filter(|o| o.relation.is_none())
            .ok_or_else(|| format!("bad object {object:?}"))?;
        for o in [&object, &user] {
            self.objects
                .entry(o.kind.clone())
                .or_default()
                .insert(o.id.clone());
        }
        self.by_object
            .entry((object.kind, object.id, relation.to_string()))
            .or_default()
            .push(user);
        Ok(())
    }
}

impl MemoryTuples {
    /// Writes `subject` `relation` on `kind:id`, already parsed.
    pub fn push(&mut self, subject: Subject, relation: &str, kind: &str, id: &str) {
        self.objects
            .entry(kind.to_string())
            .or_default()
            .insert(id.to_string());
        self.by_object
            .entry((kind.to_string(), id.to_string(), relation.to_string()))
            .or_default()
            .push(subject);
    }
}

impl Tuples for MemoryTuples {
    fn subjects(&self, object_kind: &str, object_id: &str, relation: &str) -> Vec<Subject> {
        self.by_object
            .get(&(
                object_kind.to_string(),
                object_id.to_string(),
                relation.to_string(),
            ))
            .cloned()
            .unwrap_or_default()
    }

    fn objects_of(&self, kind: &str) -> Vec<String> {
        let mut ids: Vec<String> = self
            .objects
            .get(kind)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default();
        ids.sort();
        ids
    }
}

/// The deepest chain of relations followed (OpenFGA's default resolution depth).
const MAX_DEPTH: usize = 25;

/// A check that needed more than [`MAX_DEPTH`] steps. Callers deny: an answer was not found, and
/// inside a difference (`but not`) a guess could turn into an allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DepthExceeded;

type Step = (String, String, String);

/// Evaluates checks on a model over a set of relationships.
pub struct Evaluator<'a, T: Tuples> {
    pub model: &'a Model,
    pub tuples: &'a T,
}

impl<T: Tuples> Evaluator<'_, T> {
    /// Whether `user` (an object or a userset) has `relation` on `object`. An unknown relation
    /// is `false`; a cycle in the relationships is not a path (`false`, as OpenFGA answers).
    pub fn check(
        &self,
        user: &Subject,
        relation: &str,
        object: &Subject,
    ) -> Result<bool, DepthExceeded> {
        let mut path = Vec::new();
        self.check_at(user, relation, &object.kind, &object.id, &mut path)
    }

    /// The ids of the objects of `kind` on which `user` has `relation`.
    pub fn list_objects(
        &self,
        user: &Subject,
        kind: &str,
        relation: &str,
    ) -> Result<Vec<String>, DepthExceeded> {
        let mut out = Vec::new();
        for id in self.tuples.objects_of(kind) {
            if self.check(user, relation, &Subject::object(kind, &id))? {
                out.push(id);
            }
        }
        Ok(out)
    }

    fn check_at(
        &self,
        user: &Subject,
        relation: &str,
        kind: &str,
        id: &str,
        path: &mut Vec<Step>,
    ) -> Result<bool, DepthExceeded> {
        // A userset holds itself: `role:eng#assignee` is an assignee of role:eng.
        if user.kind == kind && user.id == id && user.relation.as_deref() == Some(relation) {
            return Ok(true);
        }
        let Some(rewrite) = self.model.types.get(kind).and_then(|r| r.get(relation)) else {
            return Ok(false);
        };
        let step = (kind.to_string(), id.to_string(), relation.to_string());
        if path.contains(&step) {
            return Ok(false);
        }
        if path.len() >= MAX_DEPTH {
            return Err(DepthExceeded);
        }
        path.push(step);
        let found = self.rewrite(user, rewrite, relation, kind, id, path);
        path.pop();
        found
    }

    fn rewrite(
        &self,
        user: &Subject,
        rewrite: &Rewrite,
        relation: &str,
        kind: &str,
        id: &str,
        path: &mut Vec<Step>,
    ) -> Result<bool, DepthExceeded> {
        match rewrite {
            Rewrite::This => {
                for subject in self.tuples.subjects(kind, id, relation) {
                    // Tuples of subject types the model does not allow here are ignored, as
                    // OpenFGA ignores them.
                    if !self.model.accepts(
                        kind,
                        relation,
                        &subject.kind,
                        subject.relation.as_deref(),
                    ) {
                        continue;
                    }
                    if subject == *user {
                        return Ok(true);
                    }
                    if let Some(r) = subject.relation.as_deref()
                        && self.check_at(user, r, &subject.kind, &subject.id, path)?
                    {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
            Rewrite::Computed(other) => self.check_at(user, other, kind, id, path),
            Rewrite::TupleToUserset { tupleset, computed } => {
                for s in self.tuples.subjects(kind, id, tupleset) {
                    if s.relation.is_none()
                        && self.model.has_relation(&s.kind, computed)
                        && self.check_at(user, computed, &s.kind, &s.id, path)?
                    {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
            Rewrite::Union(children) => {
                for c in children {
                    if self.rewrite(user, c, relation, kind, id, path)? {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
            Rewrite::Intersection(children) => {
                for c in children {
                    if !self.rewrite(user, c, relation, kind, id, path)? {
                        return Ok(false);
                    }
                }
                Ok(true)
            }
            Rewrite::Difference(base, subtract) => Ok(self
                .rewrite(user, base, relation, kind, id, path)?
                && !self.rewrite(user, subtract, relation, kind, id, path)?),
        }
    }
}

#[cfg(test)]
mod tests;
