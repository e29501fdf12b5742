//! The live dashboard in a real browser: headless Chromium driven over WebDriver
//! (chromedriver, on a port it picks itself). The page loads with no console error,
//! shows the backend once traffic flows, and its numbers move when traffic does; the
//! test saves a screenshot (`$CARGO_TARGET_TMPDIR/dashboard.png`).

use base64::Engine;
use sluice_testkit::serde_json::{self, json, Value};
use sluice_testkit::{app_config, get, Origin, Sluice};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

const SLUICE: &str = env!("CARGO_BIN_EXE_sluice");
const DEADLINE: Duration = Duration::from_secs(20);

/// chromedriver and one browser session, both ended on drop.
struct Browser {
    driver: tokio::process::Child,
    addr: SocketAddr,
    session: String,
    _profile: sluice_testkit::tempfile::TempDir,
}

impl Browser {
    async fn start() -> Self {
        let mut driver = tokio::process::Command::new("chromedriver")
            .arg("--port=0")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver (scripts/test-deps.sh installs chromium-driver)");
        let mut lines = tokio::io::BufReader::new(driver.stdout.take().unwrap()).lines();
        let port = tokio::time::timeout(DEADLINE, async {
            while let Some(l) = lines.next_line().await.unwrap() {
                if let Some(p) = l.strip_prefix("ChromeDriver was started successfully on port ") {
                    return p.trim_end_matches('.').parse::<u16>().unwrap();
                }
            }
            panic!("chromedriver ended without saying its port");
        })
        .await
        .expect("chromedriver starts");
        // Keep reading, so the pipe never fills.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let profile = sluice_testkit::tempfile::tempdir().unwrap();
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--no-first-run",
            "--window-size=1400,1100",
            &format!("--user-data-dir={}", profile.path().display()),
        ];
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": "/usr/bin/chromium", "args": args},
            "goog:loggingPrefs": {"browser": "ALL"}}}});
        let r = call(addr, "POST", "/session", Some(caps)).await;
        let session = r["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {r}"))
            .to_string();
        Self {
            driver,
            addr,
            session,
            _profile: profile,
        }
    }

    async fn cmd(&self, method: &str, what: &str, body: Option<Value>) -> Value {
        let path = format!("/session/{}/{what}", self.session);
        call(self.addr, method, &path, body).await["value"].clone()
    }

    async fn eval(&self, script: &str) -> Value {
        self.cmd(
            "POST",
            "execute/sync",
            Some(json!({"script": script, "args": []})),
        )
        .await
    }

    /// Polls `script` until `ok` holds of its value, or fails at the deadline.
    async fn until(&self, what: &str, script: &str, ok: impl Fn(&Value) -> bool) -> Value {
        let start = Instant::now();
        loop {
            let v = self.eval(script).await;
            if ok(&v) {
                return v;
            }
            assert!(
                start.elapsed() < DEADLINE,
                "{what}: not within {DEADLINE:?}; last {v}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.start_kill();
    }
}

/// One WebDriver request: JSON over HTTP/1.1 on a fresh connection.
async fn call(addr: SocketAddr, method: &str, path: &str, body: Option<Value>) -> Value {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    // chromedriver keeps the connection open: read the head, then Content-Length bytes.
    let exchange = async {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(req.as_bytes()).await.unwrap();
        let mut out = Vec::new();
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = s.read(&mut buf).await.unwrap();
            assert!(
                n > 0,
                "chromedriver closed early: {}",
                String::from_utf8_lossy(&out)
            );
            out.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&out).to_string();
            if let Some((head, rest)) = text.split_once("\r\n\r\n") {
                let len = head
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse::<usize>().ok())?
                    })
                    .unwrap_or(0);
                if rest.len() >= len {
                    return rest[..len].to_string();
                }
            }
        }
    };
    let json = tokio::time::timeout(Duration::from_secs(60), exchange)
        .await
        .expect("chromedriver answers");
    serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}: {json}"))
}

const BACKEND_ROW: &str =
    "const r = document.querySelector('#servers tbody tr[data-backend=\"app\"]'); \
     return r ? Array.from(r.cells).map(c => c.textContent) : null;";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_loads_clean_shows_the_backend_and_moves_with_traffic() {
    let origin = Origin::start().await;
    let sluice = Sluice::start(SLUICE, &app_config(&[origin.server_spec()], "")).await;
    let egress = sluice.listener_addr("egress");
    let browser = Browser::start().await;
    let url = format!("http://{}/", sluice.admin_addr());
    browser.cmd("POST", "url", Some(json!({"url": url}))).await;
    browser
        .until("two samples taken", "return window.__sluiceSamples;", |v| {
            v.as_u64() >= Some(2)
        })
        .await;

    for _ in 0..30 {
        assert_eq!(get(egress, "api.test", "/").await.status, 200);
    }
    // Cells: backend, servers, idle, in use, in flight, h2, h2, opened, reused, ...
    let row = browser
        .until("the backend with its reuse", BACKEND_ROW, |v| {
            v[8].as_str().and_then(|s| s.parse::<u64>().ok()) >= Some(29)
        })
        .await;
    assert_eq!(row[0], "app", "{row}");
    assert_eq!(row[7], "1", "one upstream connection opened: {row}");
    let rates = "return Array.from(window.__sluiceSeries.get('requests/s (all)') || []);";
    browser
        .until("requests/s rose with the traffic", rates, |v| {
            v.as_array()
                .is_some_and(|a| a.iter().any(|x| x.as_f64() > Some(0.0)))
        })
        .await;
    // More traffic: the reuse count follows.
    for _ in 0..20 {
        assert_eq!(get(egress, "api.test", "/").await.status, 200);
    }
    browser
        .until("the numbers follow the traffic", BACKEND_ROW, |v| {
            v[8].as_str().and_then(|s| s.parse::<u64>().ok()) >= Some(49)
        })
        .await;

    let page_errors = browser.eval("return window.__sluiceErrors;").await;
    assert_eq!(page_errors, json!([]), "errors in the page");
    let logs = browser
        .cmd("POST", "se/log", Some(json!({"type": "browser"})))
        .await;
    let severe: Vec<&Value> = logs
        .as_array()
        .map(|l| l.iter().filter(|e| e["level"] == "SEVERE").collect())
        .unwrap_or_default();
    assert!(severe.is_empty(), "console errors: {severe:?}");

    let png = browser.cmd("GET", "screenshot", None).await;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(png.as_str().unwrap())
        .unwrap();
    assert!(bytes.starts_with(b"\x89PNG"), "a PNG");
    let file = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png");
    std::fs::write(&file, bytes).unwrap();
    println!("screenshot: {}", file.display());
    browser.cmd("DELETE", "", None).await;
}
