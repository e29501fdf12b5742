//! Body types on both sides of the proxy. Bodies stream: a frame is forwarded as soon
//! as it arrives and never accumulated. Each side's body has an idle timeout that only
//! counts while it waits for its peer, never while the other side is not reading.

mod request;
mod response;

pub use request::{ReqBody, Upload};
pub use response::RespBody;
