//! The README's configuration reference documents every field of the schema.

use crate::parse;
use serde_json::Value;

/// A config with every optional section present, so its JSON form has every field.
const EVERYTHING: &str = "
runtime: {workers: 1}
admin: {bind: '127.0.0.1:9000'}
resolver: {nameservers: ['10.0.0.53:53']}
listeners:
  - {name: e, bind: unix:/tmp/e.sock, mode: '0660'}
  - name: f
    bind: '127.0.0.1:0'
    forward:
      originate_tls: [api.example.com]
      connect: {}
      auth: {basic_file: USERS}
      policy: {allow: [{host: '*', ports: [443], cidr: 10.0.0.0/8}]}
routes: [{host: a.example.com, backend: a}]
backends:
  - name: a
    servers: ['a:1']
    tls: {sni: a.example.com, ca_file: CA}
    balance: hash
    hash_on: client_ip
    source_addresses: [10.0.0.1]
    health: {check: {host: a.example.com}, passive: {}}
    policy: {allow: [{cidr: 10.0.0.0/8}]}
sources: {kubernetes: {kubeconfig: KC, namespaces: [default]}}
";

/// Field paths as the README writes them (`backends[].pool.idle_timeout`).
fn leaves(at: &str, v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                let path = if at.is_empty() {
                    k.clone()
                } else {
                    format!("{at}.{k}")
                };
                leaves(&path, child, out);
            }
        }
        Value::Array(items) if items.iter().all(Value::is_object) && !items.is_empty() => {
            for item in items {
                leaves(&format!("{at}[]"), item, out);
            }
        }
        _ => out.push(at.to_string()),
    }
}

#[test]
fn the_readme_documents_every_config_field() -> Result<(), String> {
    let readme = include_str!("../../../README.md");
    let reference = readme
        .split_once("## Configuration reference")
        .and_then(|(_, rest)| rest.split("\n## ").next())
        .ok_or("README has no Configuration reference section")?;
    let ca = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    let users = std::env::temp_dir().join(format!("sluice-reference-users-{}", std::process::id()));
    std::fs::write(&users, "u:p\n").map_err(|e| e.to_string())?;
    let yaml = EVERYTHING
        .replace("CA", ca)
        .replace("USERS", &users.display().to_string());
    let parsed = parse("t.yaml", &yaml).map_err(|e| e.to_string());
    let _ = std::fs::remove_file(&users);
    let config = parsed?;
    let value = serde_json::to_value(&config).map_err(|e| e.to_string())?;
    let mut fields = Vec::new();
    leaves("", &value, &mut fields);
    assert!(fields.len() > 60, "{fields:?}");
    assert!(fields.contains(&"config.watch_debounce".to_string()));
    // A field is documented in its own row or in its section's (`backends[].health.check`
    // lists its settings inline).
    let documented = |path: &str| {
        let mut at = path;
        loop {
            if reference.contains(&format!("| `{at}` |")) {
                return true;
            }
            match at.rsplit_once('.') {
                Some((parent, _)) => at = parent,
                None => return false,
            }
        }
    };
    let missing: Vec<&String> = fields.iter().filter(|f| !documented(f)).collect();
    assert!(
        missing.is_empty(),
        "not in the README reference: {missing:?}"
    );
    Ok(())
}
