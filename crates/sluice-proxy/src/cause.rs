//! Every reason sluice answers (or abandons) a request itself, who caused it, and the
//! status it gets. The party decides where a failure is counted and whether it counts
//! against a server's health; nothing downstream compares strings.

use http::StatusCode;

/// Who caused a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Party {
    /// The request itself, or the client leaving: 4xx, counted per listener in
    /// `sluice_client_errors_total`, never against a backend or server.
    Client,
    /// sluice's own limits or resources (the queue, local ports).
    Sluice,
    /// The backend as a whole (no address yet, no healthy server).
    Backend,
    /// One server: connect, TLS, exchange and body failures; these feed passive health.
    Server,
}

/// The status logged for a client that left before its response started (NGINX's 499).
pub const CLIENT_CLOSED: u16 = 499;

/// One line per cause: its `sluice-error` value, who caused it, and the status of
/// sluice's own answer (or, where no answer can be sent, the one logged).
macro_rules! causes {
    ($($variant:ident => $name:literal, $party:ident, $code:expr;)+) => {
        /// Why sluice answered instead of the origin; `as_str` is the `sluice-error` value.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Cause {
            $($variant,)+
        }

        impl Cause {
            /// Every cause, in table order.
            pub const ALL: &'static [Cause] = &[$(Self::$variant,)+];

            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $name,)+
                }
            }

            pub const fn party(self) -> Party {
                match self {
                    $(Self::$variant => Party::$party,)+
                }
            }

            pub const fn code(self) -> u16 {
                match self {
                    $(Self::$variant => $code,)+
                }
            }
        }
    };
}

causes! {
    BadRequest => "bad_request", Client, 400;
    UriTooLong => "uri_too_long", Client, 414;
    RequestHeaderTooLarge => "request_header_too_large", Client, 431;
    NotImplemented => "not_implemented", Client, 501;
    MissingHost => "missing_host", Client, 400;
    InvalidHost => "invalid_host", Client, 400;
    DuplicateHost => "duplicate_host", Client, 400;
    CredentialsInUri => "credentials_in_uri", Client, 400;
    UnsupportedScheme => "unsupported_scheme", Client, 400;
    MethodNotSupported => "method_not_supported", Client, 501;
    NoRoute => "no_route", Client, 404;
    MisdirectedRequest => "misdirected_request", Client, 421;
    ClientIdentityDenied => "client_identity_denied", Client, 403;
    DeniedByPolicy => "denied_by_policy", Client, 403;
    ConnectNotAllowed => "connect_not_allowed", Client, 405;
    ProxyAuthRequired => "proxy_auth_required", Client, 407;
    BadRequestBody => "bad_request_body", Client, 400;
    RequestBodyTooLarge => "request_body_too_large", Client, 413;
    RequestHeaderTimeout => "request_header_timeout", Client, 408;
    RequestBodyTimeout => "request_body_timeout", Client, 408;
    SendTimeout => "send_timeout", Client, 408;
    ClientClosed => "client_closed", Client, CLIENT_CLOSED;
    Overloaded => "overloaded", Sluice, 503;
    QueueFull => "queue_full", Sluice, 503;
    QueueTimeout => "queue_timeout", Sluice, 503;
    TooManyDestinations => "too_many_destinations", Sluice, 503;
    // Out of local ports is this host's problem, not the server's: ejecting healthy
    // servers for it would only make things worse.
    ConnectAddrNotAvailable => "connect_addr_not_available", Sluice, 502;
    DnsFailed => "dns_failed", Backend, 502;
    NoServer => "no_server", Backend, 503;
    NoHealthyServer => "no_healthy_server", Backend, 503;
    ConnectRefused => "connect_refused", Server, 502;
    ConnectFailed => "connect_failed", Server, 502;
    ConnectTimeout => "connect_timeout", Server, 504;
    TlsHandshakeTimeout => "tls_handshake_timeout", Server, 504;
    TlsVerifyFailed => "tls_verify_failed", Server, 502;
    TlsHandshakeFailed => "tls_handshake_failed", Server, 502;
    UpstreamClosed => "upstream_closed", Server, 502;
    UpstreamProtocolError => "upstream_protocol_error", Server, 502;
    UpstreamError => "upstream_error", Server, 502;
    UpstreamTimeout => "upstream_timeout", Server, 504;
    ResponseTimeout => "response_timeout", Server, 504;
    UpstreamBodyError => "upstream_body_error", Server, 502;
    ResponseBodyTimeout => "response_body_timeout", Server, 504;
}

impl Cause {
    pub fn status(self) -> StatusCode {
        StatusCode::from_u16(self.code()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// Whether this failure counts against the server it happened on (passive health).
    pub const fn counts_against_server(self) -> bool {
        matches!(self.party(), Party::Server)
    }

    /// After failing to get a connection nothing of the request was sent, so any
    /// method may be retried on another server; except for a certificate that does
    /// not verify, which will not verify next time either.
    pub const fn retry_after_failed_open(self) -> bool {
        !matches!(self, Self::TlsVerifyFailed) && !matches!(self.party(), Party::Client)
    }
}

impl From<sluice_net::ConnectErrorKind> for Cause {
    fn from(kind: sluice_net::ConnectErrorKind) -> Self {
        use sluice_net::ConnectErrorKind as K;
        match kind {
            K::Resolve => Self::DnsFailed,
            K::Refused => Self::ConnectRefused,
            K::AddrNotAvailable => Self::ConnectAddrNotAvailable,
            K::Io => Self::ConnectFailed,
            K::Timeout => Self::ConnectTimeout,
            K::TlsTimeout => Self::TlsHandshakeTimeout,
            K::TlsVerify => Self::TlsVerifyFailed,
            K::TlsHandshake => Self::TlsHandshakeFailed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_causes_are_4xx_and_never_count_against_a_server() {
        for c in [
            Cause::BadRequestBody,
            Cause::RequestBodyTimeout,
            Cause::ClientClosed,
            Cause::DuplicateHost,
            Cause::NoRoute,
        ] {
            assert_eq!(c.party(), Party::Client, "{c:?}");
            assert!((400..500).contains(&c.code()), "{c:?}");
            assert!(!c.counts_against_server());
        }
        assert_eq!(Cause::MethodNotSupported.code(), 501);
        assert!(Cause::ConnectRefused.counts_against_server());
        assert!(!Cause::ConnectAddrNotAvailable.counts_against_server());
        assert_eq!(
            Cause::ResponseBodyTimeout.status(),
            StatusCode::GATEWAY_TIMEOUT
        );
    }

    #[test]
    fn the_readme_errors_table_names_every_cause_with_its_status() {
        let readme = include_str!("../../../README.md");
        let table = readme
            .split("## Errors")
            .nth(1)
            .and_then(|t| t.split("\n## ").next())
            .unwrap_or_default();
        for c in Cause::ALL {
            let row = table
                .lines()
                .find(|l| l.contains(&format!("`{}`", c.as_str())))
                .unwrap_or_else(|| panic!("README errors table has no row for {}", c.as_str()));
            let documented = c.code() == CLIENT_CLOSED
                || *c == Cause::SendTimeout
                || row.starts_with(&format!("| {}", c.code()))
                || row.starts_with("| (head sent)");
            assert!(
                documented,
                "{}: status {} not in {row}",
                c.as_str(),
                c.code()
            );
        }
    }

    #[test]
    fn connect_kinds_keep_their_documented_names() {
        use sluice_net::ConnectErrorKind as K;
        for k in [
            K::Resolve,
            K::Refused,
            K::AddrNotAvailable,
            K::Io,
            K::Timeout,
            K::TlsTimeout,
            K::TlsVerify,
            K::TlsHandshake,
        ] {
            assert_eq!(Cause::from(k).as_str(), k.cause());
        }
    }
}
