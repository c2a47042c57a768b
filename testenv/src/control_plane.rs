//! Starting, using and stopping the control plane.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hyper_util::rt::TokioExecutor;
use tempfile::TempDir;
use tokio::net::TcpStream;

use crate::components::{self, Layout, Ports};
use crate::error::{Error, Result};
use crate::namespace::TestNamespace;
use crate::pki::Pki;
use crate::process::{self, Janitor, Launch, Supervised};
use crate::{binaries, crds, kubeconfig, kwok, policies};

/// The admin user: in `system:masters`, so RBAC allows it everything.
pub const ADMIN_USER: &str = "relman-admin";

/// How long etcd may take to accept connections.
const ETCD_TIMEOUT: Duration = Duration::from_secs(30);
/// How long kube-apiserver may take to report ready.
const APISERVER_TIMEOUT: Duration = Duration::from_secs(60);
/// How often readiness is probed.
const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// How long one readiness probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// A local Kubernetes control plane: etcd, kube-apiserver, kube-controller-manager,
/// kube-scheduler and kwok (with one fake node), run as child processes.
///
/// Every process stops when the value is dropped, and also when the process that started them
/// exits without dropping it (see [`ControlPlane::shared`]). Scratch files (certificates, etcd
/// data, logs) live in a temporary directory that is removed in both cases.
pub struct ControlPlane {
    processes: Vec<Supervised>,
    janitor: Option<Janitor>,
    pki: Pki,
    config: kube::Config,
    ports: Ports,
    layout: Layout,
    bin_dir: PathBuf,
    startup_time: Duration,
    users: AtomicU64,
    /// What [`ControlPlane::start_with`] was asked for beyond the defaults.
    options: Options,
    _scratch: TempDir,
}

/// What a control plane may be started with beyond the defaults.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Where kube-apiserver writes an audit log of every request (JSON lines, at the
    /// `Metadata` level: who did what to which object, when, and the answer).
    pub audit_log: Option<PathBuf>,
    /// More kube-apiserver flags, e.g. `--max-requests-inflight=4` to throttle it.
    pub apiserver_args: Vec<String>,
}

impl ControlPlane {
    /// Starts a control plane: builds (or finds) the binaries, generates certificates, starts
    /// every component, registers the kwok node and waits until it is schedulable, and installs
    /// the CRDs in `<workspace>/crds/`.
    ///
    /// Set `RELMAN_TESTENV_BIN_DIR` to use prebuilt binaries instead of `testenv/build.sh`, and
    /// `RELMAN_TESTENV_CRD_DIR` to install the CRDs of another directory.
    pub async fn start() -> Result<Self> {
        Self::start_with(Options::default()).await
    }

    /// [`ControlPlane::start`] with `options` (an audit log, kube-apiserver flags), which hold
    /// across restarts of the API server too.
    pub async fn start_with(options: Options) -> Result<Self> {
        let began = Instant::now();
        let bin_dir = binaries::locate().await?;
        tracing::info!(elapsed = ?began.elapsed(), bin_dir = %bin_dir.display(), "binaries ready");
        let booted = Instant::now();
        let mut control_plane = Self::prepare(bin_dir).await?;
        control_plane.options = options;
        control_plane.boot().await?;
        control_plane.startup_time = booted.elapsed();
        tracing::info!(
            startup = ?control_plane.startup_time,
            total = ?began.elapsed(),
            server = %control_plane.server_url(),
            "control plane ready"
        );
        Ok(control_plane)
    }

    /// Creates the scratch directory, certificates, kubeconfig and kwok configuration.
    async fn prepare(bin_dir: PathBuf) -> Result<Self> {
        let scratch = tempfile::Builder::new()
            .prefix("relman-testenv-")
            .tempdir()
            .map_err(Error::io("create a scratch directory"))?;
        let layout = Layout::new(scratch.path());
        layout.create_dirs()?;
        let janitor = Janitor::spawn(layout.root())?;
        let ports = Ports::pick()?;
        let pki = Pki::generate()?;
        write_pki(&layout, &pki)?;
        let admin = pki.client_cert(ADMIN_USER, &["system:masters"])?;
        let admin_kubeconfig = kubeconfig::render(
            &ports.apiserver_url(),
            &pki.ca().cert_pem,
            ADMIN_USER,
            &admin,
        );
        crate::fs::write_private(&layout.admin_kubeconfig(), &admin_kubeconfig)?;
        crate::fs::write(&layout.kwok_stages(), kwok::STAGES)?;
        let config = kubeconfig::load(&admin_kubeconfig).await?;
        Ok(Self {
            processes: Vec::new(),
            janitor: Some(janitor),
            pki,
            config,
            ports,
            layout,
            bin_dir,
            startup_time: Duration::ZERO,
            users: AtomicU64::new(0),
            options: Options::default(),
            _scratch: scratch,
        })
    }

    /// Starts the components in dependency order and waits until the cluster can run pods.
    async fn boot(&mut self) -> Result<()> {
        let (bin, layout, ports) = (self.bin_dir.clone(), self.layout.clone(), self.ports);
        let began = Instant::now();
        let etcd = self.launch(components::etcd(&bin, &layout, &ports))?;
        self.wait_etcd(etcd).await?;
        tracing::debug!(elapsed = ?began.elapsed(), "etcd ready");
        let apiserver = self.launch(components::kube_apiserver(
            &bin,
            &layout,
            &ports,
            &self.options,
        ))?;
        self.wait_apiserver(apiserver).await?;
        let client = self.client().await?;
        tracing::debug!(elapsed = ?began.elapsed(), "kube-apiserver ready");
        self.launch(components::kube_controller_manager(&bin, &layout))?;
        self.launch(components::kube_scheduler(&bin, &layout))?;
        self.launch(components::kwok(&bin, &layout, &ports))?;
        kwok::register_node(&client).await?;
        let crd_dir = crds::default_dir();
        let (_, installed) = tokio::try_join!(
            kwok::wait_node_schedulable(&client),
            crds::install(&client, &crd_dir)
        )
        .map_err(|e| self.explain(e))?;
        tracing::debug!(elapsed = ?began.elapsed(), crds = ?installed, "node schedulable, CRDs installed");
        let config_dir = binaries::workspace_root().join("config");
        let policies = policies::install(&client, &config_dir)
            .await
            .map_err(|e| self.explain(e))?;
        policies::wait_for_creator_stamp(&client, &policies)
            .await
            .map_err(|e| self.explain(e))?;
        tracing::debug!(elapsed = ?began.elapsed(), ?policies, "admission policies installed");
        Ok(())
    }

    /// Kills etcd (SIGKILL, as a crash does), waits `downtime`, and starts it again with the
    /// same data directory and ports; returns once it accepts connections and kube-apiserver
    /// reports ready again. Nothing written before the kill is lost: etcd skips fsync, but a
    /// killed process's writes are in the page cache, and only a machine crash loses those.
    ///
    /// Needs `&mut`: use a control plane of your own ([`ControlPlane::start`]), not the shared
    /// one, whose other users would see the outage.
    pub async fn restart_etcd(&mut self, downtime: Duration) -> Result<()> {
        let launch = components::etcd(&self.bin_dir, &self.layout, &self.ports);
        let index = self.restart(launch, downtime).await?;
        self.wait_etcd(index).await?;
        let apiserver = self.index_of("kube-apiserver")?;
        self.wait_apiserver(apiserver).await
    }

    /// Kills kube-apiserver (SIGKILL, as a crash does), waits `downtime`, and starts it again
    /// on the same port with the same certificates and etcd; returns once `/readyz` is `ok`.
    /// Clients keep working with their old configuration; their open watches break and must
    /// be restarted, as with a real API server restart. Needs `&mut`, like
    /// [`ControlPlane::restart_etcd`].
    pub async fn restart_apiserver(&mut self, downtime: Duration) -> Result<()> {
        let launch =
            components::kube_apiserver(&self.bin_dir, &self.layout, &self.ports, &self.options);
        let index = self.restart(launch, downtime).await?;
        self.wait_apiserver(index).await
    }

    /// Kills the running component `launch` names, waits `downtime`, starts `launch` in its
    /// place; returns its index in `self.processes`.
    async fn restart(&mut self, launch: Launch, downtime: Duration) -> Result<usize> {
        let index = self.index_of(&launch.name)?;
        self.processes[index].kill();
        tracing::info!(component = %launch.name, ?downtime, "killed; starting it again after the downtime");
        tokio::time::sleep(downtime).await;
        let process = Supervised::spawn(launch, &self.layout.logs())?;
        if let Some(janitor) = self.janitor.as_mut() {
            janitor.watch(process.pid())?;
        }
        // The old handle's process has exited; dropping it only reaps it.
        self.processes[index] = process;
        Ok(index)
    }

    /// The index in `self.processes` of the component called `name`.
    fn index_of(&self, name: &str) -> Result<usize> {
        self.processes
            .iter()
            .position(|p| p.name() == name)
            .ok_or_else(|| Error::NoSuchComponent(name.to_owned()))
    }

    /// Starts one component; returns its index in `self.processes`.
    fn launch(&mut self, launch: Launch) -> Result<usize> {
        let process = Supervised::spawn(launch, &self.layout.logs())?;
        if let Some(janitor) = self.janitor.as_mut() {
            janitor.watch(process.pid())?;
        }
        self.processes.push(process);
        Ok(self.processes.len() - 1)
    }

    /// Waits until etcd accepts client connections.
    async fn wait_etcd(&mut self, index: usize) -> Result<()> {
        let address = self.ports.etcd_client_addr();
        let probe = async || TcpStream::connect(address).await.is_ok();
        wait_ready(&mut self.processes[index], ETCD_TIMEOUT, probe).await
    }

    /// Waits until kube-apiserver's `/readyz` answers `ok` to the admin.
    async fn wait_apiserver(&mut self, index: usize) -> Result<()> {
        let client = quiet_client(&self.config)?;
        let probe = async || {
            let Ok(request) = http::Request::get("/readyz").body(Vec::new()) else {
                return false;
            };
            client
                .request_text(request)
                .await
                .is_ok_and(|body| body.trim() == "ok")
        };
        wait_ready(&mut self.processes[index], APISERVER_TIMEOUT, probe).await
    }

    /// When a component has died, its exit is the better explanation of a failed wait.
    fn explain(&mut self, error: Error) -> Error {
        self.processes
            .iter_mut()
            .find_map(|p| p.check_running().err())
            .unwrap_or(error)
    }

    /// A shared control plane for the whole test process, started on first use.
    ///
    /// Works from any number of `#[tokio::test]`s, each with its own runtime: the control plane
    /// is started on a dedicated thread and owns no tasks of any runtime, so create clients per
    /// test with [`ControlPlane::client`]. Its processes stop when the test process exits. A
    /// failed start is remembered: every later call returns the same error without retrying.
    pub async fn shared() -> Result<&'static ControlPlane> {
        crate::shared::get().await
    }

    /// A new client for the admin user (`system:masters`). Create one per test: a client
    /// belongs to the runtime it was created on.
    pub async fn client(&self) -> Result<kube::Client> {
        kube::Client::try_from(self.config.clone()).map_err(Error::kube("create a client"))
    }

    /// The admin client configuration.
    pub fn config(&self) -> &kube::Config {
        &self.config
    }

    /// The API server's URL, e.g. `https://127.0.0.1:41234`.
    pub fn server_url(&self) -> String {
        self.ports.apiserver_url()
    }

    /// The admin kubeconfig (self-contained: certificates are embedded).
    pub fn kubeconfig_path(&self) -> PathBuf {
        self.layout.admin_kubeconfig()
    }

    /// `kubectl` with `--kubeconfig` set to the admin kubeconfig.
    pub fn kubectl(&self) -> Command {
        let mut command = Command::new(self.bin_dir.join("kubectl"));
        command.arg(format!("--kubeconfig={}", self.kubeconfig_path().display()));
        command
    }

    /// The directory holding the control-plane binaries (and `kubectl`).
    pub fn bin_dir(&self) -> &Path {
        &self.bin_dir
    }

    /// The directory holding the components' logs (`<component>.log`).
    pub fn log_dir(&self) -> PathBuf {
        self.layout.logs()
    }

    /// How long starting the components took (excluding finding or building the binaries).
    pub fn startup_time(&self) -> Duration {
        self.startup_time
    }

    /// Creates a namespace named `<prefix>-<random suffix>` and waits until pods can be
    /// created in it.
    pub async fn test_namespace(&self, prefix: &str) -> Result<TestNamespace> {
        TestNamespace::create(&self.client().await?, prefix).await
    }

    /// Writes a kubeconfig for user `name` in `groups`, authenticated by a client certificate
    /// (CN=name, one O per group) signed by the cluster CA. Every call mints a new certificate
    /// and file.
    pub fn user_kubeconfig(&self, name: &str, groups: &[&str]) -> Result<PathBuf> {
        let cert = self.pki.client_cert(name, groups)?;
        let contents = kubeconfig::render(&self.server_url(), &self.pki.ca().cert_pem, name, &cert);
        let serial = self.users.fetch_add(1, Ordering::Relaxed);
        let path = self
            .layout
            .users()
            .join(format!("{serial}-{}.kubeconfig", file_name_safe(name)));
        crate::fs::write_private(&path, &contents)?;
        Ok(path)
    }

    /// A new client for user `name` in `groups` (see [`ControlPlane::user_kubeconfig`]).
    pub async fn user_client(&self, name: &str, groups: &[&str]) -> Result<kube::Client> {
        let config = kubeconfig::load_file(&self.user_kubeconfig(name, groups)?).await?;
        kube::Client::try_from(config).map_err(Error::kube(format!("create a client for {name}")))
    }

    /// Applies the CustomResourceDefinitions in the `*.yaml` files of `dir` (server-side apply,
    /// field manager `relman-testenv`) and waits until they are Established. Returns their
    /// names. [`ControlPlane::start`] already installs `<workspace>/crds/`.
    pub async fn install_crds(&self, dir: &Path) -> Result<Vec<String>> {
        crds::install(&self.client().await?, dir).await
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        process::stop_all(&mut self.processes);
        self.processes.clear();
        // The janitor removes the scratch directory once it sees the processes gone.
        self.janitor = None;
    }
}

impl std::fmt::Debug for ControlPlane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlPlane")
            .field("server", &self.server_url())
            .field("scratch", &self.layout.root())
            .field("bin_dir", &self.bin_dir)
            .finish_non_exhaustive()
    }
}

/// A client without kube's tracing and retry layers: kube logs every failed request as an
/// error, and `/readyz` fails many times while the API server starts.
fn quiet_client(config: &kube::Config) -> Result<kube::Client> {
    use kube::client::ConfigExt as _;
    let action = "create a client to probe kube-apiserver";
    let https = config
        .rustls_https_connector()
        .map_err(Error::kube(action))?;
    let auth = config.auth_layer().map_err(Error::kube(action))?;
    let http = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .build::<_, kube::client::Body>(https);
    let service = tower::ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .option_layer(auth)
        .map_err(tower::BoxError::from)
        .service(http);
    Ok(kube::Client::new(service, config.default_namespace.clone()))
}

/// Polls `probe` until it succeeds, failing early if `process` exits.
async fn wait_ready(
    process: &mut Supervised,
    timeout: Duration,
    mut probe: impl AsyncFnMut() -> bool,
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        process.check_running()?;
        if tokio::time::timeout(PROBE_TIMEOUT, probe()).await == Ok(true) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(process.not_ready(timeout));
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// Writes the CA, the API server's serving certificate and the service-account key.
fn write_pki(layout: &Layout, pki: &Pki) -> Result<()> {
    let serving = pki.serving_cert(
        "kube-apiserver",
        &[
            components::HOST,
            "localhost",
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
            "10.96.0.1",
        ],
    )?;
    let files = [
        ("ca.crt", pki.ca().cert_pem.as_str()),
        ("ca.key", pki.ca().key_pem.as_str()),
        ("apiserver.crt", serving.cert_pem.as_str()),
        ("apiserver.key", serving.key_pem.as_str()),
        ("service-account.key", &pki.service_account_key_pem()),
        ("service-account.pub", &pki.service_account_public_key_pem()),
    ];
    for (name, contents) in files {
        crate::fs::write_private(&layout.pki_file(name), contents)?;
    }
    Ok(())
}

/// `name` with every character outside `[A-Za-z0-9._-]` replaced by `_`.
fn file_name_safe(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect()
}
