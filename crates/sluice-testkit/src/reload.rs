//! Live reload from a test: rewrite the running config, trigger a reload (SIGHUP, admin
//! `POST /reload`, or the file watch), and read the outcome from the admin JSON API, the
//! metrics and the log (interface: `/work/reload-spec.md`, issue 8).
//!
//! ```no_run
//! # async fn demo(sluice: &sluice_testkit::Sluice, new_yaml: &str) {
//! sluice.write_config(new_yaml); // write a temp file, rename it over the config
//! let (status, answer) = sluice.reload_admin().await;
//! assert_eq!(status, 200);
//! assert_eq!(answer["result"], "applied");
//! let config = sluice.admin_get_json("/config").await;
//! assert_eq!(config["generation"], 2);
//! # }
//! ```

use crate::{
    client::{request, send},
    process::{listening, metric_value, Listening},
    wait::DEFAULT_WAIT,
    Sluice,
};
use http::Method;
use http_body_util::Empty;
use serde_json::Value as Json;
use std::{io::Write, net::SocketAddr, path::Path};

/// The log messages of the three reload outcomes.
pub const RELOAD_MESSAGES: [&str; 3] = [
    "config reload applied",
    "config reload unchanged",
    "config reload rejected",
];

/// `sluice_config_reloads_total` by result.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReloadCounts {
    pub applied: f64,
    pub unchanged: f64,
    pub rejected: f64,
}

impl Sluice {
    /// Replaces the config file as editors and `kubectl`/GitOps tools do: writes `yaml` to
    /// a temp file in the same directory, then renames it over the config (atomic; the
    /// config path gets a new inode).
    pub fn write_config(&self, yaml: &str) {
        let path = self.config_path();
        let dir = path.parent().expect("config file has a directory");
        let mut tmp = tempfile::NamedTempFile::new_in(dir).expect("temp file next to config");
        tmp.write_all(yaml.as_bytes()).expect("write new config");
        tmp.as_file().sync_all().expect("sync new config");
        tmp.persist(path)
            .unwrap_or_else(|e| panic!("rename new config over {}: {e}", path.display()));
    }

    /// Rewrites the config file in place (truncate and write: same inode), as `echo >`
    /// or a plain editor save does.
    pub fn write_config_in_place(&self, yaml: &str) {
        let path = self.config_path();
        std::fs::write(path, yaml).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }

    /// SIGHUP: reload from the config file. Returns at once; see
    /// [`Sluice::sighup_and_wait`] to wait for the outcome.
    pub fn sighup(&self) {
        self.signal("HUP");
    }

    /// SIGHUP, then waits for the reload outcome it causes (the next `config reload …` log
    /// event after those already logged) and returns it.
    pub async fn sighup_and_wait(&self) -> Json {
        let seen = self.reload_events().len();
        self.sighup();
        self.wait_for_reload_event(seen).await
    }

    /// Admin `POST /reload`: the status and the JSON answer (panics unless the answer is
    /// JSON).
    pub async fn reload_admin(&self) -> (u16, Json) {
        let req = request(Method::POST, "admin", "/reload", Empty::new());
        let response = send(self.admin_addr(), req)
            .await
            .unwrap_or_else(|e| panic!("POST /reload failed: {e}"));
        let status = response.status.as_u16();
        let body: Json = serde_json::from_slice(&response.body).unwrap_or_else(|e| {
            panic!(
                "POST /reload answered {status} with a body that is not JSON ({e}): {:?}",
                response.text()
            )
        });
        (status, body)
    }

    /// `GET path` on the admin listener, which must answer 200 with
    /// `content-type: application/json`; the parsed body.
    pub async fn admin_get_json(&self, path: &str) -> Json {
        let response = crate::client::get(self.admin_addr(), "admin", path).await;
        assert_eq!(
            response.status,
            200,
            "GET {path} on the admin listener: {}",
            response.text()
        );
        let content_type = response.header("content-type").unwrap_or("");
        assert!(
            content_type.starts_with("application/json"),
            "GET {path}: content-type {content_type:?}, expected application/json"
        );
        serde_json::from_slice(&response.body)
            .unwrap_or_else(|e| panic!("GET {path}: not JSON ({e}): {:?}", response.text()))
    }

    /// `sluice_config_reloads_total` for each result; panics if a series is missing
    /// (all three exist from start).
    pub async fn reload_counts(&self) -> ReloadCounts {
        let text = self.metrics().await;
        let series = |result: &str| {
            let name = format!("sluice_config_reloads_total{{result=\"{result}\"}}");
            metric_value(&text, &name)
                .unwrap_or_else(|| panic!("no series {name} on /metrics:\n{text}"))
        };
        ReloadCounts {
            applied: series("applied"),
            unchanged: series("unchanged"),
            rejected: series("rejected"),
        }
    }

    /// The reload outcome events logged so far (`config reload applied|unchanged|rejected`),
    /// oldest first.
    pub fn reload_events(&self) -> Vec<Json> {
        self.log_events()
            .into_iter()
            .filter(|e| RELOAD_MESSAGES.contains(&message(e)))
            .collect()
    }

    /// Waits (at most [`DEFAULT_WAIT`]) until more than `seen` reload outcome events have
    /// been logged and returns the one at index `seen`.
    pub async fn wait_for_reload_event(&self, seen: usize) -> Json {
        let outcomes = |lines: &[String]| {
            lines
                .iter()
                .filter_map(|l| serde_json::from_str::<Json>(l).ok())
                .filter(|e| RELOAD_MESSAGES.contains(&message(e)))
                .count()
        };
        let logged = self
            .wait_for_stderr_lines(DEFAULT_WAIT, |lines| outcomes(lines) > seen)
            .await;
        assert!(
            logged,
            "no reload outcome #{} logged within {DEFAULT_WAIT:?}\n{}",
            seen + 1,
            self.logs()
        );
        self.reload_events().swap_remove(seen)
    }

    /// Waits (at most [`DEFAULT_WAIT`]) for a JSON log event whose `message` is `message`
    /// and which satisfies `matches` (given the whole event; its fields are under
    /// `"fields"`), and returns it; panics, showing the logs, if none appears.
    pub async fn wait_for_log(&self, message: &str, matches: impl Fn(&Json) -> bool) -> Json {
        let found = self
            .wait_for_stderr_within(DEFAULT_WAIT, |line| {
                serde_json::from_str::<Json>(line)
                    .is_ok_and(|e| e["fields"]["message"] == message && matches(&e))
            })
            .await
            .unwrap_or_else(|| {
                panic!(
                    "no matching {message:?} log event within {DEFAULT_WAIT:?}\n{}",
                    self.logs()
                )
            });
        serde_json::from_str(&found).expect("matched line is JSON")
    }

    /// Waits (at most [`DEFAULT_WAIT`]) for listener `name` to log `listening`, e.g. one a
    /// reload added, and returns its address (the newest such line's, if several).
    pub async fn wait_for_listener(&self, name: &str) -> SocketAddr {
        let is_it = |line: &str| matches!(listening(line), Some(Listening::Listener { name: n, .. }) if n == name);
        self.wait_for_stderr_within(DEFAULT_WAIT, is_it)
            .await
            .unwrap_or_else(|| {
                panic!(
                    "listener {name:?} did not log `listening` within {DEFAULT_WAIT:?}\n{}",
                    self.logs()
                )
            });
        let addr = self
            .stderr_lines()
            .iter()
            .rev()
            .find_map(|line| match listening(line) {
                Some(Listening::Listener { name: n, addr }) if n == name => Some(addr),
                _ => None,
            })
            .expect("the line just seen");
        addr.parse()
            .unwrap_or_else(|_| panic!("listener {name:?} is not TCP: {addr}"))
    }

    /// How many times listener `name` has logged `listening` (1 for a listener bound
    /// once at start and kept across reloads).
    pub fn listening_count(&self, name: &str) -> usize {
        self.stderr_lines()
            .iter()
            .filter(|line| matches!(listening(line), Some(Listening::Listener { name: n, .. }) if n == name))
            .count()
    }
}

/// The `message` of a JSON log event ("" if none).
pub fn message(event: &Json) -> &str {
    event["fields"]["message"].as_str().unwrap_or("")
}

/// The `sluice check` verdict on a config file: its exit status and its output (stdout
/// and stderr, trimmed). For comparing a reload's error with what `check` says.
pub fn check_config(bin: impl AsRef<Path>, config: &Path) -> (bool, String) {
    let output = std::process::Command::new(bin.as_ref())
        .arg("check")
        .arg("--config")
        .arg(config)
        .output()
        .unwrap_or_else(|e| panic!("run {} check: {e}", bin.as_ref().display()));
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    (output.status.success(), text.trim().to_owned())
}
