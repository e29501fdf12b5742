//! The text form of a [`ConfigDiff`], as `sluice check --diff` prints it: one line
//! per change, a section label padded so the signs line up.

use crate::diff::{Changed, Changes, ConfigDiff, PoolChanges};
use std::fmt;

/// `listeners: ` is the longest label; the others are padded to it.
const LABEL_WIDTH: usize = 11;

impl ConfigDiff {
    /// The lines of `sluice check --diff` after its `FILE: ok (…)` line: routes,
    /// backends, listeners (`= unchanged` when none), the pools line if `pools` is
    /// filled in, then fields a reload applies outside those sections and fields that
    /// need a restart. A caller that prints the pools line itself leaves `pools` empty.
    /// An empty diff is the single line `no change (same canonical config)`.
    pub fn lines(&self) -> Vec<String> {
        if self.is_empty() {
            return vec!["no change (same canonical config)".to_string()];
        }
        let mut out = Vec::new();
        section(&mut out, "routes:", &self.routes, |c| match &c.backend {
            Some((was, now)) => format!(" (backend {was} -> {now})"),
            None => fields(c),
        });
        section(&mut out, "backends:", &self.backends, fields);
        section(&mut out, "listeners:", &self.listeners, fields);
        if let Some(p) = &self.pools {
            out.push(p.to_string());
        }
        for path in &self.other {
            out.push(format!("{:<LABEL_WIDTH$}~ {path}", "other:"));
        }
        for path in &self.restart_required {
            out.push(format!(
                "{:<LABEL_WIDTH$}~ {path} (needs a restart; not applied by a reload)",
                "restart:"
            ));
        }
        out
    }
}

fn section(out: &mut Vec<String>, label: &str, c: &Changes, detail: impl Fn(&Changed) -> String) {
    let line = |sign: char, id: &str, rest: &str| format!("{label:<LABEL_WIDTH$}{sign} {id}{rest}");
    if c.is_empty() {
        out.push(format!("{label:<LABEL_WIDTH$}= unchanged"));
        return;
    }
    for id in &c.added {
        let target = c.targets.get(id).map(|b| format!(" -> {b}"));
        out.push(line('+', id, target.as_deref().unwrap_or_default()));
    }
    for id in &c.removed {
        out.push(line('-', id, ""));
    }
    for changed in &c.changed {
        out.push(line('~', &changed.id, &detail(changed)));
    }
}

fn fields(c: &Changed) -> String {
    format!(" ({})", c.fields.join(", "))
}

impl fmt::Display for ConfigDiff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.lines().join("\n"))
    }
}

impl fmt::Display for PoolChanges {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:<LABEL_WIDTH$}kept {}, new {}, closed {}",
            "pools:", self.kept, self.added, self.removed
        )
    }
}
