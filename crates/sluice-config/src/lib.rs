//! sluice's configuration: the YAML schema users write, turned into a validated,
//! canonical [`Config`].
//!
//! Every field has a default (documented in the README); unknown fields are errors;
//! durations are human-readable (`500ms`, `30s`, `1h`). Loading never panics: a bad
//! file yields a [`ConfigError`] naming the file, the field path and why.

mod addr;
mod canonical;
mod diff;
mod diff_text;
mod duration;
mod error;
mod file;
mod forward;
mod kubernetes;
pub mod limits;
mod listener_tls;
mod model;
mod nesting;
mod validate;

pub use canonical::{canonical, canonical_backend, canonicalize, same};
pub use diff::{diff, route_id, Changed, Changes, ConfigDiff, PoolChanges};
pub use error::ConfigError;
pub use file::read_bounded;
pub use forward::*;
pub use kubernetes::*;
pub use listener_tls::*;
pub use model::*;

use std::path::Path;

/// Reads, parses and validates a config file (a regular file of at most
/// [`limits::MAX_FILE_BYTES`]).
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let origin = path.display().to_string();
    let unreadable = |reason: String| ConfigError {
        file: origin.clone(),
        field: String::new(),
        reason: format!("cannot read file: {reason}"),
    };
    let bytes = read_bounded(path, limits::MAX_FILE_BYTES).map_err(unreadable)?;
    let text = String::from_utf8(bytes).map_err(|e| {
        unreadable(format!(
            "not UTF-8 text (byte {})",
            e.utf8_error().valid_up_to()
        ))
    })?;
    parse(&origin, &text)
}

/// Parses and validates config text; `origin` names it in errors (usually the file path).
pub fn parse(origin: &str, text: &str) -> Result<Config, ConfigError> {
    if let Some((line, column)) = nesting::too_deep(text, limits::MAX_FLOW_DEPTH) {
        return Err(ConfigError {
            file: origin.to_string(),
            field: String::new(),
            reason: format!(
                "[ ] or {{ }} nested more than {} levels deep at line {line} column {column}",
                limits::MAX_FLOW_DEPTH
            ),
        });
    }
    let de = serde_yaml_ng::Deserializer::from_str(text);
    let mut config: Config = serde_path_to_error::deserialize(de).map_err(|e| {
        let field = e.path().to_string();
        let field = if field == "." { String::new() } else { field };
        let reason = without_yaml_path(&field, &e.into_inner().to_string()).to_string();
        ConfigError {
            file: origin.to_string(),
            field,
            reason,
        }
    })?;
    validate::validate(&mut config).map_err(|(field, reason)| ConfigError {
        file: origin.to_string(),
        field,
        reason,
    })?;
    Ok(config)
}

/// Validates a config assembled in code (the file merged with what a config source
/// translated), as [`parse`] validates a file's.
pub fn validate_config(origin: &str, config: &mut Config) -> Result<(), ConfigError> {
    validate::validate(config).map_err(|(field, reason)| ConfigError {
        file: origin.to_string(),
        field,
        reason,
    })
}

/// serde_yaml_ng starts some messages with its own path, which is `field` or a parent
/// of it (`listeners[0]: invalid bind address …` for `listeners[0].bind`); the error
/// already names the field, so that prefix is dropped. The location it appends
/// (`at line 2 column 8`) stays.
fn without_yaml_path<'a>(field: &str, reason: &'a str) -> &'a str {
    let Some((prefix, rest)) = reason.split_once(": ") else {
        return reason;
    };
    let parent_of_field = field
        .strip_prefix(prefix)
        .is_some_and(|after| after.is_empty() || after.starts_with('.') || after.starts_with('['));
    if !prefix.is_empty() && parent_of_field {
        rest
    } else {
        reason
    }
}

#[cfg(test)]
mod canonical_tests;
#[cfg(test)]
mod diff_tests;
#[cfg(test)]
mod reference_tests;
#[cfg(test)]
mod tests;
