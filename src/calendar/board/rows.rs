//! The calendar's rows: the Releases that name the calendar merged with its planned entries.
//! Pure.
//!
//! A Release and an entry of the same application and version are one row (the Release's
//! fields win, the entry fills the gaps); an entry without a version never merges. Each entry
//! merges with at most one Release, the first by `namespace/name`.

use chrono::NaiveDate;
use kube::ResourceExt;

use crate::api::Release;
use crate::api::calendar::{CalendarEntry, CalendarRelease};
use crate::api::release::{ReleaseNotes, ReleasePhase, ReleaseType};
use crate::calendar::ical::FeedRelease;

/// The phase shown for an entry whose Release does not exist yet.
pub const PLANNED: &str = "Planned";

/// One row of the calendar: a Release, a planned entry, or both.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CalendarRow {
    /// `namespace/name` of the Release, if one exists.
    pub release: Option<String>,
    /// The calendar entry's name, if planned in the calendar.
    pub entry: Option<String>,
    /// The application.
    pub application: String,
    /// The version (an entry may leave it open).
    pub version: Option<String>,
    /// Patch, Minor or Major.
    pub release_type: ReleaseType,
    /// Who owns it.
    pub owner: String,
    /// The target date as written, YYYY-MM-DD.
    pub target_date: Option<String>,
    /// The Release's phase; `None` for an entry alone or a Release relman has not seen yet.
    pub phase: Option<ReleasePhase>,
    /// How to roll back (the Release's, else the entry's).
    pub rollback_plan: Option<String>,
    /// Notes (the Release's notes as text, else the entry's).
    pub notes: Option<String>,
}

impl CalendarRow {
    fn from_release(release: &Release) -> Self {
        let spec = &release.spec;
        Self {
            release: Some(release_key(release)),
            entry: None,
            application: spec.application.clone(),
            version: Some(spec.version.clone()),
            release_type: spec.release_type,
            owner: spec.owner.clone(),
            target_date: spec.target_date.clone(),
            phase: release.status.as_ref().and_then(|status| status.phase),
            rollback_plan: non_empty(spec.rollback_plan.as_deref()),
            notes: spec.notes.as_ref().and_then(notes_text),
        }
    }

    fn from_entry(entry: &CalendarEntry) -> Self {
        Self {
            release: None,
            entry: Some(entry.name.clone()),
            application: entry.application.clone(),
            version: entry.version.clone(),
            release_type: entry.release_type,
            owner: entry.owner.clone(),
            target_date: Some(entry.target_date.clone()),
            phase: None,
            rollback_plan: non_empty(entry.rollback_plan.as_deref()),
            notes: non_empty(entry.notes.as_deref()),
        }
    }

    /// Fills what the Release leaves open from its entry.
    fn merge_entry(&mut self, entry: &CalendarEntry) {
        self.entry = Some(entry.name.clone());
        if self.target_date.is_none() {
            self.target_date = Some(entry.target_date.clone());
        }
        if self.rollback_plan.is_none() {
            self.rollback_plan = non_empty(entry.rollback_plan.as_deref());
        }
        if self.notes.is_none() {
            self.notes = non_empty(entry.notes.as_deref());
        }
    }

    /// The target date, when it is a valid date.
    pub fn target_day(&self) -> Option<NaiveDate> {
        self.target_date
            .as_deref()
            .and_then(|date| NaiveDate::parse_from_str(date, "%Y-%m-%d").ok())
    }

    /// The phase for people: the Release's phase, or Planned for an entry alone.
    pub fn phase_label(&self) -> Option<String> {
        match (&self.release, self.phase) {
            (_, Some(phase)) => Some(phase_name(phase)),
            (None, None) => Some(PLANNED.to_owned()),
            (Some(_), None) => None,
        }
    }

    /// Whether the release is over (succeeded, rolled back or failed): its date no longer
    /// matters to the calendar.
    pub fn finished(&self) -> bool {
        matches!(
            self.phase,
            Some(ReleasePhase::Succeeded | ReleasePhase::RolledBack | ReleasePhase::Failed)
        )
    }

    /// `shop/checkout-2-3-0 (checkout 2.3.0)` or `entry REL-142 (billing 4.0.0)`.
    pub fn label(&self) -> String {
        let what = match (&self.release, &self.entry) {
            (Some(release), _) => release.clone(),
            (None, Some(entry)) => format!("entry {entry}"),
            (None, None) => "release".to_owned(),
        };
        match &self.version {
            Some(version) => format!("{what} ({} {version})", self.application),
            None => format!("{what} ({})", self.application),
        }
    }

    /// The row as the calendar's status lists it.
    pub fn to_status(&self) -> CalendarRelease {
        CalendarRelease {
            release: self.release.clone(),
            entry: self.entry.clone(),
            application: self.application.clone(),
            version: self.version.clone(),
            release_type: Some(self.release_type),
            owner: Some(self.owner.clone()),
            target_date: self.target_date.clone(),
            phase: self.phase_label(),
        }
    }

    /// The row as the iCalendar feed shows it.
    pub fn to_feed(&self) -> FeedRelease {
        FeedRelease {
            application: self.application.clone(),
            version: self.version.clone(),
            release_type: Some(self.release_type),
            owner: Some(self.owner.clone()),
            target_date: self.target_day(),
            release: self.release.clone(),
            entry: self.entry.clone(),
            phase: self.phase_label(),
            rollback_plan: self.rollback_plan.clone(),
            notes: self.notes.clone(),
        }
    }

    /// The order rows are listed in: by date (undated last), application, version, source.
    fn sort_key(&self) -> impl Ord + '_ {
        (
            self.target_date.is_none(),
            self.target_date.as_deref(),
            self.application.as_str(),
            self.version.as_deref(),
            self.release.as_deref(),
            self.entry.as_deref(),
        )
    }
}

/// The rows of a calendar: every Release given (the ones that name the calendar) merged with
/// the planned entries, in date order.
pub fn calendar_rows<'a>(
    entries: &[CalendarEntry],
    releases: impl IntoIterator<Item = &'a Release>,
) -> Vec<CalendarRow> {
    let mut releases: Vec<&Release> = releases.into_iter().collect();
    releases.sort_by_key(|release| release_key(release));
    let mut merged = vec![false; entries.len()];
    let mut rows: Vec<CalendarRow> = releases
        .into_iter()
        .map(|release| {
            let mut row = CalendarRow::from_release(release);
            let planned = entries.iter().enumerate().position(|(index, entry)| {
                !merged[index]
                    && entry.application == release.spec.application
                    && entry.version.as_deref() == Some(release.spec.version.as_str())
            });
            if let Some(index) = planned {
                merged[index] = true;
                row.merge_entry(&entries[index]);
            }
            row
        })
        .collect();
    rows.extend(
        entries
            .iter()
            .zip(merged)
            .filter(|(_, merged)| !merged)
            .map(|(entry, _)| CalendarRow::from_entry(entry)),
    );
    rows.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
    rows
}

/// `namespace/name` of a Release.
pub fn release_key(release: &Release) -> String {
    format!(
        "{}/{}",
        release.namespace().unwrap_or_default(),
        release.name_any()
    )
}

/// The API spelling of a phase, e.g. `AwaitingWindow`.
fn phase_name(phase: ReleasePhase) -> String {
    serde_json::to_value(phase)
        .ok()
        .and_then(|value| value.as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("{phase:?}"))
}

/// Release notes as one text: the summary, then the notable changes as a list.
fn notes_text(notes: &ReleaseNotes) -> Option<String> {
    let mut parts: Vec<String> = notes
        .summary
        .iter()
        .filter(|summary| !summary.trim().is_empty())
        .cloned()
        .collect();
    parts.extend(
        notes
            .notable_changes
            .iter()
            .map(|change| format!("- {change}")),
    );
    (!parts.is_empty()).then(|| parts.join("\n"))
}

fn non_empty(text: Option<&str>) -> Option<String> {
    text.filter(|text| !text.trim().is_empty())
        .map(str::to_owned)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
pub(super) mod tests {
    use serde_json::json;

    use super::*;

    pub(in crate::calendar::board) fn release(
        namespace: &str,
        name: &str,
        application: &str,
        version: &str,
        target_date: &str,
    ) -> Release {
        let mut release: Release = serde_json::from_value(json!({
            "apiVersion": "relman.io/v1alpha1",
            "kind": "Release",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "application": application,
                "version": version,
                "type": "Minor",
                "owner": "team-a",
                "targetDate": target_date,
                "calendar": "cal",
                "rollbackPlan": "redeploy the previous version",
                "notes": {"summary": "Faster.", "notableChanges": ["cache"]},
                "images": [{"container": "api", "image": "a:1"}],
                "stages": [{"name": "production", "deployments": ["a"]}]
            }
        }))
        .unwrap();
        release.status = Some(crate::api::ReleaseStatus {
            phase: Some(ReleasePhase::AwaitingWindow),
            ..Default::default()
        });
        release
    }

    pub(in crate::calendar::board) fn entry(
        name: &str,
        application: &str,
        version: Option<&str>,
        target_date: &str,
        rollback_plan: Option<&str>,
    ) -> CalendarEntry {
        CalendarEntry {
            name: name.into(),
            application: application.into(),
            version: version.map(Into::into),
            target_date: target_date.into(),
            owner: "team-b".into(),
            release_type: ReleaseType::Major,
            rollback_plan: rollback_plan.map(Into::into),
            notes: Some("planned".into()),
        }
    }

    #[test]
    fn merges_an_entry_with_the_release_of_the_same_application_and_version() {
        let releases = [release(
            "shop",
            "checkout-2-3-0",
            "checkout",
            "2.3.0",
            "2026-12-01",
        )];
        let entries = [
            entry("REL-1", "checkout", Some("2.3.0"), "2026-11-30", None),
            entry(
                "REL-2",
                "billing",
                Some("4.0.0"),
                "2026-12-08",
                Some("runbook"),
            ),
        ];
        let rows = calendar_rows(&entries, &releases);
        assert_eq!(rows.len(), 2, "{rows:#?}");
        let merged = &rows[0];
        assert_eq!(merged.release.as_deref(), Some("shop/checkout-2-3-0"));
        assert_eq!(merged.entry.as_deref(), Some("REL-1"));
        // The Release's fields win over the plan.
        assert_eq!(merged.target_date.as_deref(), Some("2026-12-01"));
        assert_eq!(merged.release_type, ReleaseType::Minor);
        assert_eq!(merged.owner, "team-a");
        assert_eq!(merged.notes.as_deref(), Some("Faster.\n- cache"));
        assert_eq!(merged.phase_label().as_deref(), Some("AwaitingWindow"));
        let planned = &rows[1];
        assert_eq!(planned.entry.as_deref(), Some("REL-2"));
        assert_eq!(planned.release, None);
        assert_eq!(planned.phase_label().as_deref(), Some(PLANNED));
        assert_eq!(planned.to_status().phase.as_deref(), Some(PLANNED));
    }

    #[test]
    fn an_entry_merges_with_one_release_and_never_without_a_version() {
        let releases = [
            release("b", "web", "web", "1.0.0", "2026-12-01"),
            release("a", "web", "web", "1.0.0", "2026-12-01"),
        ];
        let entries = [
            entry("REL-1", "web", Some("1.0.0"), "2026-12-01", Some("plan")),
            entry("REL-2", "web", None, "2026-12-01", Some("plan")),
        ];
        let rows = calendar_rows(&entries, &releases);
        assert_eq!(rows.len(), 3, "{rows:#?}");
        let with_entry: Vec<_> = rows.iter().filter(|r| r.entry.is_some()).collect();
        assert_eq!(with_entry.len(), 2);
        let merged = rows
            .iter()
            .find(|r| r.entry.as_deref() == Some("REL-1"))
            .unwrap();
        assert_eq!(merged.release.as_deref(), Some("a/web"));
        let alone = rows
            .iter()
            .find(|r| r.entry.as_deref() == Some("REL-2"))
            .unwrap();
        assert_eq!(alone.release, None);
    }

    #[test]
    fn rows_are_in_date_order_with_undated_last() {
        let mut undated = release("ns", "x", "x", "1.0.0", "2026-01-01");
        undated.spec.target_date = None;
        let releases = [
            undated,
            release("ns", "late", "late", "1.0.0", "2026-12-31"),
            release("ns", "early", "early", "1.0.0", "2026-01-02"),
        ];
        let rows = calendar_rows(&[], &releases);
        let order: Vec<_> = rows.iter().map(|r| r.application.as_str()).collect();
        assert_eq!(order, ["early", "late", "x"]);
        assert_eq!(rows[2].target_day(), None);
    }
}
