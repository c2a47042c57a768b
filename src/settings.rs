//! Every setting of the `relman` controller, in one place: each is a flag and an environment
//! variable (the chart sets the variables), parsed once at startup by clap. `relman --help`
//! prints them with their defaults; docs/configuration.md has the same table. A variable set
//! to the empty string counts as unset, as it always has (the chart may render one empty).

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;

use crate::api::duration::parse_duration;
use crate::controller::{DEFAULT_APPROVAL_POLICY, DEFAULT_CONCURRENCY};
use crate::k8s::scope::Scope;
use crate::leader::{self, DEFAULT_LEASE_NAME, LeaderElectionConfig, LeaderError};

/// relman: gated staging and production rollouts, smoke tests and automatic reverts to the
/// last known-good revision, driven by Release resources.
#[derive(Debug, Clone, Parser)]
#[command(name = "relman", version)]
pub struct Settings {
    /// Where the HTTP server (metrics, probes, calendar feed) listens.
    #[arg(long, env = "RELMAN_HTTP_ADDR", default_value = "0.0.0.0:8080", value_parser = socket_addr("RELMAN_HTTP_ADDR", "0.0.0.0:8080"))]
    pub http_addr: SocketAddr,

    /// Where the probe port (only /healthz and /readyz, for the kubelet) listens, apart from
    /// the main port so a flood of scrapes or feed requests cannot fail the probes.
    #[arg(long, env = "RELMAN_PROBE_ADDR", default_value = "0.0.0.0:8081", value_parser = socket_addr("RELMAN_PROBE_ADDR", "0.0.0.0:8081"))]
    pub probe_addr: SocketAddr,

    /// Serve only the Releases of these namespaces, a comma-separated list (a,b,c), and watch
    /// Jobs, Deployments and approvals only there, one watch per namespace; empty or unset
    /// serves every namespace.
    #[arg(long, env = "RELMAN_NAMESPACE", default_value = "", hide_default_value = true,
          value_parser = namespaces)]
    pub namespace: Scope,

    /// Keep the status of only the ReleaseCalendars with these labels (a label selector);
    /// empty or unset keeps every calendar's.
    #[arg(long, env = "RELMAN_CALENDAR_SELECTOR", value_parser = optional)]
    pub calendar_selector: Option<String>,

    /// The ValidatingAdmissionPolicy that enforces who signs ReleaseApprovals
    /// (config/approval-policy.yaml): approvals count only in namespaces that it and a binding
    /// with validationActions Deny cover.
    #[arg(long, env = "RELMAN_APPROVAL_POLICY", default_value = DEFAULT_APPROVAL_POLICY,
          value_parser = or_default(DEFAULT_APPROVAL_POLICY))]
    pub approval_policy: String,

    /// How many Releases are reconciled at once (1 to 1000).
    #[arg(long, env = "RELMAN_CONCURRENCY", default_value_t = DEFAULT_CONCURRENCY,
          value_parser = concurrency)]
    pub concurrency: u16,

    /// Serve the iCalendar feed of each ReleaseCalendar at /calendars/<name>.ics on the HTTP
    /// port (true, false). Off by default: the feed has no authentication, and it lists the
    /// releases, owners, rollback plans and notes of every calendar to whoever reaches the port.
    #[arg(long, env = "RELMAN_CALENDAR_FEED", default_value = "false", value_parser = switch,
          action = clap::ArgAction::Set)]
    pub calendar_feed: bool,

    /// Elect one writing replica through a Lease (true, false; also 1/0, yes/no, on/off).
    /// Turn it off only when exactly one replica runs.
    #[arg(long, env = "RELMAN_LEADER_ELECTION", default_value = "true", value_parser = switch,
          action = clap::ArgAction::Set)]
    pub leader_election: bool,

    /// The leader Lease's name.
    #[arg(long, env = "RELMAN_LEADER_ELECTION_LEASE", default_value = DEFAULT_LEASE_NAME,
          value_parser = or_default(DEFAULT_LEASE_NAME))]
    pub leader_election_lease: String,

    /// How long others wait after the Lease last changed before they take it (default 15s).
    #[arg(long, env = "RELMAN_LEADER_ELECTION_LEASE_DURATION",
          default_value = "", hide_default_value = true,
          value_parser = timing("RELMAN_LEADER_ELECTION_LEASE_DURATION"))]
    pub leader_election_lease_duration: Timing,

    /// How long after its last renewal the holder stops writing (default 10s).
    #[arg(long, env = "RELMAN_LEADER_ELECTION_RENEW_DEADLINE",
          default_value = "", hide_default_value = true,
          value_parser = timing("RELMAN_LEADER_ELECTION_RENEW_DEADLINE"))]
    pub leader_election_renew_deadline: Timing,

    /// How often the holder renews the Lease (default 5s).
    #[arg(long, env = "RELMAN_LEADER_ELECTION_RENEW_PERIOD",
          default_value = "", hide_default_value = true,
          value_parser = timing("RELMAN_LEADER_ELECTION_RENEW_PERIOD"))]
    pub leader_election_renew_period: Timing,

    /// How often a replica without the Lease tries to take it (default 2s).
    #[arg(long, env = "RELMAN_LEADER_ELECTION_RETRY_PERIOD",
          default_value = "", hide_default_value = true,
          value_parser = timing("RELMAN_LEADER_ELECTION_RETRY_PERIOD"))]
    pub leader_election_retry_period: Timing,

    /// This replica's name, part of its Lease identity and of its Events (the chart sets it
    /// from the pod's name; else the host name).
    #[arg(long, env = "POD_NAME", value_parser = optional)]
    pub pod_name: Option<String>,

    /// The namespace of the leader Lease (the chart sets it to relman's own).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default", value_parser = or_default("default"))]
    pub pod_namespace: String,

    /// The log filter, e.g. info or relman=debug,kube=info (else RUST_LOG, else info).
    #[arg(long, env = "RELMAN_LOG", value_parser = optional)]
    pub log: Option<String>,

    /// The log format: text, or json for one JSON object per line.
    #[arg(long, env = "RELMAN_LOG_FORMAT", default_value = "text", value_parser = log_format)]
    pub log_format: LogFormat,

    /// The ReleasePolicy (namespace/name) that governs the namespaces without one of their
    /// own; unset: the built-in default (Releases of the namespace itself only, Jobs at the
    /// Restricted level as the `default` ServiceAccount, no extra gates).
    #[arg(long, env = "RELMAN_DEFAULT_POLICY", value_parser = policy_ref)]
    pub default_policy: Option<(String, String)>,
}

/// A leader election timing: `None` keeps the default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Timing(pub Option<Duration>);

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

impl Settings {
    /// The settings from the command line and the environment; exits with the error (naming
    /// the flag, the variable and the fix) when one is invalid.
    pub fn from_env_and_args() -> Self {
        Self::parse().normalized()
    }

    /// Empty strings (variables set to "") read as unset.
    pub fn normalized(mut self) -> Self {
        for value in [
            &mut self.calendar_selector,
            &mut self.pod_name,
            &mut self.log,
        ] {
            if value.as_deref().is_some_and(str::is_empty) {
                *value = None;
            }
        }
        if self
            .default_policy
            .as_ref()
            .is_some_and(|(namespace, _)| namespace.is_empty())
        {
            self.default_policy = None;
        }
        self
    }

    /// The leader election to run, or `None` when it is off; the timings left unset keep
    /// their defaults and must still keep one leader.
    pub fn leader_election(&self) -> Result<Option<LeaderElectionConfig>, LeaderError> {
        if !self.leader_election {
            return Ok(None);
        }
        let host = self
            .pod_name
            .clone()
            .or_else(|| std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()))
            .unwrap_or_else(|| "relman".to_owned());
        let config = LeaderElectionConfig::new(
            self.leader_election_lease.clone(),
            self.pod_namespace.clone(),
            leader::unique_identity(&host),
        );
        let timings = [
            self.leader_election_lease_duration.0,
            self.leader_election_renew_deadline.0,
            self.leader_election_renew_period.0,
            self.leader_election_retry_period.0,
        ];
        if timings.iter().all(Option::is_none) {
            return Ok(Some(config));
        }
        let [lease, deadline, renew, retry] = timings;
        let (default_lease, default_deadline, default_renew, default_retry) = (
            config.lease_duration,
            config.renew_deadline,
            config.renew_period,
            config.retry_period,
        );
        config
            .with_timings(
                lease.unwrap_or(default_lease),
                deadline.unwrap_or(default_deadline),
                renew.unwrap_or(default_renew),
                retry.unwrap_or(default_retry),
            )
            .map(Some)
    }
}

/// A value that may be empty (then [`Settings::normalized`] reads it as unset); only
/// whitespace is a mistake, not a way to widen relman's scope.
fn optional(text: &str) -> Result<String, String> {
    if !text.is_empty() && text.trim().is_empty() {
        return Err("is only whitespace: unset it or give a value".to_owned());
    }
    Ok(text.trim().to_owned())
}

/// A `namespace/name` reference to a ReleasePolicy. Empty reads as unset (see
/// [`Settings::normalized`]).
fn policy_ref(text: &str) -> Result<(String, String), String> {
    let text = text.trim();
    let label = |part: &str| {
        !part.is_empty()
            && part.len() <= 63
            && part
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
    };
    match text.split_once('/') {
        Some((namespace, name)) if label(namespace) && label(name) => {
            Ok((namespace.to_owned(), name.to_owned()))
        }
        _ if text.is_empty() => Ok((String::new(), String::new())),
        _ => Err(format!(
            "RELMAN_DEFAULT_POLICY must name a ReleasePolicy as namespace/name, e.g. relman-system/default, not {text:?}"
        )),
    }
}

/// A comma-separated list of namespaces; empty is every namespace. Whitespace alone, an empty
/// item or a name that cannot be a namespace is an error, never every namespace.
fn namespaces(text: &str) -> Result<Scope, String> {
    if !text.is_empty() && text.trim().is_empty() {
        return Err("RELMAN_NAMESPACE is only whitespace: unset it or list namespaces".to_owned());
    }
    Scope::parse(text).map_err(|e| format!("RELMAN_NAMESPACE: {e}"))
}

/// A parser of socket addresses whose errors name `variable`; empty is `default`.
fn socket_addr(
    variable: &'static str,
    default: &'static str,
) -> impl Fn(&str) -> Result<SocketAddr, String> + Clone {
    move |text: &str| {
        let text = text.trim();
        let text = if text.is_empty() { default } else { text };
        text.parse()
            .map_err(|e| format!("{variable} must be a socket address such as {default}: {e}"))
    }
}

/// A parser of names; empty is `default`.
fn or_default(default: &'static str) -> impl Fn(&str) -> Result<String, String> + Clone {
    move |text: &str| {
        let text = text.trim();
        Ok(if text.is_empty() { default } else { text }.to_owned())
    }
}

/// 1 to 1000; empty is the default.
fn concurrency(text: &str) -> Result<u16, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(DEFAULT_CONCURRENCY);
    }
    text.parse::<u16>()
        .ok()
        .filter(|n| (1..=1000).contains(n))
        .ok_or_else(|| "RELMAN_CONCURRENCY must be a whole number from 1 to 1000".to_owned())
}

/// json, in any case, is JSON; anything else is text, as it always was.
fn log_format(text: &str) -> Result<LogFormat, String> {
    Ok(if text.trim().eq_ignore_ascii_case("json") {
        LogFormat::Json
    } else {
        LogFormat::Text
    })
}

/// true/false, 1/0, yes/no, on/off, in any case; empty means on.
fn switch(text: &str) -> Result<bool, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "" | "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err("must be true or false".to_owned()),
    }
}

/// A parser of Go-style durations whose errors name `variable`; empty keeps the default.
fn timing(variable: &'static str) -> impl Fn(&str) -> Result<Timing, String> + Clone {
    move |text: &str| {
        let text = text.trim();
        if text.is_empty() {
            return Ok(Timing(None));
        }
        parse_duration(text)
            .map(|d| Timing(Some(d)))
            .map_err(|e| format!("{variable} must be a duration such as 15s or 500ms: {e}"))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    /// The settings from `args` alone: the environment of whoever runs the tests is ignored.
    fn parse(args: &[&str]) -> Result<Settings, clap::Error> {
        use clap::{CommandFactory, FromArgMatches};
        let command = Settings::command().mut_args(|arg| arg.env(None::<&'static str>));
        let matches =
            command.try_get_matches_from(std::iter::once("relman").chain(args.iter().copied()))?;
        Settings::from_arg_matches(&matches).map(Settings::normalized)
    }

    #[test]
    fn defaults_serve_every_namespace_with_leader_election() {
        let settings = parse(&["--pod-name", "relman-0"]).unwrap();
        assert_eq!(settings.http_addr, "0.0.0.0:8080".parse().unwrap());
        assert_eq!(settings.concurrency, DEFAULT_CONCURRENCY);
        assert_eq!(settings.namespace, Scope::All);
        assert_eq!(settings.approval_policy, DEFAULT_APPROVAL_POLICY);
        assert!(
            !settings.calendar_feed,
            "the unauthenticated feed is off unless asked for"
        );
        assert_eq!(settings.default_policy, None);
        assert_eq!(settings.log_format, LogFormat::Text);
        let election = settings.leader_election().unwrap().expect("on by default");
        assert_eq!(election.lease_name, DEFAULT_LEASE_NAME);
        assert_eq!(election.lease_duration, Duration::from_secs(15));
        assert_eq!(election.retry_period, Duration::from_secs(2));
        assert!(election.identity.starts_with("relman-0_"), "{election:?}");
    }

    #[test]
    fn timings_keep_their_defaults_when_unset() {
        let short = parse(&[
            "--leader-election-lease-duration=4s",
            "--leader-election-renew-deadline=3s",
            "--leader-election-renew-period=1s",
            "--leader-election-retry-period=500ms",
        ])
        .unwrap()
        .leader_election()
        .unwrap()
        .unwrap();
        assert_eq!(
            (
                short.lease_duration,
                short.renew_deadline,
                short.renew_period,
                short.retry_period
            ),
            (
                Duration::from_secs(4),
                Duration::from_secs(3),
                Duration::from_secs(1),
                Duration::from_millis(500)
            )
        );
        // One timing alone: the others keep their defaults (15 s, 10 s, 5 s).
        let retry = parse(&["--leader-election-retry-period=1s"])
            .unwrap()
            .leader_election()
            .unwrap()
            .unwrap();
        assert_eq!(retry.retry_period, Duration::from_secs(1));
        assert_eq!(retry.renew_deadline, Duration::from_secs(10));
    }

    #[test]
    fn bad_values_are_errors_naming_the_variable_or_the_rule() {
        let bad = parse(&["--leader-election-renew-period=soon"]).unwrap_err();
        assert!(
            bad.to_string()
                .contains("RELMAN_LEADER_ELECTION_RENEW_PERIOD"),
            "{bad}"
        );
        // A renew deadline past the default 15 s lease could elect two leaders.
        let unsafe_deadline = parse(&["--leader-election-renew-deadline=20s"])
            .unwrap()
            .leader_election();
        assert!(matches!(
            unsafe_deadline,
            Err(LeaderError::InvalidTiming(_))
        ));
        assert!(parse(&["--concurrency=0"]).is_err());
        assert!(parse(&["--concurrency=1001"]).is_err());
        assert!(parse(&["--leader-election=maybe"]).is_err());
        assert!(parse(&["--http-addr=8080"]).is_err());
        assert!(
            parse(&["--namespace=  "]).is_err(),
            "whitespace never means every namespace"
        );
        for slip in [
            "--namespace=shop,",
            "--namespace=shop,,prod",
            "--namespace=Shop",
        ] {
            let error = parse(&[slip]).unwrap_err().to_string();
            assert!(error.contains("RELMAN_NAMESPACE"), "{slip}: {error}");
        }
        // Any log format but json is text, as it always was.
        assert_eq!(
            parse(&["--log-format=pretty"]).unwrap().log_format,
            LogFormat::Text
        );
    }

    #[test]
    fn namespaces_are_one_or_a_list() {
        assert_eq!(
            parse(&["--namespace=shop"]).unwrap().namespace,
            Scope::one("shop")
        );
        let list = parse(&["--namespace", "shop, shop-staging,shop-prod"])
            .unwrap()
            .namespace;
        assert_eq!(
            list,
            Scope::Namespaces(
                ["shop", "shop-prod", "shop-staging"]
                    .into_iter()
                    .map(String::from)
                    .collect()
            )
        );
    }

    #[test]
    fn switches_read_like_the_chart_writes_them() {
        for (text, on) in [("true", true), ("false", false), ("0", false), ("On", true)] {
            let settings = parse(&[&format!("--leader-election={text}")]).unwrap();
            assert_eq!(settings.leader_election, on, "{text}");
        }
        assert!(
            parse(&["--leader-election=false"])
                .unwrap()
                .leader_election()
                .unwrap()
                .is_none()
        );
        let json = parse(&["--log-format=JSON"]).unwrap();
        assert_eq!(json.log_format, LogFormat::Json);
    }

    #[test]
    fn empty_values_read_as_unset() {
        let settings = parse(&[
            "--namespace=",
            "--calendar-selector=",
            "--log=",
            "--log-format=",
            "--concurrency=",
            "--leader-election=",
            "--leader-election-lease=",
            "--leader-election-renew-period=",
            "--pod-namespace=",
            "--http-addr=",
        ])
        .unwrap();
        assert_eq!(settings.http_addr, "0.0.0.0:8080".parse().unwrap());
        assert_eq!(settings.namespace, Scope::All);
        assert_eq!(settings.calendar_selector, None);
        assert_eq!(settings.log, None);
        assert_eq!(settings.log_format, LogFormat::Text);
        assert_eq!(settings.concurrency, DEFAULT_CONCURRENCY);
        let election = settings.leader_election().unwrap().expect("empty means on");
        assert_eq!(election.lease_name, DEFAULT_LEASE_NAME);
        assert_eq!(election.namespace, "default");
        assert_eq!(election.renew_period, Duration::from_secs(5));
    }
}
