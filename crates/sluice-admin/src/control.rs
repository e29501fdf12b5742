//! The seam between the admin plane and the proxy: the binary implements [`Control`], so
//! this crate serves reload and the config/pool views without depending on the proxy or
//! config crates (and they never depend on it).

use futures_util::future::BoxFuture;
use http::StatusCode;

/// What `POST /reload` resolves to: the status and the JSON body to answer with.
pub type ReloadFuture = BoxFuture<'static, (StatusCode, String)>;

/// Config control, implemented by the binary.
///
/// The admin plane runs on a single-threaded runtime of its own: nothing here may block
/// it. `config` and `pools` are called on that runtime and must only take snapshots.
pub trait Control: Send + Sync + 'static {
    /// Starts a reload and resolves to `(status, JSON body)` (see the reload spec: 200
    /// applied/unchanged, 400 rejected). The work must run elsewhere (the main runtime):
    /// the future is polled on the admin runtime and should only wait for the result.
    /// The admin spawns the future, so a client that hangs up does not cancel it.
    fn reload(&self) -> ReloadFuture;

    /// `GET /config`: the generation, the effective canonical config and the last
    /// reload result, as JSON.
    fn config(&self) -> String;

    /// `GET /pools`: per backend and server, pool and health state, as JSON.
    fn pools(&self) -> String;
}
