//! A real Kubernetes API server (kube-apiserver v1.37 with etcd, built from their Go
//! modules by scripts/k8s-testbin.sh) on free loopback ports, RBAC on, started by
//! scripts/k8s-apiserver-smoke.sh in its serve mode. Not a mock.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The first start may build the binaries (about 10 minutes on 2 cores); after that
/// the API server is ready in a few seconds.
const START_DEADLINE: Duration = Duration::from_secs(900);

pub struct KubeApi {
    child: Child,
    dir: tempfile::TempDir,
    /// `https://127.0.0.1:<port>`.
    pub url: String,
}

impl KubeApi {
    pub fn start() -> KubeApi {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
        let dir = tempfile::tempdir().expect("tempdir");
        let mut child = Command::new("bash")
            .arg(root.join("scripts/k8s-apiserver-smoke.sh"))
            .env("SERVE_KUBECONFIG", dir.path().join("kubeconfig"))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start scripts/k8s-apiserver-smoke.sh");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("ready ") {
                    let _ = tx.send(url.to_string());
                }
            }
        });
        let url = match rx.recv_timeout(START_DEADLINE) {
            Ok(url) => url,
            Err(_) => {
                let _ = child.kill();
                panic!("the API server was not ready within {START_DEADLINE:?}");
            }
        };
        KubeApi { child, dir, url }
    }

    /// An admin (system:masters) kubeconfig.
    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("kubeconfig")
    }

    /// A kube-rs client as the admin.
    pub async fn client(&self) -> kube::Client {
        let kc = kube::config::Kubeconfig::read_from(self.kubeconfig()).expect("kubeconfig");
        let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .expect("kube config");
        kube::Client::try_from(config).expect("kube client")
    }
}

impl Drop for KubeApi {
    fn drop(&mut self) {
        // SIGTERM, so the script's trap stops the API server and etcd it started.
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        // Drop is synchronous: 400 polls of 50 ms bound the wait to 20 s.
        for _ in 0..400 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
    }
}
