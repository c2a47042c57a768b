//! What the calendar controller's watches have seen, shared with the HTTP server's feed.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use kube::runtime::reflector::{ObjectRef, Store};

use crate::api::{Release, ReleaseCalendar};
use crate::calendar::CompiledCalendar;
use crate::calendar::ical::{self, Feed};

use crate::calendar::board::rows::calendar_rows;

/// How far back the feed lists window and freeze occurrences.
pub const FEED_DAYS_BACK: i64 = 30;
/// How far ahead the feed lists window and freeze occurrences.
pub const FEED_DAYS_AHEAD: i64 = 180;

/// Read-only views of the calendars and Releases the calendar controller watches. Cheap to
/// clone; the controller keeps them current while it runs.
#[derive(Clone)]
pub struct CalendarCache {
    pub(super) calendars: Store<ReleaseCalendar>,
    pub(super) releases: Store<Release>,
}

impl CalendarCache {
    /// Waits up to `timeout` until both watches have listed their objects once.
    pub async fn wait_until_ready(&self, timeout: Duration) -> bool {
        let both = async {
            self.calendars.wait_until_ready().await.is_ok()
                && self.releases.wait_until_ready().await.is_ok()
        };
        tokio::time::timeout(timeout, both).await.unwrap_or(false)
    }

    /// The calendar called `name`, if watched.
    pub fn calendar(&self, name: &str) -> Option<Arc<ReleaseCalendar>> {
        self.calendars.get(&ObjectRef::new(name))
    }

    /// The Releases that name the calendar `name` in `spec.calendar`.
    pub fn releases_of(&self, name: &str) -> Vec<Arc<Release>> {
        self.releases
            .state_filter(|release| release.spec.calendar.as_deref() == Some(name))
    }

    /// The names of the calendars whose status lists the Release `key` (`namespace/name`).
    pub fn calendars_listing(&self, key: &str) -> Vec<String> {
        self.calendars
            .state_filter(|calendar| {
                calendar.status.as_ref().is_some_and(|status| {
                    status
                        .releases
                        .iter()
                        .any(|row| row.release.as_deref() == Some(key))
                })
            })
            .iter()
            .filter_map(|calendar| calendar.metadata.name.clone())
            .collect()
    }

    /// The iCalendar feed of the calendar `name` at `now`: its releases and entries, and the
    /// occurrences of its windows and freezes from [`FEED_DAYS_BACK`] days ago to
    /// [`FEED_DAYS_AHEAD`] days ahead. An invalid calendar's feed lists only the releases.
    /// `None` when no calendar of that name is watched; wait for
    /// [`CalendarCache::wait_until_ready`] first, or a calendar may be missing because it was
    /// not listed yet.
    pub fn feed(&self, name: &str, now: DateTime<Utc>) -> Option<String> {
        let calendar = self.calendar(name)?;
        let releases = self.releases_of(name);
        let rows = calendar_rows(
            &calendar.spec.entries,
            releases.iter().map(|release| release.as_ref()),
        );
        let feed_releases: Vec<_> = rows.iter().map(|row| row.to_feed()).collect();
        let from = now - TimeDelta::days(FEED_DAYS_BACK);
        let to = now + TimeDelta::days(FEED_DAYS_AHEAD);
        let intervals = CompiledCalendar::compile(&calendar.spec)
            .map(|compiled| compiled.occurrences(from, to))
            .unwrap_or_default();
        Some(ical::render(&Feed {
            calendar: name,
            time_zone: &calendar.spec.time_zone,
            generated_at: now,
            range_end: to,
            releases: &feed_releases,
            intervals: &intervals,
        }))
    }
}
