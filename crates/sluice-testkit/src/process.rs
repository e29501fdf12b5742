//! Running the real `sluice` binary as a child process.
//!
//! ```no_run
//! # async fn demo(sluice_bin: &str) {
//! # use sluice_testkit::{Sluice, Origin, get};
//! let origin = Origin::start().await;
//! let yaml = format!(
//!     "log:\n  format: json\n\
//!      listeners:\n  - name: egress\n    bind: 127.0.0.1:0\n\
//!      routes:\n  - host: '*'\n    backend: app\n\
//!      backends:\n  - name: app\n    servers: ['{}']\n",
//!     origin.server_spec()
//! );
//! let sluice = Sluice::start(sluice_bin, &yaml).await; // env!("CARGO_BIN_EXE_sluice")
//! let response = get(sluice.listener_addr("egress"), "app.test", "/").await;
//! assert_eq!(response.status, 200);
//! # }
//! ```

use crate::{
    logs::{tail, Lines},
    wait::DEFAULT_WAIT,
};
use serde_json::Value as Json;
use serde_yaml_ng::Value as Yaml;
use std::{
    collections::HashMap,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{ExitStatus, Stdio},
    sync::Arc,
    time::Duration,
};
use tempfile::TempDir;
use tokio::{
    process::{Child, Command},
    task::JoinHandle,
};

/// How long [`Sluice::start`] waits for every listener to report.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(20);
/// How long [`Sluice::wait_exit`] waits for the process to end.
pub const EXIT_TIMEOUT: Duration = Duration::from_secs(30);

/// A running `sluice` child process; killed when dropped.
pub struct Sluice {
    child: Child,
    pid: u32,
    config_path: PathBuf,
    expected: Expected,
    stdout: Arc<Lines>,
    stderr: Arc<Lines>,
    readers: Vec<JoinHandle<()>>,
    _dir: TempDir,
}

/// The listeners the config declares, and what they reported.
#[derive(Default)]
struct Expected {
    listeners: Vec<String>,
    admin: bool,
    bound: HashMap<String, String>,
    admin_bound: Option<String>,
    /// `sluice started` was logged.
    started: bool,
}

impl Sluice {
    /// Writes `yaml` to a temp file, runs `bin run --config <file>` and waits (at most
    /// [`STARTUP_TIMEOUT`]) until every listener in the config, and the admin listener if
    /// any, has logged its address. Panics, showing stderr, if that does not happen.
    ///
    /// The config must set `log: {format: json}`: readiness is read from the JSON log.
    pub async fn start(bin: impl AsRef<Path>, yaml: &str) -> Sluice {
        Self::start_env(bin, yaml, &[]).await
    }

    /// [`Sluice::start`] with these environment variables set (e.g. `SSL_CERT_FILE`,
    /// which the system trust store honours, for a test CA as a "system" root).
    pub async fn start_env(bin: impl AsRef<Path>, yaml: &str, env: &[(&str, &str)]) -> Sluice {
        assert!(
            log_format_is_json(yaml),
            "Sluice::start reads readiness from JSON logs: the config needs `log: {{format: json}}`"
        );
        let mut sluice = Self::spawn_env(bin, yaml, env);
        sluice.wait_ready().await;
        sluice
    }

    /// Like [`Sluice::start`] without waiting for anything: for configs that should fail.
    pub fn spawn(bin: impl AsRef<Path>, yaml: &str) -> Sluice {
        Self::spawn_env(bin, yaml, &[])
    }

    fn spawn_env(bin: impl AsRef<Path>, yaml: &str, env: &[(&str, &str)]) -> Sluice {
        let dir = tempfile::tempdir().expect("temp dir for sluice config");
        let config_path = dir.path().join("sluice.yaml");
        std::fs::write(&config_path, yaml).expect("write sluice config");

        let bin = bin.as_ref();
        let mut child = Command::new(bin)
            .arg("run")
            .arg("--config")
            .arg(&config_path)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", bin.display()));
        let pid = child.id().expect("child pid");
        let (stdout, out_task) = Lines::collect(child.stdout.take().expect("piped stdout"));
        let (stderr, err_task) = Lines::collect(child.stderr.take().expect("piped stderr"));

        Sluice {
            child,
            pid,
            config_path,
            expected: Expected::from_yaml(yaml),
            stdout,
            stderr,
            readers: vec![out_task, err_task],
            _dir: dir,
        }
    }

    async fn wait_ready(&mut self) {
        let expected = &mut self.expected;
        let ready = self
            .stderr
            .wait_until(STARTUP_TIMEOUT, |lines| {
                lines.iter().for_each(|line| expected.note(line));
                expected.complete()
            })
            .await;
        if !ready {
            let state = match self.child.try_wait() {
                Ok(Some(status)) => format!("exited with {status}"),
                _ if self.stderr.at_eof() => "closed its stderr".to_owned(),
                _ => format!("is still starting after {STARTUP_TIMEOUT:?}"),
            };
            panic!(
                "sluice {state}; expected listeners {:?} (admin: {}), saw {:?}\n{}",
                self.expected.listeners,
                self.expected.admin,
                self.expected.bound,
                self.logs()
            );
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Where the config was written.
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// The address a listener reported, as logged: `127.0.0.1:PORT` or `unix:/path`.
    pub fn listener_spec(&self, name: &str) -> &str {
        self.expected.bound.get(name).unwrap_or_else(|| {
            panic!(
                "no listener {name:?} reported; have {:?}",
                self.expected.bound
            )
        })
    }

    /// The TCP address a listener is bound to (the real port, not the configured `:0`).
    pub fn listener_addr(&self, name: &str) -> SocketAddr {
        let spec = self.listener_spec(name);
        spec.parse()
            .unwrap_or_else(|_| panic!("listener {name:?} is not TCP: {spec}"))
    }

    /// The socket path of a Unix listener.
    pub fn listener_path(&self, name: &str) -> PathBuf {
        let spec = self.listener_spec(name);
        let path = spec
            .strip_prefix("unix:")
            .unwrap_or_else(|| panic!("listener {name:?} is not a unix socket: {spec}"));
        PathBuf::from(path)
    }

    /// `GET /metrics` on the admin listener (panics unless it answers 200).
    pub async fn metrics(&self) -> String {
        let response = crate::client::get(self.admin_addr(), "admin", "/metrics").await;
        assert_eq!(response.status, 200, "GET /metrics");
        response.text()
    }

    /// The value of one series on `/metrics`, written as it appears there, e.g.
    /// `sluice_upstream_idle_connections{backend="app"}`; `None` if it is absent.
    pub async fn metric(&self, series: &str) -> Option<f64> {
        metric_value(&self.metrics().await, series)
    }

    /// Polls `/metrics` until `series` satisfies `condition` (an absent series reads
    /// as NaN); panics with the last value after [`crate::DEFAULT_WAIT`].
    pub async fn wait_for_metric(&self, series: &str, condition: impl Fn(f64) -> bool) {
        let deadline = tokio::time::Instant::now() + crate::DEFAULT_WAIT;
        loop {
            let value = self.metric(series).await.unwrap_or(f64::NAN);
            if condition(value) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{series} is still {value} after {:?}",
                crate::DEFAULT_WAIT
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    /// The admin listener's TCP address.
    pub fn admin_addr(&self) -> SocketAddr {
        let spec = self
            .expected
            .admin_bound
            .as_deref()
            .expect("no admin listener reported (is `admin:` in the config?)");
        spec.parse()
            .unwrap_or_else(|_| panic!("admin listener is not TCP: {spec}"))
    }

    /// Sends a signal by name (`"TERM"`, `"INT"`, `"HUP"`, ...) with the `kill` command.
    pub fn signal(&self, name: &str) {
        let status = std::process::Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid.to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} {} failed", self.pid);
    }

    /// SIGTERM: the graceful shutdown signal.
    pub fn terminate(&self) {
        self.signal("TERM");
    }

    /// SIGINT, as from Ctrl-C.
    pub fn interrupt(&self) {
        self.signal("INT");
    }

    /// Waits (at most [`EXIT_TIMEOUT`]) for the process to exit and its output to be read.
    pub async fn wait_exit(&mut self) -> ExitStatus {
        self.wait_exit_within(EXIT_TIMEOUT).await
    }

    /// [`Sluice::wait_exit`] with an explicit timeout; panics if it runs out.
    pub async fn wait_exit_within(&mut self, timeout: Duration) -> ExitStatus {
        let status = match tokio::time::timeout(timeout, self.child.wait()).await {
            Ok(status) => status.expect("wait for sluice"),
            Err(_) => panic!("sluice still running after {timeout:?}\n{}", self.logs()),
        };
        for reader in &mut self.readers {
            let _ = tokio::time::timeout(Duration::from_secs(5), reader).await;
        }
        status
    }

    /// The exit status, if the process has already exited.
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().expect("poll sluice status")
    }

    /// Every stderr line so far (the JSON log).
    pub fn stderr_lines(&self) -> Vec<String> {
        self.stderr.snapshot()
    }

    /// Whether any stderr line so far contains `needle`.
    pub fn stderr_contains(&self, needle: &str) -> bool {
        self.stderr.snapshot().iter().any(|l| l.contains(needle))
    }

    /// The stderr lines that are JSON objects, parsed.
    pub fn log_events(&self) -> Vec<Json> {
        json_objects(&self.stderr.snapshot())
    }

    /// Waits (at most [`DEFAULT_WAIT`]) for a stderr line matching `matches` and returns it;
    /// panics, showing the logs, if none appears.
    pub async fn wait_for_stderr(&self, matches: impl Fn(&str) -> bool) -> String {
        self.wait_for_stderr_within(DEFAULT_WAIT, matches)
            .await
            .unwrap_or_else(|| {
                panic!(
                    "no matching stderr line within {DEFAULT_WAIT:?}\n{}",
                    self.logs()
                )
            })
    }

    /// Waits for a stderr line matching `matches`; `None` on timeout or end of output.
    pub async fn wait_for_stderr_within(
        &self,
        timeout: Duration,
        matches: impl Fn(&str) -> bool,
    ) -> Option<String> {
        self.stderr.wait_for_line(timeout, matches).await
    }

    /// Waits until `done(stderr lines so far)` holds (re-checked on each new line);
    /// whether it did within `timeout`.
    pub(crate) async fn wait_for_stderr_lines(
        &self,
        timeout: Duration,
        done: impl FnMut(&[String]) -> bool,
    ) -> bool {
        self.stderr.wait_until(timeout, done).await
    }

    /// Every stdout line so far.
    pub fn stdout_lines(&self) -> Vec<String> {
        self.stdout.snapshot()
    }

    /// The access log so far: stdout's JSON lines of target `access`, parsed (stdout
    /// also carries forward listeners' `audit` lines).
    pub fn access_log(&self) -> Vec<Json> {
        access_entries(&self.stdout.snapshot())
    }

    /// Waits (at most [`DEFAULT_WAIT`]) until the access log has at least `n` entries and
    /// returns them all; panics, showing the logs, otherwise.
    pub async fn wait_for_access_log(&self, n: usize) -> Vec<Json> {
        let enough = self
            .stdout
            .wait_until(DEFAULT_WAIT, |lines| access_entries(lines).len() >= n)
            .await;
        assert!(
            enough,
            "fewer than {n} access log entries within {DEFAULT_WAIT:?}\n{}",
            self.logs()
        );
        self.access_log()
    }

    /// Peak resident memory of the process so far, in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        peak_rss_kib(self.pid)
    }

    /// The recent output of both streams, for failure messages.
    pub fn logs(&self) -> String {
        format!(
            "--- sluice stderr ---\n{}--- sluice stdout ---\n{}",
            tail(&self.stderr.snapshot(), 200),
            tail(&self.stdout.snapshot(), 50)
        )
    }
}

impl Drop for Sluice {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
    }
}

impl Expected {
    fn from_yaml(yaml: &str) -> Self {
        let doc: Yaml = serde_yaml_ng::from_str(yaml).unwrap_or(Yaml::Null);
        let listeners = doc
            .get("listeners")
            .and_then(Yaml::as_sequence)
            .map(|seq| {
                seq.iter()
                    .filter_map(|l| l.get("name")?.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        let admin = doc.get("admin").is_some_and(|a| !a.is_null());
        Self {
            listeners,
            admin,
            ..Self::default()
        }
    }

    /// Records a `listening` / `admin listening` log line, and `sluice started`:
    /// logged once everything is set up (the config file watch included), so a
    /// test that changes the file right after start cannot beat the watch.
    fn note(&mut self, line: &str) {
        if line.contains("\"sluice started\"") {
            self.started = true;
        }
        match listening(line) {
            Some(Listening::Listener { name, addr }) => {
                self.bound.insert(name, addr);
            }
            Some(Listening::Admin { addr }) => self.admin_bound = Some(addr),
            None => {}
        }
    }

    fn complete(&self) -> bool {
        self.started
            && self.listeners.iter().all(|l| self.bound.contains_key(l))
            && (!self.admin || self.admin_bound.is_some())
    }
}

/// What a `listening` (`listener`, `addr`) or `admin listening` (`addr`) JSON log line
/// reports: at start, and for a listener a reload added.
pub(crate) enum Listening {
    Listener { name: String, addr: String },
    Admin { addr: String },
}

/// Parses a stderr line as a `listening` / `admin listening` event.
pub(crate) fn listening(line: &str) -> Option<Listening> {
    let event = serde_json::from_str::<Json>(line).ok()?;
    let fields = &event["fields"];
    let addr = fields["addr"].as_str()?.to_owned();
    match fields["message"].as_str()? {
        "listening" => Some(Listening::Listener {
            name: fields["listener"].as_str()?.to_owned(),
            addr,
        }),
        "admin listening" => Some(Listening::Admin { addr }),
        _ => None,
    }
}

/// The value of `series` (written as on `/metrics`, labels included) in a metrics text.
pub(crate) fn metric_value(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        line.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

fn log_format_is_json(yaml: &str) -> bool {
    let doc: Yaml = serde_yaml_ng::from_str(yaml).unwrap_or(Yaml::Null);
    doc.get("log")
        .and_then(|l| l.get("format"))
        .and_then(Yaml::as_str)
        == Some("json")
}

fn json_objects(lines: &[String]) -> Vec<Json> {
    lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Json>(l).ok())
        .filter(Json::is_object)
        .collect()
}

fn access_entries(lines: &[String]) -> Vec<Json> {
    lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Json>(l).ok())
        .filter(|o| o["target"] == "access")
        .collect()
}

/// Peak resident set size (`VmHWM`) of a process, in KiB.
pub fn peak_rss_kib(pid: u32) -> u64 {
    proc_status_kib(pid, "VmHWM:")
}

/// Current resident set size (`VmRSS`) of a process, in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    proc_status_kib(pid, "VmRSS:")
}

fn proc_status_kib(pid: u32, key: &str) -> u64 {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    status
        .lines()
        .find_map(|line| line.strip_prefix(key))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {key} in {path}"))
}
