//! The subset of `haproxy.org/backend-config-snippet` sluice understands. Nothing in a
//! snippet is ever executed: known keywords are mapped to sluice settings, every
//! other line or keyword is returned so the caller can report it.

/// What a snippet asked for, in sluice's terms.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Snippet {
    /// `sni str(X)`.
    pub sni: Option<String>,
    /// `check-sni X`: the name the health check (and here, verification) uses.
    pub check_sni: Option<String>,
    /// `http-reuse always|safe|never|aggressive`.
    pub reuse: Option<Reuse>,
    /// `resolvers X`: runtime DNS, which sluice always does.
    pub resolvers: Option<String>,
    /// `resolve-prefer ipv4|ipv6`.
    pub prefer_ipv6: Option<bool>,
    /// Lines and keywords that were not understood, verbatim, in order.
    pub ignored: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reuse {
    /// `always`, `aggressive`, `safe`: sluice's pooling (an idle connection is used
    /// by any client once its previous response is complete).
    Pool,
    /// `never`: no idle connection is kept.
    Never,
}

/// Parses a snippet; never fails (what it does not know is in `ignored`).
pub fn parse(text: &str) -> Snippet {
    let mut s = Snippet::default();
    for raw in text.lines() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["http-reuse", mode] => match *mode {
                "always" | "safe" | "aggressive" => s.reuse = Some(Reuse::Pool),
                "never" => s.reuse = Some(Reuse::Never),
                _ => s.ignored.push(line.to_string()),
            },
            ["default-server", rest @ ..] | ["server-defaults", rest @ ..] => {
                server_options(rest, &mut s);
            }
            _ => s.ignored.push(line.to_string()),
        }
    }
    s
}

/// The options of a `default-server` line, two words at a time where they take an
/// argument; an unknown option is reported with its argument if it looks like one.
fn server_options(words: &[&str], s: &mut Snippet) {
    let mut i = 0;
    while i < words.len() {
        let (key, arg) = (words[i], words.get(i + 1).copied());
        let took = match (key, arg) {
            ("sni", Some(expr)) => {
                match expr.strip_prefix("str(").and_then(|e| e.strip_suffix(')')) {
                    Some(name) if !name.is_empty() => {
                        s.sni = Some(name.to_string());
                        2
                    }
                    _ => 0,
                }
            }
            ("check-sni", Some(name)) => {
                s.check_sni = Some(name.to_string());
                2
            }
            ("resolvers", Some(name)) => {
                s.resolvers = Some(name.to_string());
                2
            }
            ("resolve-prefer", Some("ipv4")) => {
                s.prefer_ipv6 = Some(false);
                2
            }
            ("resolve-prefer", Some("ipv6")) => {
                s.prefer_ipv6 = Some(true);
                2
            }
            _ => 0,
        };
        if took == 0 {
            s.ignored.push(format!("default-server {key}"));
            i += 1;
        } else {
            i += took;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seed_snippet_is_understood_entirely() {
        let s = parse(
            "# enforce SNI\n\
             default-server check-sni app1.example.com sni str(app1.example.com) resolvers mydns resolve-prefer ipv4\n\
             # reuse\n\
             http-reuse always\n",
        );
        assert_eq!(s.sni.as_deref(), Some("app1.example.com"));
        assert_eq!(s.check_sni.as_deref(), Some("app1.example.com"));
        assert_eq!(s.resolvers.as_deref(), Some("mydns"));
        assert_eq!(s.prefer_ipv6, Some(false));
        assert_eq!(s.reuse, Some(Reuse::Pool));
        assert!(s.ignored.is_empty(), "{:?}", s.ignored);
    }

    #[test]
    fn anything_else_is_returned_not_run() {
        let s = parse(
            "http-request set-header X-Evil 1\n\
             lua-load /etc/passwd\n\
             default-server sni req.hdr(host) maxconn 5\n\
             http-reuse sometimes\n",
        );
        assert_eq!(s.sni, None);
        assert_eq!(s.reuse, None);
        assert_eq!(
            s.ignored,
            [
                "http-request set-header X-Evil 1",
                "lua-load /etc/passwd",
                "default-server sni",
                "default-server req.hdr(host)",
                "default-server maxconn",
                "default-server 5",
                "http-reuse sometimes",
            ]
        );
    }
}
