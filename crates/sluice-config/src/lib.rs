//! sluice's configuration: the YAML schema users write, turned into a validated,
//! canonical [`Config`].
//!
//! Every field has a default (documented in the README); unknown fields are errors;
//! durations are human-readable (`500ms`, `30s`, `1h`). Loading never panics: a bad
//! file yields a [`ConfigError`] naming the file, the field path and why.

mod duration;
mod error;
mod model;
mod validate;

pub use error::ConfigError;
pub use model::*;

use std::path::Path;

/// Reads, parses and validates a config file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: path.display().to_string(),
        field: String::new(),
        reason: format!("cannot read file: {e}"),
    })?;
    parse(&path.display().to_string(), &text)
}

/// Parses and validates config text; `origin` names it in errors (usually the file path).
pub fn parse(origin: &str, text: &str) -> Result<Config, ConfigError> {
    let de = serde_yaml_ng::Deserializer::from_str(text);
    let mut config: Config = serde_path_to_error::deserialize(de).map_err(|e| {
        let field = e.path().to_string();
        let field = if field == "." { String::new() } else { field };
        let reason = e.into_inner().to_string();
        // serde_yaml_ng already prefixes some messages with the path; say it once.
        let reason = match reason.strip_prefix(&format!("{field}: ")) {
            Some(rest) if !field.is_empty() => rest.to_string(),
            _ => reason,
        };
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
