//! What a reload from one config to another changes: routes, backends and listeners
//! added, removed or changed, and the settings only a restart applies. The JSON form
//! is the `changes` object of `POST /reload`; the text form is `sluice check --diff`.

use crate::{canonical, Backend, Config, Listener, Route};
use serde::{Serialize, Serializer};
use serde_json::Value;
use std::collections::BTreeMap;

/// The changes between two configs, compared in canonical form.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ConfigDiff {
    /// Route ids are host + path prefix: `api.example.com/v2`, `*/`.
    pub routes: Changes,
    /// Backend ids are their names.
    pub backends: Changes,
    /// Listener ids are their names.
    pub listeners: Changes,
    /// Filled by the caller, which knows the pool keys; absent until then.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pools: Option<PoolChanges>,
    /// Changed fields a reload cannot apply (`runtime.workers`, `admin.bind`,
    /// `limits.max_client_connections`, `log.level` …): the rest of the config is
    /// applied, these wait for a restart.
    pub restart_required: Vec<String>,
    /// Other changed top-level fields, applied by the reload (`shutdown.drain_timeout`,
    /// `resolver.timeout`, `config.watch` …). Left out of the JSON when empty, so the
    /// common shape is exactly the documented one; without it such a change would
    /// look like no change at all.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub other: Vec<String>,
}

/// Added, removed and changed ids of one kind, each list sorted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Changes {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    /// In the JSON, only the ids.
    #[serde(serialize_with = "ids")]
    pub changed: Vec<Changed>,
    /// The backend of each added route, for the text form (`+ id -> backend`).
    #[serde(skip)]
    pub(crate) targets: BTreeMap<String, String>,
}

/// One changed item: its id and the dotted paths of its fields that differ (a list
/// counts as one field: `servers`, not `servers[2]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Changed {
    pub id: String,
    pub fields: Vec<String>,
    /// For a route whose backend changed: the old and the new backend.
    pub backend: Option<(String, String)>,
}

/// What happens to the upstream connection pools; counted by the caller.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PoolChanges {
    pub kept: usize,
    pub added: usize,
    pub removed: usize,
}

impl ConfigDiff {
    /// Nothing to apply and nothing waiting for a restart: the configs are the same.
    /// `pools` is not looked at: new or closed pools come from changed backends.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
            && self.backends.is_empty()
            && self.listeners.is_empty()
            && self.restart_required.is_empty()
            && self.other.is_empty()
    }
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

fn ids<S: Serializer>(changed: &[Changed], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(changed.iter().map(|c| &c.id))
}

/// The top-level sections a reload cannot apply: the worker threads, the admin
/// listener, the client connection semaphore and the logger are set up once at start.
fn needs_restart(path: &str) -> bool {
    [
        "runtime",
        "admin",
        "log",
        "limits.max_client_connections",
        "limits.when_full",
        "limits.unready_after",
        "sources",
    ]
    .iter()
    .any(|s| path == *s || path.strip_prefix(s).is_some_and(|r| r.starts_with('.')))
}

/// What a reload from `old` to `new` changes. Both are compared in canonical form,
/// so order never shows up as a change.
pub fn diff(old: &Config, new: &Config) -> ConfigDiff {
    let (old, new) = (canonical(old), canonical(new));
    let mut d = ConfigDiff {
        routes: changes(&old.routes, &new.routes, route_id),
        backends: changes(&old.backends, &new.backends, |b: &Backend| b.name.clone()),
        listeners: changes(&old.listeners, &new.listeners, |l: &Listener| {
            l.name.clone()
        }),
        ..ConfigDiff::default()
    };
    let backend_of = |c: &Config| -> BTreeMap<String, String> {
        c.routes
            .iter()
            .map(|r| (route_id(r), r.backend.clone()))
            .collect()
    };
    let (was, now) = (backend_of(&old), backend_of(&new));
    for id in &d.routes.added {
        if let Some(b) = now.get(id) {
            d.routes.targets.insert(id.clone(), b.clone());
        }
    }
    for c in &mut d.routes.changed {
        if let (Some(was), Some(now)) = (was.get(&c.id), now.get(&c.id)) {
            if was != now {
                c.backend = Some((was.clone(), now.clone()));
            }
        }
    }
    for path in paths(&sections(&old), &sections(&new)) {
        if needs_restart(&path) {
            d.restart_required.push(path);
        } else {
            d.other.push(path);
        }
    }
    d
}

/// `host` + `path_prefix`, like the `route` label of metrics.
pub fn route_id(r: &Route) -> String {
    let mut id = format!("{}{}", r.host, r.path_prefix);
    if !r.headers.is_empty() {
        let h: Vec<String> = r.headers.iter().map(|(k, v)| format!("{k}={v}")).collect();
        id.push_str(&format!("[{}]", h.join(",")));
    }
    id
}

fn changes<T: PartialEq + Serialize>(old: &[T], new: &[T], id: impl Fn(&T) -> String) -> Changes {
    let old: BTreeMap<String, &T> = old.iter().map(|t| (id(t), t)).collect();
    let new: BTreeMap<String, &T> = new.iter().map(|t| (id(t), t)).collect();
    let mut c = Changes::default();
    for (k, now) in &new {
        match old.get(k) {
            None => c.added.push(k.clone()),
            Some(was) if *was != *now => c.changed.push(Changed {
                id: k.clone(),
                fields: fields(*was, *now),
                backend: None,
            }),
            Some(_) => {}
        }
    }
    c.removed = old
        .keys()
        .filter(|k| !new.contains_key(*k))
        .cloned()
        .collect();
    c
}

/// The sections other than routes, backends and listeners, as JSON, keyed by name.
/// Listed one by one rather than serializing the whole config, which would also
/// turn every route into JSON; a test checks that none is missing.
pub(crate) fn sections(c: &Config) -> Value {
    let mut m = serde_json::Map::new();
    let mut put = |k: &str, v: Result<Value, serde_json::Error>| {
        m.insert(k.to_string(), v.unwrap_or(Value::Null));
    };
    put("runtime", serde_json::to_value(&c.runtime));
    put("log", serde_json::to_value(&c.log));
    put("admin", serde_json::to_value(&c.admin));
    put("shutdown", serde_json::to_value(&c.shutdown));
    put("limits", serde_json::to_value(&c.limits));
    put("resolver", serde_json::to_value(&c.resolver));
    put("config", serde_json::to_value(&c.config));
    put("sources", serde_json::to_value(&c.sources));
    Value::Object(m)
}

/// The fields of two unequal items that differ. Never empty: if the JSON forms
/// cannot tell them apart (a value that does not serialize), `*` stands for "some".
fn fields<T: Serialize>(a: &T, b: &T) -> Vec<String> {
    let (a, b) = (serde_json::to_value(a), serde_json::to_value(b));
    let found = match (a, b) {
        (Ok(a), Ok(b)) => paths(&a, &b),
        _ => Vec::new(),
    };
    if found.is_empty() {
        vec!["*".to_string()]
    } else {
        found
    }
}

/// Dotted paths of the leaves where two JSON trees differ, sorted. Lists are
/// compared whole; a field present on one side only is reported at its own path.
pub(crate) fn paths(a: &Value, b: &Value) -> Vec<String> {
    let mut out = Vec::new();
    walk("", a, b, &mut out);
    out.sort();
    out
}

fn walk(at: &str, a: &Value, b: &Value, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys = x.keys().chain(y.keys().filter(|k| !x.contains_key(*k)));
            for k in keys {
                let path = if at.is_empty() {
                    k.clone()
                } else {
                    format!("{at}.{k}")
                };
                match (x.get(k), y.get(k)) {
                    (Some(va), Some(vb)) => walk(&path, va, vb, out),
                    _ => out.push(path),
                }
            }
        }
        _ if a == b => {}
        _ => out.push(at.to_string()),
    }
}
