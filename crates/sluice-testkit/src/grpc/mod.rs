//! gRPC end to end: a real tonic origin ([`GrpcOrigin`]) and client ([`GrpcClient`]),
//! with real HTTP/2 framing, trailers and `grpc-status`, and no protobuf: messages are
//! raw bytes ([`BytesCodec`]).
//!
//! The origin serves `test.Echo`:
//!
//! | method | request | response | `x-echo-trailer` |
//! | --- | --- | --- | --- |
//! | `Unary` | any bytes | the same bytes | `unary` |
//! | `Unary` | `fail:<msg>` | response headers, then trailers with `grpc-status: 3` (InvalidArgument), `grpc-message: <msg>` | none |
//! | `Unary` | `reject:<msg>` | trailers-only: `grpc-status: 3` in the response headers, no body | none |
//! | `Unary` | `sleep:<ms>` | waits `ms`, then echoes | `unary` |
//! | `ServerStream` | `"<count> <interval_ms>"` | `count` messages `msg <i>`, the first at once, then one every `interval_ms` | `server-stream` |
//! | `ClientStream` | any number of messages | once the request stream ends: all of them concatenated | `client-stream:<n messages>` |
//! | `Bidi` | any number of messages | each one echoed as it arrives; ends when the request stream does | `bidi` |
//!
//! Any other path answers `grpc-status: 12` (Unimplemented). The origin records the
//! head of every request ([`GrpcOrigin::last_headers`], e.g. `te: trailers`;
//! [`GrpcOrigin::last_authority`]).
//!
//! ```no_run
//! use sluice_testkit::{bytes::Bytes, grpc::{GrpcClient, GrpcOrigin}};
//!
//! # async fn demo() {
//! let origin = GrpcOrigin::start().await;
//! let mut client = GrpcClient::connect(origin.addr(), "grpc.test").await;
//! let (reply, trailers) = client.unary(Bytes::from("hi")).await.unwrap();
//! assert_eq!(reply, "hi");
//! assert_eq!(trailers.get("x-echo-trailer").unwrap(), "unary");
//! assert_eq!(origin.last_headers()["te"], "trailers");
//! # }
//! ```

mod client;
mod codec;
mod origin;
mod service;

#[cfg(test)]
mod tests;

use std::time::Duration;

pub use client::{BidiCall, GrpcClient, GrpcReply};
pub use codec::BytesCodec;
pub use origin::GrpcOrigin;
pub use service::SeenRequest;
/// Re-exported so tests need no direct tonic dependency to name statuses and trailers.
pub use tonic::{metadata::MetadataMap, Code, Status};

/// The service name in every path.
pub const SERVICE: &str = "test.Echo";
pub const UNARY: &str = "/test.Echo/Unary";
pub const SERVER_STREAM: &str = "/test.Echo/ServerStream";
pub const CLIENT_STREAM: &str = "/test.Echo/ClientStream";
pub const BIDI: &str = "/test.Echo/Bidi";

/// How long any [`GrpcClient`] call, or any wait of a [`BidiCall`], may take before it
/// panics.
pub const GRPC_TIMEOUT: Duration = Duration::from_secs(20);
