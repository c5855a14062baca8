//! A real Kubernetes control plane for jobify's real-cluster tests: etcd, kube-apiserver and
//! kube-controller-manager (Job, TTL-after-finished, garbage-collector and namespace
//! controllers) built from the Go module proxy by `tools/k8s/build-testbins.sh`, plus a
//! simulated kubelet ([`kubelet`]) that binds pods to one fake Node and drives their status.
//!
//! ```text
//!  test ──kube::Client──▶ kube-apiserver ◀── kube-controller-manager (Jobs, TTL, GC, namespaces)
//!                              │   ▲
//!                            etcd  └──── simulated kubelet (binds pods, writes pod status)
//! ```
//!
//! One control plane per test binary: [`TestCluster::shared`] starts it on first use and
//! every test shares it, each in its own namespace ([`TestCluster::create_namespace`]).
//! [`TestCluster::start`] gives a test a control plane of its own, torn down on drop.
//!
//! The binaries are found through `JOBIFY_TESTBINS` (the directory the build script prints);
//! when it is unset the harness panics with the command that builds them: the real-cluster
//! tier never skips silently.
#![warn(missing_docs)]

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Namespace, Node, ServiceAccount};
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use tokio::time::Instant;

mod bins;
mod error;
pub mod kubelet;
mod pki;
mod process;

pub use bins::{BUILD_COMMAND, Binaries, HOW_TO_BUILD, TESTBINS_ENV};
pub use error::Error;
pub use kubelet::Scripts;
pub use kubelet::scenario::{PodScript, Scenario, Timings};

use pki::Pki;
use process::Process;

/// The name of the fake Node the simulated kubelet runs pods on.
pub const NODE_NAME: &str = "jobify-fake-node";

/// The admin user (in `system:masters`).
pub const ADMIN_USER: &str = "jobify-testcluster-admin";

/// How long the harness waits for the API server to be ready and for the canary Job.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(180);

/// A running control plane.
#[derive(Debug)]
pub struct TestCluster {
    dir: PathBuf,
    logs: PathBuf,
    kubeconfig: PathBuf,
    server: String,
    pki: Pki,
    scripts: Scripts,
    /// In start order; stopped in reverse.
    processes: Mutex<Vec<Process>>,
    kubelet: tokio::task::AbortHandle,
    /// Whether drop removes `dir`.
    owned: bool,
    /// etcd's client URL, `http://127.0.0.1:<port>`.
    etcd: String,
}

/// How a control plane of a test's own is started ([`TestCluster::start_with_options`]).
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// More kube-apiserver flags, after the harness's own (a flag given twice: the later
    /// wins), e.g. `--watch-cache=false`.
    pub apiserver_args: Vec<String>,
}

static SHARED: OnceLock<Result<TestCluster, String>> = OnceLock::new();

impl TestCluster {
    /// The control plane this test binary shares, started on first use (on a thread of its
    /// own, which lives as long as the test binary; its processes die with it).
    ///
    /// # Panics
    ///
    /// When `JOBIFY_TESTBINS` is unset or lacks a binary (with the command that builds
    /// them), or when the control plane does not start (with where its logs are).
    pub fn shared() -> &'static TestCluster {
        let started = SHARED.get_or_init(|| {
            let bins = Binaries::from_env();
            let (tx, rx) = std::sync::mpsc::channel();
            let thread = std::thread::Builder::new()
                .name("jobify-testcluster".to_owned())
                .spawn(move || {
                    let runtime = match tokio::runtime::Builder::new_multi_thread()
                        .worker_threads(2)
                        .thread_name("jobify-testcluster-rt")
                        .enable_all()
                        .build()
                    {
                        Ok(r) => r,
                        Err(e) => {
                            let _ = tx.send(Err(format!("starting a tokio runtime: {e}")));
                            return;
                        }
                    };
                    runtime.block_on(async move {
                        let started = TestCluster::start_with(&bins, false).await;
                        let _ = tx.send(started.map_err(|e| e.to_string()));
                        // Serve the kubelet, and keep this thread (the parent of the
                        // processes, for their death signal) alive, until the binary exits.
                        futures::future::pending::<()>().await;
                    });
                });
            match thread {
                Ok(_) => rx
                    .recv()
                    .unwrap_or_else(|_| Err("the control-plane thread died".to_owned())),
                Err(e) => Err(format!("spawning the control-plane thread: {e}")),
            }
        });
        match started {
            Ok(cluster) => {
                // Captured per test: shown with a failing test's output.
                eprintln!(
                    "jobify-testcluster: control plane at {}, kubeconfig {}, logs in {}",
                    cluster.server,
                    cluster.kubeconfig.display(),
                    cluster.logs.display()
                );
                cluster
            }
            Err(e) => panic!("the shared test control plane did not start: {e}"),
        }
    }

    /// Starts a control plane of this test's own from the binaries `JOBIFY_TESTBINS` names;
    /// it is stopped, and its directory removed, on drop.
    ///
    /// # Panics
    ///
    /// When `JOBIFY_TESTBINS` is unset or lacks a binary.
    pub async fn start() -> Result<TestCluster, Error> {
        TestCluster::start_with(&Binaries::from_env(), true).await
    }

    /// Like [`TestCluster::start`], with `options` (API server flags of the test's own).
    ///
    /// # Panics
    ///
    /// When `JOBIFY_TESTBINS` is unset or lacks a binary.
    pub async fn start_with_options(options: &Options) -> Result<TestCluster, Error> {
        TestCluster::start_inner(&Binaries::from_env(), true, options).await
    }

    /// Starts a control plane from `bins`; `owned`: removed on drop.
    pub async fn start_with(bins: &Binaries, owned: bool) -> Result<TestCluster, Error> {
        TestCluster::start_inner(bins, owned, &Options::default()).await
    }

    async fn start_inner(
        bins: &Binaries,
        owned: bool,
        options: &Options,
    ) -> Result<TestCluster, Error> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let base = std::env::temp_dir().join("jobify-testcluster");
        remove_stale_runs(&base);
        let dir = base.join(format!(
            "run-{}-{}",
            std::process::id(),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        ));
        let logs = dir.join("logs");
        std::fs::create_dir_all(&logs)
            .map_err(Error::io(format!("creating {}", logs.display())))?;
        let pki = Pki::generate(&dir.join("pki"))?;
        let [etcd_client, etcd_peer, apiserver_port] = free_ports()?;
        let server = format!("https://127.0.0.1:{apiserver_port}");
        let mut processes = Vec::new();

        let etcd_url = format!("http://127.0.0.1:{etcd_client}");
        let peer_url = format!("http://127.0.0.1:{etcd_peer}");
        let etcd_args = vec![
            "--name=jobify".to_owned(),
            format!("--data-dir={}", dir.join("etcd").display()),
            format!("--listen-client-urls={etcd_url}"),
            format!("--advertise-client-urls={etcd_url}"),
            format!("--listen-peer-urls={peer_url}"),
            format!("--initial-advertise-peer-urls={peer_url}"),
            format!("--initial-cluster=jobify={peer_url}"),
            "--unsafe-no-fsync=true".to_owned(),
            "--log-level=warn".to_owned(),
        ];
        processes.push(Process::spawn("etcd", &bins.etcd, &etcd_args, &logs)?);

        let p = |path: &Path| path.display().to_string();
        let mut apiserver_args = vec![
            format!("--etcd-servers={etcd_url}"),
            "--bind-address=127.0.0.1".to_owned(),
            "--advertise-address=127.0.0.1".to_owned(),
            format!("--secure-port={apiserver_port}"),
            format!("--cert-dir={}", p(&dir.join("apiserver-certs"))),
            format!("--tls-cert-file={}", p(&pki.serving_cert)),
            format!("--tls-private-key-file={}", p(&pki.serving_key)),
            format!("--client-ca-file={}", p(&pki.ca_cert)),
            "--authorization-mode=Node,RBAC".to_owned(),
            format!("--service-account-issuer={server}"),
            format!("--service-account-key-file={}", p(&pki.sa_pub)),
            format!("--service-account-signing-key-file={}", p(&pki.sa_key)),
            "--service-cluster-ip-range=10.0.0.0/24".to_owned(),
            // No ServiceAccount controller runs, so no `default` ServiceAccount exists.
            "--disable-admission-plugins=ServiceAccount".to_owned(),
            "--endpoint-reconciler-type=none".to_owned(),
            "--allow-privileged=true".to_owned(),
            "--profiling=false".to_owned(),
            "--v=1".to_owned(),
        ];
        apiserver_args.extend(options.apiserver_args.iter().cloned());
        processes.push(Process::spawn(
            "kube-apiserver",
            &bins.kube_apiserver,
            &apiserver_args,
            &logs,
        )?);

        let (admin_cert, admin_key) = pki.client(ADMIN_USER, &["system:masters"])?;
        let kubeconfig = dir.join("admin.kubeconfig");
        write_kubeconfig(
            &kubeconfig,
            &server,
            &pki.ca_cert,
            ADMIN_USER,
            &Credentials::Certificate(admin_cert, admin_key),
        )?;
        let client = client_from(&kubeconfig).await?;
        let started = Instant::now();
        wait_until(
            &mut processes,
            &logs,
            "the API server to be ready",
            started,
            || {
                let client = client.clone();
                async move {
                    let request = http::Request::get("/readyz").body(Vec::new());
                    match request {
                        Ok(r) => client.request_text(r).await.is_ok(),
                        Err(_) => false,
                    }
                }
            },
        )
        .await?;

        let kcm_args = vec![
            format!("--kubeconfig={}", p(&kubeconfig)),
            "--controllers=job-controller,ttl-after-finished-controller,\
             garbage-collector-controller,namespace-controller"
                .to_owned(),
            "--leader-elect=false".to_owned(),
            // The defaults (20 requests a second, 5 Jobs synced at once) would make the Job
            // controller, not jobify, the bottleneck of the thousand-job tests; production
            // clusters of that size raise them too.
            "--kube-api-qps=200".to_owned(),
            "--kube-api-burst=400".to_owned(),
            "--concurrent-job-syncs=20".to_owned(),
            "--secure-port=0".to_owned(),
            "--v=1".to_owned(),
        ];
        processes.push(Process::spawn(
            "kube-controller-manager",
            &bins.kube_controller_manager,
            &kcm_args,
            &logs,
        )?);

        let node_labels: BTreeMap<String, String> = [
            ("kubernetes.io/hostname", NODE_NAME),
            ("kubernetes.io/os", "linux"),
            ("kubernetes.io/arch", "amd64"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        create_node(&client, &node_labels).await?;
        let scripts = Scripts::default();
        let kubelet = kubelet::Kubelet {
            client: client.clone(),
            node: NODE_NAME.to_owned(),
            node_labels,
            scripts: scripts.clone(),
            timings: Timings::default(),
        };
        let kubelet = tokio::spawn(kubelet.run()).abort_handle();

        let cluster = TestCluster {
            dir,
            logs,
            kubeconfig,
            server,
            pki,
            scripts,
            processes: Mutex::new(processes),
            kubelet,
            owned,
            etcd: etcd_url,
        };
        cluster.canary(&client).await?;
        Ok(cluster)
    }

    /// Runs a one-pod Job to completion: proves the API server, the Job controller and the
    /// kubelet work together.
    async fn canary(&self, client: &Client) -> Result<(), Error> {
        let namespace = "jobify-testcluster-canary";
        create_namespace_named(client, namespace).await?;
        let jobs: Api<Job> = Api::namespaced(client.clone(), namespace);
        let job: Job = serde_json::from_value(json!({
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": "canary"},
            "spec": {"backoffLimit": 0, "template": {"spec": {
                "restartPolicy": "Never",
                "containers": [{"name": "main", "image": "busybox:1.36"}],
            }}},
        }))
        .map_err(|e| Error::Io {
            what: "building the canary Job".to_owned(),
            source: std::io::Error::other(e),
        })?;
        jobs.create(&PostParams::default(), &job)
            .await
            .map_err(Error::kube("creating the canary Job"))?;
        let mut processes = std::mem::take(&mut *self.lock_processes());
        let waited = wait_until(
            &mut processes,
            &self.logs,
            "the canary Job to complete",
            Instant::now(),
            || {
                let jobs = jobs.clone();
                async move {
                    jobs.get("canary").await.is_ok_and(|j| {
                        j.status
                            .and_then(|s| s.conditions)
                            .unwrap_or_default()
                            .iter()
                            .any(|c| c.type_ == "Complete" && c.status == "True")
                    })
                }
            },
        )
        .await;
        *self.lock_processes() = processes;
        waited
    }

    fn lock_processes(&self) -> std::sync::MutexGuard<'_, Vec<Process>> {
        self.processes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// An error naming the process if one of the control plane's processes has exited.
    pub fn check(&self) -> Result<(), Error> {
        self.lock_processes()
            .iter_mut()
            .try_for_each(Process::check)
    }

    /// The process ids of etcd, kube-apiserver and kube-controller-manager, in that order.
    pub fn pids(&self) -> Vec<u32> {
        self.lock_processes().iter().map(Process::id).collect()
    }

    /// A client as the admin (`system:masters`).
    pub async fn client(&self) -> Result<Client, Error> {
        client_from(&self.kubeconfig).await
    }

    /// The admin's kubeconfig (for `kubectl` and processes under test).
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// The API server's URL, `https://127.0.0.1:<port>`.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// The directory holding each process's log (`etcd.log`, `kube-apiserver.log`,
    /// `kube-controller-manager.log`).
    pub fn logs(&self) -> &Path {
        &self.logs
    }

    /// etcd's client URL (`http://127.0.0.1:<port>`, no TLS).
    pub fn etcd_url(&self) -> &str {
        &self.etcd
    }

    /// Compacts etcd's history up to its current revision (etcd's maintenance API, through
    /// its JSON gateway) and answers that revision: afterwards a watch from an older
    /// resourceVersion that the API server serves from etcd (`--watch-cache=false`) gets
    /// 410 Gone. Compacting the shared control plane disturbs other tests' watches: use it
    /// on a control plane of the test's own.
    pub async fn compact_etcd(&self) -> Result<i64, Error> {
        let http = reqwest::Client::new();
        let call = |path: &'static str, body: serde_json::Value| {
            let http = http.clone();
            let url = format!("{}{path}", self.etcd);
            async move {
                let answer = http
                    .post(&url)
                    .json(&body)
                    .send()
                    .await
                    .and_then(reqwest::Response::error_for_status)
                    .map_err(|e| Error::Io {
                        what: format!("POST {url}"),
                        source: std::io::Error::other(e),
                    })?;
                answer
                    .json::<serde_json::Value>()
                    .await
                    .map_err(|e| Error::Io {
                        what: format!("reading the answer to POST {url}"),
                        source: std::io::Error::other(e),
                    })
            }
        };
        // Any range read carries the store's current revision in its header (int64 fields
        // are JSON strings in the gateway's encoding).
        let range = call("/v3/kv/range", json!({"key": "AA==", "limit": 1})).await?;
        let revision = range["header"]["revision"]
            .as_str()
            .and_then(|r| r.parse::<i64>().ok())
            .ok_or_else(|| Error::Io {
                what: format!("etcd's revision in {range}"),
                source: std::io::Error::other("missing"),
            })?;
        call(
            "/v3/kv/compaction",
            json!({"revision": revision.to_string(), "physical": true}),
        )
        .await?;
        Ok(revision)
    }

    /// The CA certificate that signed the API server's serving certificate.
    pub fn ca_cert(&self) -> &Path {
        &self.pki.ca_cert
    }

    /// The scripts by Job: `cluster.scripts().set_for_job(ns, job, script)`.
    pub fn scripts(&self) -> &Scripts {
        &self.scripts
    }

    /// Creates a namespace named after `hint` and made unique (`<hint>-<8 hex>`); its name.
    pub async fn create_namespace(&self, hint: &str) -> Result<String, Error> {
        let mut prefix: String = hint
            .to_ascii_lowercase()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        prefix.truncate(50);
        let prefix = prefix.trim_matches('-');
        let suffix = &uuid::Uuid::new_v4().simple().to_string()[..8];
        let name = if prefix.is_empty() {
            format!("t-{suffix}")
        } else {
            format!("{prefix}-{suffix}")
        };
        create_namespace_named(&self.client().await?, &name).await?;
        Ok(name)
    }

    /// A kubeconfig for `user` in `groups`, authenticated by a client certificate (no
    /// permissions beyond those RBAC grants the user or groups).
    pub async fn user_kubeconfig(&self, user: &str, groups: &[&str]) -> Result<PathBuf, Error> {
        let (cert, key) = self.pki.client(user, groups)?;
        let path = self.kubeconfig_path(&format!("user-{user}"));
        write_kubeconfig(
            &path,
            &self.server,
            &self.pki.ca_cert,
            user,
            &Credentials::Certificate(cert, key),
        )?;
        Ok(path)
    }

    /// A client for `user` in `groups` (see [`TestCluster::user_kubeconfig`]).
    pub async fn user_client(&self, user: &str, groups: &[&str]) -> Result<Client, Error> {
        client_from(&self.user_kubeconfig(user, groups).await?).await
    }

    /// A kubeconfig for ServiceAccount `name` in `namespace` (created if missing), with a
    /// token from the TokenRequest API valid for an hour: the identity jobify has in a
    /// cluster, bound to nothing until the test binds it.
    pub async fn service_account_kubeconfig(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<PathBuf, Error> {
        let client = self.client().await?;
        let accounts: Api<ServiceAccount> = Api::namespaced(client, namespace);
        let account = ServiceAccount {
            metadata: kube::api::ObjectMeta {
                name: Some(name.to_owned()),
                ..Default::default()
            },
            ..Default::default()
        };
        match accounts.create(&PostParams::default(), &account).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(e) => return Err(Error::kube(format!("creating ServiceAccount {name}"))(e)),
        }
        let request = json!({
            "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
            "spec": {"expirationSeconds": 3600},
        });
        let answer: serde_json::Value = accounts
            .create_subresource("token", name, &PostParams::default(), &request)
            .await
            .map_err(Error::kube(format!(
                "requesting a token for {namespace}/{name}"
            )))?;
        let token = answer["status"]["token"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let path = self.kubeconfig_path(&format!("sa-{namespace}-{name}"));
        write_kubeconfig(
            &path,
            &self.server,
            &self.pki.ca_cert,
            &format!("system:serviceaccount:{namespace}:{name}"),
            &Credentials::Token(token),
        )?;
        Ok(path)
    }

    /// A client for ServiceAccount `name` in `namespace` (see
    /// [`TestCluster::service_account_kubeconfig`]).
    pub async fn service_account_client(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Client, Error> {
        client_from(&self.service_account_kubeconfig(namespace, name).await?).await
    }

    fn kubeconfig_path(&self, stem: &str) -> PathBuf {
        let stem: String = stem
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        self.dir.join(format!("{stem}.kubeconfig"))
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        self.kubelet.abort();
        let mut processes = std::mem::take(&mut *self.lock_processes());
        while let Some(p) = processes.pop() {
            drop(p);
        }
        if self.owned && std::env::var_os("JOBIFY_TESTCLUSTER_KEEP").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Removes the run directories of test binaries that no longer run.
fn remove_stale_runs(base: &Path) {
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("run-"))
            .and_then(|n| n.split('-').next())
        else {
            continue;
        };
        if !Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Three free loopback ports (bound at once, so distinct, then released).
fn free_ports() -> Result<[u16; 3], Error> {
    let bind = || TcpListener::bind("127.0.0.1:0").map_err(Error::io("binding a loopback port"));
    let listeners = [bind()?, bind()?, bind()?];
    let mut ports = [0; 3];
    for (port, l) in ports.iter_mut().zip(&listeners) {
        *port = l.local_addr().map_err(Error::io("reading a port"))?.port();
    }
    Ok(ports)
}

/// How a kubeconfig's user authenticates.
enum Credentials {
    /// Client certificate and key files.
    Certificate(PathBuf, PathBuf),
    /// A bearer token.
    Token(String),
}

fn write_kubeconfig(
    path: &Path,
    server: &str,
    ca: &Path,
    user: &str,
    credentials: &Credentials,
) -> Result<(), Error> {
    let user_entry = match credentials {
        Credentials::Certificate(cert, key) => json!({
            "client-certificate": cert.display().to_string(),
            "client-key": key.display().to_string(),
        }),
        Credentials::Token(token) => json!({"token": token}),
    };
    // JSON is YAML: kubectl and kube-rs read it as a kubeconfig.
    let config = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "jobify-testcluster", "cluster": {
            "server": server,
            "certificate-authority": ca.display().to_string(),
        }}],
        "users": [{"name": user, "user": user_entry}],
        "contexts": [{"name": user, "context": {"cluster": "jobify-testcluster", "user": user}}],
        "current-context": user,
    });
    let text = serde_json::to_string_pretty(&config).map_err(|e| Error::Io {
        what: "serializing a kubeconfig".to_owned(),
        source: std::io::Error::other(e),
    })?;
    std::fs::write(path, text).map_err(Error::io(format!("writing {}", path.display())))
}

/// A client from the kubeconfig at `path`.
pub async fn client_from(path: &Path) -> Result<Client, Error> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let kubeconfig =
        kube::config::Kubeconfig::read_from(path).map_err(|source| Error::Kubeconfig {
            path: path.to_owned(),
            source,
        })?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .map_err(|source| Error::Kubeconfig {
            path: path.to_owned(),
            source,
        })?;
    Client::try_from(config).map_err(Error::kube(format!("a client from {}", path.display())))
}

async fn create_namespace_named(client: &Client, name: &str) -> Result<(), Error> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let namespace = Namespace {
        metadata: kube::api::ObjectMeta {
            name: Some(name.to_owned()),
            ..Default::default()
        },
        ..Default::default()
    };
    match namespaces.create(&PostParams::default(), &namespace).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
        Err(e) => Err(Error::kube(format!("creating namespace {name}"))(e)),
    }
}

async fn create_node(client: &Client, labels: &BTreeMap<String, String>) -> Result<(), Error> {
    let nodes: Api<Node> = Api::all(client.clone());
    let node = Node {
        metadata: kube::api::ObjectMeta {
            name: Some(NODE_NAME.to_owned()),
            labels: Some(labels.clone()),
            ..Default::default()
        },
        ..Default::default()
    };
    match nodes.create(&PostParams::default(), &node).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        Err(e) => return Err(Error::kube("creating the fake Node")(e)),
    }
    let now = kubelet_now();
    let capacity =
        json!({"cpu": "32", "memory": "128Gi", "pods": "250", "ephemeral-storage": "500Gi"});
    let status = json!({"status": {
        "capacity": capacity,
        "allocatable": capacity,
        "conditions": [{
            "type": "Ready", "status": "True", "reason": "KubeletReady",
            "message": "kubelet is posting ready status",
            "lastHeartbeatTime": now, "lastTransitionTime": now,
        }],
        "addresses": [
            {"type": "InternalIP", "address": "127.0.0.1"},
            {"type": "Hostname", "address": NODE_NAME},
        ],
        "nodeInfo": {
            "architecture": "amd64", "bootID": "jobify", "containerRuntimeVersion": "containerd://2.1.0",
            "kernelVersion": "6.1.0", "kubeProxyVersion": "", "kubeletVersion": "v1.37.2",
            "machineID": "jobify", "operatingSystem": "linux", "osImage": "jobify fake node",
            "systemUUID": "jobify",
        },
    }});
    nodes
        .patch_status(NODE_NAME, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .map_err(Error::kube("marking the fake Node ready"))?;
    Ok(())
}

fn kubelet_now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// Polls `ready` every 250 ms until it holds, failing when a process exits or after
/// [`STARTUP_TIMEOUT`].
async fn wait_until<F, Fut>(
    processes: &mut [Process],
    logs: &Path,
    what: &str,
    started: Instant,
    ready: F,
) -> Result<(), Error>
where
    F: Fn() -> Fut,
    Fut: Future<Output = bool>,
{
    loop {
        for p in processes.iter_mut() {
            p.check()?;
        }
        if ready().await {
            return Ok(());
        }
        if started.elapsed() > STARTUP_TIMEOUT {
            return Err(Error::Timeout {
                what: what.to_owned(),
                seconds: STARTUP_TIMEOUT.as_secs(),
                logs: logs.to_owned(),
            });
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
