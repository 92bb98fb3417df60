//! Completes `data` after field errors as the GraphQL spec requires. async-graphql 7 leaves an
//! errored field's key out of its parent instead of setting it to `null`, and does not propagate a
//! non-null field's failure to the nearest nullable parent. Clients (and generated TypeScript types)
//! rely on the spec's shape, so every response passes through here, over HTTP and WebSocket alike.
use std::{collections::HashMap, sync::Arc};

use async_graphql::{
    parser::{
        parse_schema,
        types::{BaseType, Type, TypeKind, TypeSystemDefinition},
    },
    Data, Executor, PathSegment, Request, Response, Value,
};
use futures::{stream::BoxStream, StreamExt};

/// For each object or interface type: each field's declared type.
#[derive(Debug, Default)]
pub struct TypeIndex {
    fields: HashMap<String, HashMap<String, Type>>,
    /// Interface name → the object types implementing it.
    implementers: HashMap<String, Vec<String>>,
}

impl TypeIndex {
    pub fn from_sdl(sdl: &str) -> Self {
        let mut idx = TypeIndex::default();
        let Ok(doc) = parse_schema(sdl) else { return idx };
        for def in doc.definitions {
            let TypeSystemDefinition::Type(t) = def else { continue };
            let name = t.node.name.node.to_string();
            let (fields, implements) = match t.node.kind {
                TypeKind::Object(o) => (o.fields, o.implements),
                TypeKind::Interface(i) => (i.fields, i.implements),
                _ => continue,
            };
            for i in implements {
                idx.implementers.entry(i.node.to_string()).or_default().push(name.clone());
            }
            idx.fields.insert(name, fields.into_iter().map(|f| (f.node.name.node.to_string(), f.node.ty.node)).collect());
        }
        idx
    }

    /// The declared type of `field` on `type_name` (for an interface, also on its implementers).
    fn field(&self, type_name: &str, field: &str) -> Option<&Type> {
        self.fields.get(type_name).and_then(|f| f.get(field)).or_else(|| {
            self.implementers.get(type_name)?.iter().find_map(|t| self.fields.get(t)?.get(field))
        })
    }
}

fn named(t: &Type) -> &str {
    match &t.base {
        BaseType::Named(n) => n.as_str(),
        BaseType::List(inner) => named(inner),
    }
}

/// Sets the value at `path` to null, or the nearest nullable ancestor when the field is non-null.
/// Unknown keys (aliases) count as nullable.
fn complete(idx: &TypeIndex, root: &str, data: &mut Value, path: &[PathSegment]) {
    // The declared nullability of each position along the path.
    let mut nullable = Vec::with_capacity(path.len());
    let mut current: Option<Type> = Some(Type::new(&format!("{root}!")).expect("valid type"));
    for seg in path {
        let next = match (seg, &current) {
            (PathSegment::Field(f), Some(t)) => idx.field(named(t), f).cloned(),
            (PathSegment::Index(_), Some(Type { base: BaseType::List(inner), .. })) => Some((**inner).clone()),
            _ => None,
        };
        nullable.push(next.as_ref().is_none_or(|t| t.nullable));
        current = next;
    }
    // The deepest nullable position at or above the error; none: the whole `data` becomes null.
    let Some(stop) = nullable.iter().rposition(|n| *n) else {
        *data = Value::Null;
        return;
    };
    let mut parent = data;
    for seg in &path[..stop] {
        let child = match (seg, parent) {
            (PathSegment::Field(f), Value::Object(m)) => m.get_mut(f.as_str()),
            (PathSegment::Index(i), Value::List(l)) => l.get_mut(*i),
            _ => None,
        };
        match child {
            Some(c) => parent = c,
            None => return, // an ancestor is already gone (null)
        }
    }
    match (&path[stop], parent) {
        (PathSegment::Field(f), Value::Object(m)) => {
            m.insert(async_graphql::Name::new(f), Value::Null);
        }
        (PathSegment::Index(i), Value::List(l)) if *i < l.len() => l[*i] = Value::Null,
        _ => {}
    }
}

pub fn complete_nulls(idx: &TypeIndex, root: &str, mut resp: Response) -> Response {
    if resp.errors.is_empty() {
        return resp;
    }
    // async-graphql answers `null` when every root field failed; make it an object to fill in.
    if resp.data == Value::Null {
        resp.data = Value::Object(Default::default());
    }
    for e in &resp.errors {
        if !e.path.is_empty() {
            complete(idx, root, &mut resp.data, &e.path);
        }
    }
    if resp.data == Value::Object(Default::default()) && resp.errors.iter().all(|e| e.path.is_empty()) {
        resp.data = Value::Null;
    }
    resp
}

/// The schema, with every response completed by `complete_nulls`.
#[derive(Clone)]
pub struct SpecExecutor<E> {
    inner: E,
    index: Arc<TypeIndex>,
}

impl<E: Executor> SpecExecutor<E> {
    pub fn new(inner: E, sdl: &str) -> Self {
        Self { inner, index: Arc::new(TypeIndex::from_sdl(sdl)) }
    }
}

/// The root type an operation of `request` runs on, from its document. Unknown: `Query` (errors
/// then only count as nullable where the document is not understood).
fn root_of(query: &str, operation: Option<&str>) -> &'static str {
    use async_graphql::parser::types::{DocumentOperations, OperationType};
    let Ok(doc) = async_graphql::parser::parse_query(query) else { return "Query" };
    let ty = match &doc.operations {
        DocumentOperations::Single(op) => Some(op.node.ty),
        DocumentOperations::Multiple(ops) => match operation {
            Some(name) => ops.get(name).map(|op| op.node.ty),
            None => ops.values().next().map(|op| op.node.ty),
        },
    };
    match ty {
        Some(OperationType::Mutation) => "Mutation",
        Some(OperationType::Subscription) => "Subscription",
        _ => "Query",
    }
}

impl<E: Executor> SpecExecutor<E> {
    fn complete(&self, query: &str, operation: Option<&str>, resp: Response) -> Response {
        if resp.errors.is_empty() {
            return resp;
        }
        complete_nulls(&self.index, root_of(query, operation), resp)
    }
}

impl<E: Executor> Executor for SpecExecutor<E> {
    async fn execute(&self, request: Request) -> Response {
        let (query, op) = (request.query.clone(), request.operation_name.clone());
        let resp = self.inner.execute(request).await;
        self.complete(&query, op.as_deref(), resp)
    }

    fn execute_stream(&self, request: Request, session_data: Option<Arc<Data>>) -> BoxStream<'static, Response> {
        // Over a WebSocket, queries and mutations arrive here as well as subscriptions.
        let (query, op) = (request.query.clone(), request.operation_name.clone());
        let this = self.clone();
        self.inner.execute_stream(request, session_data).map(move |r| this.complete(&query, op.as_deref(), r)).boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_graphql::{ServerError, Value};
    use serde_json::json;

    const SDL: &str = "type Query { course: Course  courses: Conn!  viewer: Viewer! }
        type Conn { totalCount: Int!  edges: [Edge!]! }
        type Edge { node: Course! }
        type Course { name: String!  category: Cat }
        type Cat { name: String! }
        type Viewer { subject: String! }";

    fn resp(data: serde_json::Value, path: Vec<PathSegment>) -> Response {
        let mut r = Response::new(Value::from_json(data).unwrap());
        let mut e = ServerError::new("boom", None);
        e.path = path;
        r.errors.push(e);
        r
    }

    fn f(s: &str) -> PathSegment {
        PathSegment::Field(s.into())
    }

    fn out(r: Response) -> serde_json::Value {
        complete_nulls(&TypeIndex::from_sdl(SDL), "Query", r).data.into_json().unwrap()
    }

    #[test]
    fn the_root_comes_from_the_document() {
        assert_eq!(root_of("# a comment\nsubscription S { x }", None), "Subscription");
        assert_eq!(root_of("mutation M { x }", None), "Mutation");
        assert_eq!(root_of("query A { x } mutation B { y }", Some("B")), "Mutation");
        assert_eq!(root_of("{ x }", None), "Query");
    }

    #[test]
    fn the_application_schema_names_its_roots_as_the_spec_does() {
        let sdl = crate::graphql::sdl();
        let idx = TypeIndex::from_sdl(&sdl);
        assert!(idx.field("Query", "viewer").is_some_and(|t| !t.nullable), "Query.viewer is non-null");
        assert!(idx.field("Mutation", "createArchiveJob").is_some());
        assert!(idx.field("Subscription", "archiveJobUpdated").is_some());
    }

    #[test]
    fn a_failed_nullable_field_becomes_null() {
        assert_eq!(out(resp(json!({"viewer": {"subject": "x"}}), vec![f("course")])), json!({"viewer": {"subject": "x"}, "course": null}));
        assert_eq!(out(resp(json!(null), vec![f("course")])), json!({"course": null}));
    }

    #[test]
    fn a_failed_non_null_field_nulls_its_nearest_nullable_parent() {
        // courses is non-null at the root: the whole data becomes null.
        assert_eq!(out(resp(json!({"course": {"name": "x"}}), vec![f("courses")])), json!(null));
        // edges[1].node is non-null, the edge is non-null, the list is non-null, the connection
        // is non-null: all the way up.
        let data = json!({"courses": {"totalCount": 2, "edges": [{"node": {"name": "a"}}, {}]}});
        assert_eq!(out(resp(data, vec![f("courses"), f("edges"), PathSegment::Index(1), f("node")])), json!(null));
        // category is nullable: only it becomes null.
        let data = json!({"course": {"name": "a"}});
        assert_eq!(out(resp(data, vec![f("course"), f("category")])), json!({"course": {"name": "a", "category": null}}));
        // name is non-null: course becomes null.
        let data = json!({"course": {"category": null}});
        assert_eq!(out(resp(data, vec![f("course"), f("name")])), json!({"course": null}));
    }
}
