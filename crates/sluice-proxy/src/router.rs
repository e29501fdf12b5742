//! Host (and path prefix) → route. Exact hosts win over wildcards, a longer wildcard
//! suffix over a shorter one, and `*` comes last; within a host, the longest matching
//! path prefix wins. If no prefix matches for the most specific host, less specific
//! host rules are tried. Among routes of one prefix, those with header conditions
//! come first, most conditions first (Gateway API's precedence), and the first whose
//! conditions all hold is the match.

use crate::backend::Backend;
use crate::metrics::Name;
use std::collections::HashMap;
use std::sync::Arc;

#[derive(Clone)]
pub struct Route {
    pub prefix: String,
    pub backend: Arc<Backend>,
    /// `host` + `path_prefix`, the `route` label of metrics and logs.
    pub label: Name,
    /// `routes[].client_identities`; empty: anyone.
    pub identities: Arc<[String]>,
    /// `routes[].headers`: each must be present with exactly this value.
    pub headers: Arc<[(http::HeaderName, String)]>,
    /// `routes[].max_request_body`, in bytes.
    pub max_body: Option<u64>,
}

impl Route {
    /// Most routes have no header condition: the check stays one length test.
    #[inline]
    fn matches(&self, path: &str, headers: &http::HeaderMap) -> bool {
        path.starts_with(self.prefix.as_str())
            && (self.headers.is_empty() || self.headers_match(headers))
    }

    #[inline(never)]
    fn headers_match(&self, headers: &http::HeaderMap) -> bool {
        self.headers.iter().all(|(name, want)| {
            headers
                .get_all(name)
                .iter()
                .any(|v| v.as_bytes() == want.as_bytes())
        })
    }

    /// Whether a client with this verified identity (or none) may use the route.
    pub fn admits(&self, identity: Option<&str>) -> bool {
        if self.identities.is_empty() {
            return true;
        }
        let Some(id) = identity else { return false };
        self.identities
            .iter()
            .any(|allowed| match allowed.strip_suffix('*') {
                Some(prefix) => id.starts_with(prefix),
                None => id == allowed,
            })
    }
}

#[derive(Default)]
pub struct Router {
    exact: HashMap<String, Vec<Route>>,
    /// Keyed by the suffix after `*.` (e.g. `example.com`).
    wildcard: HashMap<String, Vec<Route>>,
    any: Vec<Route>,
}

impl Router {
    /// Adds a route; `host` is already validated and lower-case.
    pub fn add(&mut self, host: &str, route: Route) {
        let list = if host == "*" {
            &mut self.any
        } else if let Some(suffix) = host.strip_prefix("*.") {
            self.wildcard.entry(suffix.to_string()).or_default()
        } else {
            self.exact.entry(host.to_string()).or_default()
        };
        list.push(route);
        list.sort_by_key(|r| std::cmp::Reverse((r.prefix.len(), r.headers.len())));
    }

    /// Finds the route for a request. `host` must be lower-case without a port.
    pub fn find(&self, host: &str, path: &str, headers: &http::HeaderMap) -> Option<&Route> {
        if let Some(r) = self.exact.get(host).and_then(|l| first(l, path, headers)) {
            return Some(r);
        }
        if !self.wildcard.is_empty() {
            let mut rest = host;
            while let Some((_, suffix)) = rest.split_once('.') {
                if let Some(r) = self
                    .wildcard
                    .get(suffix)
                    .and_then(|l| first(l, path, headers))
                {
                    return Some(r);
                }
                rest = suffix;
            }
        }
        first(&self.any, path, headers)
    }
}

/// Routes are sorted longest prefix first (then most header conditions first), so
/// the first match is the most specific.
fn first<'a>(list: &'a [Route], path: &str, headers: &http::HeaderMap) -> Option<&'a Route> {
    list.iter().find(|r| r.matches(path, headers))
}

/// The host of a `Host` header or authority: lower-cased, port and brackets removed.
pub fn normalize_host(raw: &str) -> std::borrow::Cow<'_, str> {
    let host = if let Some(rest) = raw.strip_prefix('[') {
        rest.split_once(']').map_or(rest, |(h, _)| h)
    } else {
        raw.rsplit_once(':').map_or(raw, |(h, port)| {
            if port.bytes().all(|b| b.is_ascii_digit()) {
                h
            } else {
                raw
            }
        })
    };
    let host = host.trim_end_matches('.');
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        std::borrow::Cow::Owned(host.to_ascii_lowercase())
    } else {
        std::borrow::Cow::Borrowed(host)
    }
}

#[cfg(test)]
mod tests {
    use super::normalize_host;

    #[test]
    fn hosts_are_normalised() {
        assert_eq!(normalize_host("API.Example.com:8080"), "api.example.com");
        assert_eq!(normalize_host("[::1]:80"), "::1");
        assert_eq!(normalize_host("example.com."), "example.com");
    }
}
