//! Gateway API status pieces: conditions as a conformant controller writes them, and
//! the patch that carries an object's status to the writer.

use crate::model::{StatusPatch, GROUP, UNSET_TIME};
use kube::api::DynamicObject;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

/// An object's `spec` (none: the defaults).
pub(crate) fn spec<T: DeserializeOwned + Default>(o: &DynamicObject) -> serde_json::Result<T> {
    o.data.get("spec").map_or(Ok(T::default()), T::deserialize)
}

pub(crate) fn generation(o: &DynamicObject) -> i64 {
    o.metadata.generation.unwrap_or_default()
}

pub(crate) fn condition(ty: &str, status: &str, reason: &str, message: &str, g: i64) -> Value {
    json!({"type": ty, "status": status, "reason": reason, "message": message,
           "observedGeneration": g, "lastTransitionTime": UNSET_TIME})
}

/// A True condition, whose reason is its type, as Gateway API's are.
pub(crate) fn yes(ty: &str, message: &str, g: i64) -> Value {
    condition(ty, "True", ty, message, g)
}

pub(crate) fn no(ty: &str, reason: &str, message: &str, g: i64) -> Value {
    condition(ty, "False", reason, message, g)
}

pub(crate) fn patch(kind: &str, o: &DynamicObject, status: Value) -> StatusPatch {
    StatusPatch {
        api_version: format!("{GROUP}/v1"),
        kind: kind.into(),
        namespace: o.metadata.namespace.clone(),
        name: o.metadata.name.clone().unwrap_or_default(),
        status,
    }
}
