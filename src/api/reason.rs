//! The reasons relman writes: on conditions, on history entries and on Events. One vocabulary,
//! so the planner that writes a reason and the notifier, the metrics and the plugin that read it
//! cannot drift apart; a misspelt reason does not compile. Reasons that come from elsewhere (a
//! calendar's window, a gate's own condition) pass through as text.

macro_rules! reasons {
    ($($(#[doc = $doc:literal])+ $name:ident,)+) => {
        /// A reason relman writes, as it appears in the API (`Reason::SmokeTestFailed` is
        /// `SmokeTestFailed`).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Reason {
            $($(#[doc = $doc])+ $name,)+
        }

        impl Reason {
            /// Every reason, in declaration order.
            pub const ALL: &'static [Reason] = &[$(Reason::$name,)+];

            /// The reason as written in conditions, history and Events.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Reason::$name => stringify!($name),)+
                }
            }
        }
    };
}

reasons! {
    /// The release was withdrawn by `spec.abort`.
    Aborted,
    /// An abort that reverted nothing: the release no longer drives what it changed.
    AbortIgnored,
    /// A sign-off of this version was rejected.
    ApprovalRejected,
    /// A sign-off was counted.
    Approved,
    /// The release waits for a stage's sign-off.
    AwaitingApproval,
    /// The backup Job runs.
    BackingUp,
    /// The backup Job failed.
    BackupFailed,
    /// The backup Job succeeded.
    BackupSucceeded,
    /// The backup Job ran out of time.
    BackupTimedOut,
    /// A Deployment lost an available replica, or a requirement stopped holding, during bake.
    BakeFailed,
    /// The stage stays under watch after its checks passed.
    Baking,
    /// Bake time began.
    BakeStarted,
    /// The known-good state of the stage's Deployments is being recorded.
    CapturingKnownGood,
    /// The Deployments still run this release.
    Current,
    /// A stage's Deployment is missing.
    DeploymentNotFound,
    /// A Deployment no longer runs the images this release set.
    Drifted,
    /// The API server refused one of relman's own requests (403).
    Forbidden,
    /// The incident's root cause is recorded.
    IncidentClosed,
    /// Production was changed and the release failed.
    IncidentOpened,
    /// The spec cannot be used as written.
    InvalidSpec,
    /// A Job under a check's name belongs to another Release object.
    JobOfAnotherRelease,
    /// A Job template asks for more than a Release may: host access, privileges, another
    /// ServiceAccount.
    JobNotPermitted,
    /// The stage's Deployments are being marked known-good.
    MarkingKnownGood,
    /// A stage would act in a namespace that has not accepted the Release.
    NamespaceNotPermitted,
    /// The release names no calendar.
    NoCalendar,
    /// The pod templates relman would keep in the status to revert are too large for one
    /// object.
    StatusTooLarge,
    /// The ReleasePolicy of a stage's namespace refuses the release (its type, its calendar,
    /// a Deployment outside its selector), or cannot be read.
    PolicyViolation,
    /// A Deployment has no container the release sets an image for.
    NoMatchingContainer,
    /// A stage is not deployed yet.
    NotDeployed,
    /// Nothing of the kind is asked for.
    NotRequired,
    /// The release has not been rolled back.
    NotRolledBack,
    /// The Deployment controller gave up on a rollout.
    ProgressDeadlineExceeded,
    /// Every stage is verified.
    Released,
    /// Every pre-release requirement is met.
    RequirementsMet,
    /// A pre-release requirement is not met.
    RequirementsNotMet,
    /// A revert could not complete.
    RevertFailed,
    /// The release ended reverted.
    RolledBack,
    /// Deployments are being reverted.
    RollingBack,
    /// Deployments are being rolled out.
    RollingOut,
    /// The rollout is complete.
    RolloutComplete,
    /// The rollout took longer than `rolloutTimeout`.
    RolloutTimedOut,
    /// The smoke test failed.
    SmokeTestFailed,
    /// The smoke test runs.
    SmokeTesting,
    /// The smoke test succeeded.
    SmokeTestSucceeded,
    /// The smoke test ran out of time.
    SmokeTestTimedOut,
    /// A stage failed.
    StageFailed,
    /// A stage has not started.
    StageNotStarted,
    /// A stage started.
    StageStarted,
    /// Every stage is verified.
    Succeeded,
    /// A newer release drives one of this release's Deployments.
    Superseded,
    /// A stage's checks passed and its Deployments are being verified.
    Verifying,
    /// The version is not newer than the application's newest release that succeeded.
    VersionNotNewer,
    /// `spec.type` does not match the semver bump.
    VersionTypeMismatch,
    /// Another active Release drives one of the stage's Deployments.
    WaitingForOtherRelease,
}

impl Reason {
    /// The reason written as `text`, if relman writes it.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|r| r.as_str() == text)
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::Reason;

    #[test]
    fn every_reason_reads_back_as_itself() {
        for reason in Reason::ALL {
            assert_eq!(Reason::parse(reason.as_str()), Some(*reason));
        }
        assert_eq!(Reason::parse("WindowClosed"), None);
        assert_eq!(Reason::SmokeTestFailed.to_string(), "SmokeTestFailed");
    }
}
