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

/// Why sluice answered instead of the origin; `as_str` is the `sluice-error` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cause {
    BadRequest,
    MissingHost,
    InvalidHost,
    DuplicateHost,
    CredentialsInUri,
    UnsupportedScheme,
    MethodNotSupported,
    NoRoute,
    BadRequestBody,
    RequestHeaderTimeout,
    RequestBodyTimeout,
    SendTimeout,
    ClientClosed,
    QueueFull,
    QueueTimeout,
    ConnectAddrNotAvailable,
    DnsFailed,
    NoServer,
    NoHealthyServer,
    ConnectRefused,
    ConnectFailed,
    ConnectTimeout,
    TlsHandshakeTimeout,
    TlsVerifyFailed,
    TlsHandshakeFailed,
    UpstreamClosed,
    UpstreamProtocolError,
    UpstreamError,
    UpstreamTimeout,
    ResponseTimeout,
    UpstreamBodyError,
    ResponseBodyTimeout,
}

/// The status logged for a client that left before its response started (NGINX's 499).
pub const CLIENT_CLOSED: u16 = 499;

impl Cause {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::BadRequest => "bad_request",
            Self::MissingHost => "missing_host",
            Self::InvalidHost => "invalid_host",
            Self::DuplicateHost => "duplicate_host",
            Self::CredentialsInUri => "credentials_in_uri",
            Self::UnsupportedScheme => "unsupported_scheme",
            Self::MethodNotSupported => "method_not_supported",
            Self::NoRoute => "no_route",
            Self::BadRequestBody => "bad_request_body",
            Self::RequestHeaderTimeout => "request_header_timeout",
            Self::RequestBodyTimeout => "request_body_timeout",
            Self::SendTimeout => "send_timeout",
            Self::ClientClosed => "client_closed",
            Self::QueueFull => "queue_full",
            Self::QueueTimeout => "queue_timeout",
            Self::ConnectAddrNotAvailable => "connect_addr_not_available",
            Self::DnsFailed => "dns_failed",
            Self::NoServer => "no_server",
            Self::NoHealthyServer => "no_healthy_server",
            Self::ConnectRefused => "connect_refused",
            Self::ConnectFailed => "connect_failed",
            Self::ConnectTimeout => "connect_timeout",
            Self::TlsHandshakeTimeout => "tls_handshake_timeout",
            Self::TlsVerifyFailed => "tls_verify_failed",
            Self::TlsHandshakeFailed => "tls_handshake_failed",
            Self::UpstreamClosed => "upstream_closed",
            Self::UpstreamProtocolError => "upstream_protocol_error",
            Self::UpstreamError => "upstream_error",
            Self::UpstreamTimeout => "upstream_timeout",
            Self::ResponseTimeout => "response_timeout",
            Self::UpstreamBodyError => "upstream_body_error",
            Self::ResponseBodyTimeout => "response_body_timeout",
        }
    }

    pub const fn party(self) -> Party {
        match self {
            Self::BadRequest
            | Self::MissingHost
            | Self::InvalidHost
            | Self::DuplicateHost
            | Self::CredentialsInUri
            | Self::UnsupportedScheme
            | Self::MethodNotSupported
            | Self::NoRoute
            | Self::BadRequestBody
            | Self::RequestHeaderTimeout
            | Self::RequestBodyTimeout
            | Self::SendTimeout
            | Self::ClientClosed => Party::Client,
            // Out of local ports is this host's problem, not the server's: ejecting
            // healthy servers for it would only make things worse.
            Self::QueueFull | Self::QueueTimeout | Self::ConnectAddrNotAvailable => Party::Sluice,
            Self::DnsFailed | Self::NoServer | Self::NoHealthyServer => Party::Backend,
            Self::ConnectRefused
            | Self::ConnectFailed
            | Self::ConnectTimeout
            | Self::TlsHandshakeTimeout
            | Self::TlsVerifyFailed
            | Self::TlsHandshakeFailed
            | Self::UpstreamClosed
            | Self::UpstreamProtocolError
            | Self::UpstreamError
            | Self::UpstreamTimeout
            | Self::ResponseTimeout
            | Self::UpstreamBodyError
            | Self::ResponseBodyTimeout => Party::Server,
        }
    }

    /// The status code of sluice's own answer (or, for `client_closed`, the one logged).
    pub const fn code(self) -> u16 {
        match self {
            Self::BadRequest
            | Self::MissingHost
            | Self::InvalidHost
            | Self::DuplicateHost
            | Self::CredentialsInUri
            | Self::UnsupportedScheme
            | Self::BadRequestBody => 400,
            Self::NoRoute => 404,
            Self::RequestHeaderTimeout | Self::RequestBodyTimeout | Self::SendTimeout => 408,
            Self::ClientClosed => CLIENT_CLOSED,
            Self::MethodNotSupported => 501,
            Self::QueueFull | Self::QueueTimeout | Self::NoServer | Self::NoHealthyServer => 503,
            Self::ConnectTimeout
            | Self::TlsHandshakeTimeout
            | Self::UpstreamTimeout
            | Self::ResponseTimeout
            | Self::ResponseBodyTimeout => 504,
            Self::ConnectAddrNotAvailable
            | Self::DnsFailed
            | Self::ConnectRefused
            | Self::ConnectFailed
            | Self::TlsVerifyFailed
            | Self::TlsHandshakeFailed
            | Self::UpstreamClosed
            | Self::UpstreamProtocolError
            | Self::UpstreamError
            | Self::UpstreamBodyError => 502,
        }
    }

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
