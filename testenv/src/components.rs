//! The command lines of the control-plane components, and where their files live.

use std::net::TcpListener;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::kwok;
use crate::process::Launch;

/// The loopback address every component binds to.
pub(crate) const HOST: &str = "127.0.0.1";

/// The service-account token issuer (the in-cluster API server URL).
const SERVICE_ACCOUNT_ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

/// The Service cluster-IP range.
const SERVICE_CLUSTER_IP_RANGE: &str = "10.96.0.0/16";

/// The range kwok hands pod IPs out of.
const POD_CIDR: &str = "10.244.0.1/16";

/// When set, kube-apiserver writes an audit log (JSON lines) to this path.
pub(crate) const AUDIT_LOG_ENV: &str = "RELMAN_TESTENV_AUDIT_LOG";

/// The audit policy used with [`AUDIT_LOG_ENV`]; unset, a policy that records every request at
/// the `Metadata` level is written next to the log (`<log>.policy.yaml`).
pub(crate) const AUDIT_POLICY_ENV: &str = "RELMAN_TESTENV_AUDIT_POLICY";

/// Records who did what to which object (no bodies), once per request.
const DEFAULT_AUDIT_POLICY: &str = "\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: Metadata
";

/// Where the control plane keeps its files, under one scratch directory.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    root: PathBuf,
}

impl Layout {
    /// A layout rooted at `root`.
    pub(crate) fn new(root: &Path) -> Self {
        Self {
            root: root.to_path_buf(),
        }
    }

    /// Creates the directories the components expect.
    pub(crate) fn create_dirs(&self) -> Result<()> {
        for dir in [self.pki(), self.logs(), self.users(), self.kwok_workdir()] {
            crate::fs::create_dir(&dir)?;
        }
        Ok(())
    }

    /// The scratch directory.
    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    /// Certificates and keys.
    pub(crate) fn pki(&self) -> PathBuf {
        self.root.join("pki")
    }

    /// A file in the certificates directory.
    pub(crate) fn pki_file(&self, name: &str) -> PathBuf {
        self.pki().join(name)
    }

    /// Component logs.
    pub(crate) fn logs(&self) -> PathBuf {
        self.root.join("logs")
    }

    /// Kubeconfigs minted for test users.
    pub(crate) fn users(&self) -> PathBuf {
        self.root.join("users")
    }

    /// The admin kubeconfig (CN=relman-admin, O=system:masters).
    pub(crate) fn admin_kubeconfig(&self) -> PathBuf {
        self.root.join("admin.kubeconfig")
    }

    /// etcd's data directory.
    fn etcd_data(&self) -> PathBuf {
        self.root.join("etcd")
    }

    /// kwok's stage configuration.
    pub(crate) fn kwok_stages(&self) -> PathBuf {
        self.root.join("kwok-stages.yaml")
    }

    /// kwok's work directory (it would otherwise read `~/.kwok/kwok.yaml`).
    fn kwok_workdir(&self) -> PathBuf {
        self.root.join("kwok")
    }
}

/// Loopback ports picked for this control plane.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ports {
    etcd_client: u16,
    etcd_peer: u16,
    /// The API server's secure port.
    pub(crate) apiserver: u16,
    kwok: u16,
}

impl Ports {
    /// Picks free ports by binding to port 0; all listeners are held until every port is
    /// chosen, so the ports differ from each other.
    pub(crate) fn pick() -> Result<Self> {
        let listeners = (0..4)
            .map(|_| TcpListener::bind((HOST, 0)))
            .collect::<std::io::Result<Vec<_>>>()
            .map_err(Error::io("pick free loopback ports"))?;
        let ports = listeners
            .iter()
            .map(|l| l.local_addr().map(|a| a.port()))
            .collect::<std::io::Result<Vec<_>>>()
            .map_err(Error::io("pick free loopback ports"))?;
        Ok(Self {
            etcd_client: ports[0],
            etcd_peer: ports[1],
            apiserver: ports[2],
            kwok: ports[3],
        })
    }

    /// The address etcd serves clients on.
    pub(crate) fn etcd_client_addr(&self) -> (&'static str, u16) {
        (HOST, self.etcd_client)
    }

    /// The API server's URL.
    pub(crate) fn apiserver_url(&self) -> String {
        format!("https://{HOST}:{}", self.apiserver)
    }
}

/// etcd, single member, no fsync (the data is thrown away).
pub(crate) fn etcd(bin: &Path, layout: &Layout, ports: &Ports) -> Launch {
    let client = format!("http://{HOST}:{}", ports.etcd_client);
    let peer = format!("http://{HOST}:{}", ports.etcd_peer);
    launch(
        "etcd",
        bin,
        [
            "--name=relman".to_owned(),
            format!("--data-dir={}", layout.etcd_data().display()),
            format!("--listen-client-urls={client}"),
            format!("--advertise-client-urls={client}"),
            format!("--listen-peer-urls={peer}"),
            format!("--initial-advertise-peer-urls={peer}"),
            format!("--initial-cluster=relman={peer}"),
            "--unsafe-no-fsync=true".to_owned(),
            "--log-level=warn".to_owned(),
        ],
    )
}

/// kube-apiserver with client-certificate authentication and Node,RBAC authorization.
pub(crate) fn kube_apiserver(
    bin: &Path,
    layout: &Layout,
    ports: &Ports,
    options: &crate::control_plane::Options,
) -> Launch {
    let pki = |name: &str| layout.pki_file(name).display().to_string();
    launch(
        "kube-apiserver",
        bin,
        [
            format!("--etcd-servers=http://{HOST}:{}", ports.etcd_client),
            format!("--bind-address={HOST}"),
            format!("--advertise-address={HOST}"),
            // The `kubernetes` Service's endpoints may not be a loopback address, and nothing
            // in a kwok cluster connects to it.
            "--endpoint-reconciler-type=none".to_owned(),
            format!("--secure-port={}", ports.apiserver),
            format!("--cert-dir={}", layout.pki().display()),
            format!("--tls-cert-file={}", pki("apiserver.crt")),
            format!("--tls-private-key-file={}", pki("apiserver.key")),
            format!("--client-ca-file={}", pki("ca.crt")),
            format!("--service-account-key-file={}", pki("service-account.pub")),
            format!(
                "--service-account-signing-key-file={}",
                pki("service-account.key")
            ),
            format!("--service-account-issuer={SERVICE_ACCOUNT_ISSUER}"),
            format!("--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}"),
            "--authorization-mode=Node,RBAC".to_owned(),
            "--allow-privileged=true".to_owned(),
            "--profiling=false".to_owned(),
        ],
    )
    .with_args(audit_args(options.audit_log.as_deref()))
    .with_args(options.apiserver_args.clone())
}

/// The audit-log flags when `audit_log` is given or [`AUDIT_LOG_ENV`] is set (none otherwise).
/// A default policy that cannot be written leaves auditing off, with a warning: the log is a
/// measuring aid, not something a control plane needs.
fn audit_args(audit_log: Option<&Path>) -> Vec<String> {
    let from_env = std::env::var_os(AUDIT_LOG_ENV)
        .filter(|p| !p.is_empty())
        .map(PathBuf::from);
    let Some(log) = audit_log.map(Path::to_path_buf).or(from_env) else {
        return Vec::new();
    };
    let policy = match std::env::var_os(AUDIT_POLICY_ENV).filter(|p| !p.is_empty()) {
        Some(policy) => PathBuf::from(policy),
        None => {
            let mut policy = log.clone().into_os_string();
            policy.push(".policy.yaml");
            let policy = PathBuf::from(policy);
            if let Err(e) = crate::fs::write(&policy, DEFAULT_AUDIT_POLICY) {
                tracing::warn!(error = %e, "cannot write the audit policy: the audit log is off");
                return Vec::new();
            }
            policy
        }
    };
    vec![
        format!("--audit-policy-file={}", policy.display()),
        format!("--audit-log-path={}", log.display()),
        "--audit-log-format=json".to_owned(),
        // Each event is in the file when its request completes, so a reader counts exactly.
        "--audit-log-mode=blocking".to_owned(),
        "--audit-log-maxsize=0".to_owned(),
    ]
}

/// kube-controller-manager with every default controller, no leader election, no serving.
pub(crate) fn kube_controller_manager(bin: &Path, layout: &Layout) -> Launch {
    let pki = |name: &str| layout.pki_file(name).display().to_string();
    launch(
        "kube-controller-manager",
        bin,
        [
            format!("--kubeconfig={}", layout.admin_kubeconfig().display()),
            "--leader-elect=false".to_owned(),
            "--controllers=*".to_owned(),
            "--secure-port=0".to_owned(),
            format!(
                "--service-account-private-key-file={}",
                pki("service-account.key")
            ),
            format!("--root-ca-file={}", pki("ca.crt")),
            format!("--cluster-signing-cert-file={}", pki("ca.crt")),
            format!("--cluster-signing-key-file={}", pki("ca.key")),
            format!("--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}"),
            "--kube-api-qps=1000".to_owned(),
            "--kube-api-burst=1000".to_owned(),
            "--profiling=false".to_owned(),
        ],
    )
}

/// kube-scheduler, no leader election, no serving.
pub(crate) fn kube_scheduler(bin: &Path, layout: &Layout) -> Launch {
    launch(
        "kube-scheduler",
        bin,
        [
            format!("--kubeconfig={}", layout.admin_kubeconfig().display()),
            "--leader-elect=false".to_owned(),
            "--secure-port=0".to_owned(),
            "--profiling=false".to_owned(),
        ],
    )
}

/// How long the kwok node's Lease lasts (a kubelet's default); kwok renews it well before.
const NODE_LEASE_SECONDS: u32 = 40;

/// kwok, managing only the nodes annotated as fake, with the harness's stages.
pub(crate) fn kwok(bin: &Path, layout: &Layout, ports: &Ports) -> Launch {
    let mut launch = launch(
        "kwok",
        bin,
        [
            format!("--kubeconfig={}", layout.admin_kubeconfig().display()),
            format!("--config={}", layout.kwok_stages().display()),
            "--manage-all-nodes=false".to_owned(),
            format!(
                "--manage-nodes-with-annotation-selector={}={}",
                kwok::NODE_ANNOTATION,
                kwok::NODE_ANNOTATION_VALUE
            ),
            format!("--server-address={HOST}:{}", ports.kwok),
            // A node Lease renewed by kwok, as a kubelet's: without one kwok reports the node
            // only about once a minute, the node lifecycle controller (50 s grace) marks it
            // NotReady between reports, and every pod on it is marked unready each time.
            format!("--node-lease-duration-seconds={NODE_LEASE_SECONDS}"),
            format!("--node-ip={HOST}"),
            format!("--cidr={POD_CIDR}"),
        ],
    );
    launch.env.push((
        "KWOK_WORKDIR".to_owned(),
        layout.kwok_workdir().display().to_string(),
    ));
    launch
}

impl Launch {
    /// The same launch with `extra` appended to its arguments.
    fn with_args(mut self, extra: Vec<String>) -> Self {
        self.args.extend(extra);
        self
    }
}

fn launch<const N: usize>(name: &str, bin: &Path, args: [String; N]) -> Launch {
    Launch {
        name: name.to_owned(),
        program: bin.join(name),
        args: args.into(),
        env: Vec::new(),
    }
}
