//! sluice as the Helm chart runs it: the ServiceAccount, Roles and bindings of
//! `deploy/manifests/gateway.yaml` (rendered from the chart; `scripts/helm-check.sh`
//! keeps it current) applied to the test API server, and a kubeconfig holding a
//! token of that ServiceAccount. A test using it proves the chart's RBAC grants
//! everything sluice does: a forbidden call shows as a 403 in sluice's log.

use crate::KubeApi;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use kube::api::{Api, PostParams};
use kube::config::Kubeconfig;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde::Serialize;
use serde_json::Value;
use std::fmt::Debug;
use std::path::PathBuf;

/// The namespace and ServiceAccount the rendered manifests use.
const NAMESPACE: &str = "sluice-system";
const ACCOUNT: &str = "sluice";

async fn create<K>(api: Api<K>, doc: Value)
where
    K: Clone + DeserializeOwned + Serialize + Debug,
{
    let obj: K = serde_json::from_value(doc).expect("a manifest of the kind it names");
    match api.create(&PostParams::default(), &obj).await {
        Ok(_) => {}
        // Several tests may share one API server's namespace objects.
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        Err(e) => panic!("applying the chart's RBAC: {e}"),
    }
}

impl KubeApi {
    /// Applies the chart's RBAC and returns a kubeconfig for its ServiceAccount.
    pub async fn chart_kubeconfig(&self) -> PathBuf {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
        let text = std::fs::read_to_string(root.join("deploy/manifests/gateway.yaml"))
            .expect("deploy/manifests/gateway.yaml");
        let client = self.client().await;
        create(
            Api::<Namespace>::all(client.clone()),
            serde_json::json!({"metadata": {"name": NAMESPACE}}),
        )
        .await;
        for doc in serde_yaml_ng::Deserializer::from_str(&text) {
            let doc = Value::deserialize(doc).expect("a YAML document");
            let ns = doc["metadata"]["namespace"]
                .as_str()
                .unwrap_or(NAMESPACE)
                .to_string();
            let c = client.clone();
            match doc["kind"].as_str().unwrap_or("") {
                "ServiceAccount" => create(Api::<ServiceAccount>::namespaced(c, &ns), doc).await,
                "ClusterRole" => create(Api::<ClusterRole>::all(c), doc).await,
                "ClusterRoleBinding" => create(Api::<ClusterRoleBinding>::all(c), doc).await,
                "Role" => create(Api::<Role>::namespaced(c, &ns), doc).await,
                "RoleBinding" => create(Api::<RoleBinding>::namespaced(c, &ns), doc).await,
                _ => {}
            }
        }
        let token = Api::<ServiceAccount>::namespaced(client, NAMESPACE)
            .create_token_request(
                ACCOUNT,
                &PostParams::default(),
                &TokenRequest {
                    spec: Some(TokenRequestSpec {
                        expiration_seconds: Some(3600),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
            )
            .await
            .expect("a token for the chart's ServiceAccount")
            .status
            .expect("TokenRequest status")
            .token
            .expect("a token in the TokenRequest status");
        let mut kc = Kubeconfig::read_from(self.kubeconfig()).expect("admin kubeconfig");
        for user in &mut kc.auth_infos {
            if let Some(auth) = user.auth_info.as_mut() {
                *auth = Default::default();
                auth.token = Some(token.clone().into());
            }
        }
        let path = self.kubeconfig().with_file_name("sluice-sa.kubeconfig");
        // JSON is YAML: no serializer beyond serde_json needed.
        std::fs::write(&path, serde_json::to_vec(&kc).expect("kubeconfig JSON"))
            .expect("write the ServiceAccount kubeconfig");
        path
    }
}

impl KubeApi {
    /// Installs the Gateway API standard CRDs (from the `sigs.k8s.io/gateway-api`
    /// module, copied by scripts/k8s-testbin.sh) and waits until they are served.
    pub async fn install_gateway_crds(&self) {
        use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
        let out = std::process::Command::new("bash")
            .arg(root.join("scripts/k8s-testbin.sh"))
            .output()
            .expect("run scripts/k8s-testbin.sh");
        let dir = String::from_utf8_lossy(&out.stdout)
            .lines()
            .last()
            .unwrap_or_default()
            .to_string();
        let crds: Api<CustomResourceDefinition> = Api::all(self.client().await);
        let mut names = Vec::new();
        for entry in
            std::fs::read_dir(PathBuf::from(dir).join("gateway-crds")).expect("gateway-crds")
        {
            let text = std::fs::read_to_string(entry.expect("dir entry").path()).expect("CRD file");
            for doc in serde_yaml_ng::Deserializer::from_str(&text) {
                let doc = Value::deserialize(doc).expect("a YAML document");
                if doc["kind"] == "CustomResourceDefinition" {
                    names.push(doc["metadata"]["name"].as_str().unwrap_or("").to_string());
                    create(crds.clone(), doc).await;
                }
            }
        }
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
        for name in names {
            loop {
                let established = crds
                    .get(&name)
                    .await
                    .ok()
                    .and_then(|c| c.status)
                    .is_some_and(|s| {
                        s.conditions
                            .unwrap_or_default()
                            .iter()
                            .any(|c| c.type_ == "Established" && c.status == "True")
                    });
                if established {
                    break;
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "CRD {name} not established within 30 s"
                );
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}
