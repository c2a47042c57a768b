//! Release notes: the Markdown relman publishes before production, rendered from the release
//! guide's template, and the ConfigMap that holds it. Pure: no I/O.
//!
//! The template follows the guide: release name and number, date, summary, notable changes,
//! migration steps, known issues, and the rollback plan (the guide publishes notes and rollback
//! plans together). The controller writes the result into the ConfigMap
//! [`config_map_name`] under [`NOTES_KEY`] once the release is under way (see
//! [`publish_due`]), so the notes are out before the production stage starts.

use chrono::NaiveDate;

use crate::api::release::{ReleaseNotes, ReleasePhase};
use crate::api::{Release, ReleaseStatus};
use crate::plan::jobs::fit_name;

/// The key of the rendered Markdown in the notes ConfigMap.
pub const NOTES_KEY: &str = "release-notes.md";

/// The longest name Kubernetes accepts for a ConfigMap (a DNS subdomain).
const MAX_CONFIG_MAP_NAME: usize = 253;

/// What a Major release lists as its only migration step to say that it needs none.
const NO_MIGRATION: &str = "none";

/// The name of the ConfigMap holding a release's notes: `<release>-notes`, shortened with a
/// hash in the (unlikely) case that is longer than a ConfigMap name may be.
pub fn config_map_name(release: &str) -> String {
    let name = format!("{release}-notes");
    if name.len() <= MAX_CONFIG_MAP_NAME {
        name
    } else {
        fit_name(&name)
    }
}

/// Whether `steps` says that no migration is needed: empty, or the single item `none`.
pub fn states_no_migration(steps: &[String]) -> bool {
    let listed: Vec<&str> = steps
        .iter()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .collect();
    match listed.as_slice() {
        [] => true,
        [only] => only
            .trim_end_matches('.')
            .eq_ignore_ascii_case(NO_MIGRATION),
        _ => false,
    }
}

/// Whether the notes are due for publication given the status the controller is about to
/// write: once a stage has started (so always before production, the last stage), and not
/// while the release is being reverted or has stopped.
pub fn publish_due(status: &ReleaseStatus) -> bool {
    let started = status.has_started();
    let stopped = matches!(
        status.phase,
        Some(ReleasePhase::RollingBack | ReleasePhase::RolledBack | ReleasePhase::Failed)
    );
    started && !stopped
}

/// The date the notes carry: `spec.targetDate` when set, else `published` (the day the release
/// started its first stage, so the notes do not change from one day to the next).
pub fn notes_date(release: &Release, published: NaiveDate) -> String {
    release
        .spec
        .target_date
        .clone()
        .unwrap_or_else(|| published.format("%Y-%m-%d").to_string())
}

/// Renders the release notes of `release` as Markdown, dated `date`.
pub fn render(release: &Release, date: &str) -> String {
    let spec = &release.spec;
    let notes = spec.notes.clone().unwrap_or_default();
    let name = release.metadata.name.as_deref().unwrap_or_default();
    let mut out = format!("# {} {} release notes\n\n", spec.application, spec.version);
    out += &format!("- **Release:** {name}\n");
    out += &format!(
        "- **Version:** {} ({} release)\n",
        spec.version, spec.release_type
    );
    out += &format!("- **Date:** {}\n", escape_inline(date));
    out += &format!("- **Owner:** {}\n", escape_inline(&spec.owner));
    out += &section("Summary", &summary(&notes));
    out += &section(
        "Notable changes",
        &bullets(&notes.notable_changes, "No notable changes."),
    );
    out += &section("Migration steps", &migration_steps(&notes));
    out += &section("Known issues", &bullets(&notes.known_issues, "None known."));
    out += &section(
        "Rollback plan",
        spec.rollback_plan
            .as_deref()
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .unwrap_or("Not documented."),
    );
    out
}

fn section(title: &str, body: &str) -> String {
    format!("\n## {title}\n\n{}\n", body.trim_end())
}

fn summary(notes: &ReleaseNotes) -> String {
    notes
        .summary
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .unwrap_or("No summary yet.")
        .to_owned()
}

fn migration_steps(notes: &ReleaseNotes) -> String {
    if states_no_migration(&notes.migration_steps) {
        "None.".to_owned()
    } else {
        numbered(&notes.migration_steps)
    }
}

/// A Markdown bullet list of the non-empty `items`, or `empty` when there are none. Lines after
/// the first of an item are indented so they stay in the item.
fn bullets(items: &[String], empty: &str) -> String {
    let items: Vec<&str> = non_empty(items);
    if items.is_empty() {
        return empty.to_owned();
    }
    items
        .iter()
        .map(|item| format!("- {}\n", indent_continuation(item, 2)))
        .collect()
}

/// A numbered Markdown list of the non-empty `items`: migration steps are done in order.
fn numbered(items: &[String]) -> String {
    non_empty(items)
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let marker = format!("{}. ", i + 1);
            format!("{marker}{}\n", indent_continuation(item, marker.len()))
        })
        .collect()
}

fn non_empty(items: &[String]) -> Vec<&str> {
    items
        .iter()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .collect()
}

fn indent_continuation(text: &str, width: usize) -> String {
    let pad = " ".repeat(width);
    text.lines()
        .enumerate()
        .map(|(i, line)| {
            if i == 0 || line.trim().is_empty() {
                line.trim_end().to_owned()
            } else {
                format!("{pad}{}", line.trim_end())
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `text` on one line with Markdown's inline markup characters escaped: for values that are
/// data, not prose (the owner, the date).
fn escape_inline(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
    {
        if matches!(
            c,
            '\\' | '*' | '_' | '`' | '[' | ']' | '<' | '>' | '#' | '|'
        ) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::api::release::{StagePhase, StageStatus};
    use serde_json::json;

    fn release(notes: serde_json::Value, extra: serde_json::Value) -> Release {
        let mut spec = json!({
            "application": "checkout",
            "version": "2.4.0",
            "type": "Minor",
            "owner": "team_payments",
            "rollbackPlan": "https://wiki.example/checkout/rollback",
            "notes": notes,
            "images": [{"container": "api", "image": "checkout:2.4.0"}],
            "stages": [{"name": "production", "deployments": ["api"]}]
        });
        if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
            spec.extend(extra.clone());
        }
        serde_json::from_value(json!({
            "apiVersion": "relman.io/v1alpha1",
            "kind": "Release",
            "metadata": {"name": "checkout-2-4-0", "namespace": "shop"},
            "spec": spec
        }))
        .unwrap()
    }

    fn day(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn renders_every_section_of_the_template() {
        let release = release(
            json!({
                "summary": "One-click payments.\n\nAnd a faster basket.",
                "notableChanges": ["One-click payments", "Basket loads 40% faster"],
                "migrationSteps": ["Run `migrate --to 2.4`", "Restart the workers\nafter the migration"],
                "knownIssues": ["Safari 15 shows the old icon"]
            }),
            json!({"targetDate": "2026-12-01"}),
        );
        let expected = "\
# checkout 2.4.0 release notes

- **Release:** checkout-2-4-0
- **Version:** 2.4.0 (Minor release)
- **Date:** 2026-12-01
- **Owner:** team\\_payments

## Summary

One-click payments.

And a faster basket.

## Notable changes

- One-click payments
- Basket loads 40% faster

## Migration steps

1. Run `migrate --to 2.4`
2. Restart the workers
   after the migration

## Known issues

- Safari 15 shows the old icon

## Rollback plan

https://wiki.example/checkout/rollback
";
        assert_eq!(render(&release, "2026-12-01"), expected);
    }

    #[test]
    fn empty_sections_say_so() {
        let release = release(json!({"summary": "  "}), json!({"rollbackPlan": null}));
        let notes = render(&release, "2026-01-02");
        for line in [
            "No summary yet.",
            "No notable changes.",
            "## Migration steps\n\nNone.",
            "None known.",
            "Not documented.",
        ] {
            assert!(notes.contains(line), "{line:?} in:\n{notes}");
        }
    }

    #[test]
    fn a_stated_none_renders_as_none() {
        let release = release(
            json!({"summary": "s", "migrationSteps": ["None."]}),
            json!({}),
        );
        assert!(render(&release, "2026-01-02").contains("## Migration steps\n\nNone.\n"));
    }

    #[test]
    fn the_date_is_the_target_date_or_the_day_the_release_started() {
        let planned = release(json!({}), json!({"targetDate": "2026-12-01"}));
        assert_eq!(notes_date(&planned, day("2026-11-20")), "2026-12-01");
        let unplanned = release(json!({}), json!({}));
        assert_eq!(notes_date(&unplanned, day("2026-11-20")), "2026-11-20");
    }

    #[test]
    fn migration_steps_are_listed_or_stated_as_none() {
        let steps = |items: &[&str]| items.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let listed = |items: &[&str]| {
            ReleaseNotes {
                migration_steps: steps(items),
                ..Default::default()
            }
            .lists_migration_steps()
        };
        assert!(!listed(&[]));
        assert!(!listed(&["  "]));
        assert!(listed(&["none"]));
        assert!(listed(&["Run the migration"]));
        assert!(states_no_migration(&steps(&["NONE"])));
        assert!(states_no_migration(&steps(&[])));
        assert!(!states_no_migration(&steps(&["none", "Restart"])));
        assert!(!states_no_migration(&steps(&["Run the migration"])));
    }

    #[test]
    fn config_map_names_fit() {
        assert_eq!(config_map_name("checkout-2-4-0"), "checkout-2-4-0-notes");
        let long = "a".repeat(250);
        let name = config_map_name(&long);
        assert!(name.len() <= MAX_CONFIG_MAP_NAME);
        assert_eq!(name, config_map_name(&long), "deterministic");
    }

    #[test]
    fn notes_are_due_once_a_stage_started_and_not_while_reverting() {
        let stage = |phase| StageStatus {
            name: "staging".into(),
            phase: Some(phase),
            ..StageStatus::default()
        };
        let status = |phase, stages: Vec<StageStatus>| ReleaseStatus {
            phase: Some(phase),
            stages,
            ..ReleaseStatus::default()
        };
        assert!(!publish_due(&status(
            ReleasePhase::Pending,
            vec![stage(StagePhase::Pending)]
        )));
        assert!(publish_due(&status(
            ReleasePhase::Progressing,
            vec![stage(StagePhase::BackingUp)]
        )));
        assert!(publish_due(&status(
            ReleasePhase::Succeeded,
            vec![stage(StagePhase::Verified)]
        )));
        assert!(!publish_due(&status(
            ReleasePhase::RolledBack,
            vec![stage(StagePhase::RolledBack)]
        )));
    }

    #[test]
    fn inline_values_cannot_inject_markup() {
        assert_eq!(escape_inline("a*b\n# c|d"), "a\\*b \\# c\\|d");
    }
}
