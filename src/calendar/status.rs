//! Whether a release type may go out at an instant, why, and when that next changes.
//!
//! The rules: a release may go out when some window is open (or the calendar has no windows)
//! and no freeze that denies its type holds. Deny beats allow. Overlapping or touching windows
//! merge, so the calendar stays open until the last of them ends; a freeze that ends inside a
//! window opens the calendar at the freeze's end. A freeze whose `allowTypes` lists the type
//! does not close the calendar for it; a freeze with a start and no end holds forever.
//!
//! The next change is searched among the boundaries of window and freeze occurrences (never
//! minute by minute), first 8 days ahead, then 64, then [`LOOKAHEAD_DAYS`]. A change further
//! away is reported as none (`next_open`/`next_close` = `None`); callers that must notice it
//! re-check at least every [`LOOKAHEAD_DAYS`] days.

use std::fmt;

use chrono::{DateTime, TimeDelta, Utc};

use crate::api::release::ReleaseType;

use super::compiled::{CompiledCalendar, MAX_OCCURRENCES_PER_QUERY};
use super::local::format_local;
use super::schedule::{FOREVER, Span, covering, merge};

/// How far ahead a status looks for the next change, in days.
pub const LOOKAHEAD_DAYS: i64 = 400;

/// The horizons tried in turn: most changes are found in the first.
const SEARCH_HORIZON_DAYS: [i64; 3] = [8, 64, LOOKAHEAD_DAYS];

/// Why the calendar is open or closed for a release type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WindowReason {
    /// A window is open and no freeze holds.
    InWindow,
    /// The calendar has no windows, so it is open whenever no freeze holds.
    NoWindows,
    /// No window is open.
    WindowClosed,
    /// A freeze holds that does not let this release type through.
    Frozen,
    /// A freeze holds, but it lets this release type through (and a window is open, if any).
    FrozenButAllowed,
}

impl WindowReason {
    /// The CamelCase reason for conditions and the calendar's status.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InWindow => "InWindow",
            Self::NoWindows => "NoWindows",
            Self::WindowClosed => "WindowClosed",
            Self::Frozen => "Frozen",
            Self::FrozenButAllowed => "FrozenButAllowed",
        }
    }
}

impl fmt::Display for WindowReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether a release type may go out at an instant, and when that next changes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WindowStatus {
    /// Whether a release of the type asked about may go out now.
    pub open: bool,
    /// Why.
    pub reason: WindowReason,
    /// For people: the window or freeze in force and the next change in the calendar's time
    /// zone, e.g. `closed until Tue 2026-12-01 09:00 Europe/Berlin (window business-hours)`.
    pub message: String,
    /// When closed: the first instant it is open for this type. `None` when it does not open
    /// within the lookahead, e.g. during an emergency stop.
    pub next_open: Option<DateTime<Utc>>,
    /// When open: the first instant it is closed for this type. `None` when it does not close
    /// within the lookahead.
    pub next_close: Option<DateTime<Utc>>,
}

impl WindowStatus {
    /// When `open` next flips: `next_close` when open, `next_open` when closed. Requeue then.
    pub fn next_change(&self) -> Option<DateTime<Utc>> {
        if self.open {
            self.next_close
        } else {
            self.next_open
        }
    }
}

impl CompiledCalendar {
    /// Whether a release of `release_type` may go out at `now`, why, and until when.
    pub fn status_at(&self, now: DateTime<Utc>, release_type: ReleaseType) -> WindowStatus {
        let [first, wider @ ..] = SEARCH_HORIZON_DAYS;
        let mut timeline = Timeline::build(self, now, first, release_type);
        let mut change = timeline.next_change();
        for days in wider {
            if change.is_some() || timeline.cannot_change() {
                break;
            }
            timeline = Timeline::build(self, now, days, release_type);
            change = timeline.next_change();
        }
        Describer {
            calendar: self,
            timeline: &timeline,
            release_type,
        }
        .status(change)
    }
}

/// The spans of one window or freeze, with its index in the calendar.
struct Tagged {
    index: usize,
    spans: Vec<Span>,
}

impl Tagged {
    fn covers(&self, instant: DateTime<Utc>) -> bool {
        self.spans.iter().any(|span| span.contains(instant))
    }
}

/// Windows and denying freezes from `now` to a horizon, for one release type.
struct Timeline {
    now: DateTime<Utc>,
    has_windows: bool,
    windows: Vec<Tagged>,
    window_union: Vec<Span>,
    denying: Vec<Tagged>,
    deny_union: Vec<Span>,
    /// Changes before this instant are known: the horizon, or less when a rule had more
    /// occurrences than a query may examine.
    known_until: DateTime<Utc>,
}

impl Timeline {
    fn build(
        calendar: &CompiledCalendar,
        now: DateTime<Utc>,
        days: i64,
        release_type: ReleaseType,
    ) -> Self {
        let horizon = TimeDelta::try_days(days)
            .and_then(|ahead| now.checked_add_signed(ahead))
            .unwrap_or(FOREVER);
        let mut known_until = horizon;
        let mut collect = |index: usize, schedule: &super::compiled::Schedule| {
            let coverage = schedule.spans(now, horizon, MAX_OCCURRENCES_PER_QUERY);
            known_until = known_until.min(coverage.complete_until);
            Tagged {
                index,
                spans: coverage.spans,
            }
        };
        let windows: Vec<Tagged> = calendar
            .windows
            .iter()
            .enumerate()
            .map(|(index, window)| collect(index, &window.schedule))
            .collect();
        let denying: Vec<Tagged> = calendar
            .freezes
            .iter()
            .enumerate()
            .filter(|(_, freeze)| freeze.denies(release_type))
            .map(|(index, freeze)| collect(index, &freeze.schedule))
            .collect();
        Self {
            now,
            has_windows: !calendar.windows.is_empty(),
            window_union: union(&windows),
            deny_union: union(&denying),
            windows,
            denying,
            known_until,
        }
    }

    fn is_open_at(&self, instant: DateTime<Utc>) -> bool {
        let in_window = !self.has_windows || covering(&self.window_union, instant).is_some();
        in_window && covering(&self.deny_union, instant).is_none()
    }

    /// The first boundary after `now` where openness flips, if one is known.
    fn next_change(&self) -> Option<DateTime<Utc>> {
        let open_now = self.is_open_at(self.now);
        let mut boundaries: Vec<DateTime<Utc>> = self
            .window_union
            .iter()
            .chain(&self.deny_union)
            .flat_map(|span| [span.start, span.end])
            .filter(|boundary| self.now < *boundary && *boundary < self.known_until)
            .collect();
        boundaries.sort_unstable();
        boundaries.dedup();
        boundaries
            .into_iter()
            .find(|boundary| self.is_open_at(*boundary) != open_now)
    }

    /// Whether looking further ahead cannot find a change.
    fn cannot_change(&self) -> bool {
        self.stopped_forever() || (!self.has_windows && self.denying.is_empty())
    }

    /// Whether a freeze without an end holds now.
    fn stopped_forever(&self) -> bool {
        covering(&self.deny_union, self.now).is_some_and(|span| span.end == FOREVER)
    }
}

fn union(tagged: &[Tagged]) -> Vec<Span> {
    merge(
        tagged
            .iter()
            .flat_map(|tagged| tagged.spans.iter().copied())
            .collect(),
    )
}

/// Builds a [`WindowStatus`] and its message from a timeline.
struct Describer<'a> {
    calendar: &'a CompiledCalendar,
    timeline: &'a Timeline,
    release_type: ReleaseType,
}

impl Describer<'_> {
    fn status(&self, change: Option<DateTime<Utc>>) -> WindowStatus {
        if self.timeline.is_open_at(self.timeline.now) {
            self.open_status(change)
        } else {
            self.closed_status(change)
        }
    }

    fn open_status(&self, next_close: Option<DateTime<Utc>>) -> WindowStatus {
        let now = self.timeline.now;
        let allowing = self.allowing_freezes_at(now);
        let reason = if !allowing.is_empty() {
            WindowReason::FrozenButAllowed
        } else if self.timeline.has_windows {
            WindowReason::InWindow
        } else {
            WindowReason::NoWindows
        };
        let mut message = if self.timeline.has_windows {
            format!("open in window {}", self.window_names_at(now).join(", "))
        } else {
            "open: the calendar has no windows".to_owned()
        };
        if !allowing.is_empty() {
            message.push_str(&format!(
                "; freeze {} lets {} releases through",
                allowing.join(", "),
                self.release_type
            ));
        }
        match next_close {
            Some(close) => message.push_str(&format!(
                " until {} ({})",
                self.local(close),
                self.what_closes_at(close)
            )),
            None if self.timeline.cannot_change() => {}
            None => message.push_str(&format!(" with no close in the next {LOOKAHEAD_DAYS} days")),
        }
        WindowStatus {
            open: true,
            reason,
            message,
            next_open: None,
            next_close,
        }
    }

    fn closed_status(&self, next_open: Option<DateTime<Utc>>) -> WindowStatus {
        let now = self.timeline.now;
        let freezes = self.denying_freezes_at(now);
        let (reason, mut message) = if freezes.is_empty() {
            (WindowReason::WindowClosed, "closed".to_owned())
        } else {
            (
                WindowReason::Frozen,
                format!("frozen by {}", freezes.join(", ")),
            )
        };
        match next_open {
            Some(open) => message.push_str(&format!(
                " until {} ({})",
                self.local(open),
                self.what_opens_at(open)
            )),
            None if self.timeline.stopped_forever() => {
                message.push_str(" until the freeze is removed")
            }
            None => message.push_str(&format!(
                " with no opening in the next {LOOKAHEAD_DAYS} days"
            )),
        }
        WindowStatus {
            open: false,
            reason,
            message,
            next_open,
            next_close: None,
        }
    }

    fn local(&self, instant: DateTime<Utc>) -> String {
        format_local(self.calendar.time_zone, instant)
    }

    /// Names of the windows open at `instant`.
    fn window_names_at(&self, instant: DateTime<Utc>) -> Vec<String> {
        let names = self
            .timeline
            .windows
            .iter()
            .filter(|tagged| tagged.covers(instant))
            .filter_map(|tagged| self.calendar.windows.get(tagged.index))
            .map(|window| window.name.clone());
        distinct(names)
    }

    /// Names (with reasons) of the freezes denying this type at `instant`.
    fn denying_freezes_at(&self, instant: DateTime<Utc>) -> Vec<String> {
        let names = self
            .timeline
            .denying
            .iter()
            .filter(|tagged| tagged.covers(instant))
            .filter_map(|tagged| self.calendar.freezes.get(tagged.index))
            .map(|freeze| match &freeze.reason {
                Some(reason) => format!("{} ({reason})", freeze.name),
                None => freeze.name.clone(),
            });
        distinct(names)
    }

    /// Names of the freezes holding at `instant` that let this type through.
    fn allowing_freezes_at(&self, instant: DateTime<Utc>) -> Vec<String> {
        let probe_end = instant
            .checked_add_signed(TimeDelta::nanoseconds(1))
            .unwrap_or(FOREVER);
        let names = self
            .calendar
            .freezes
            .iter()
            .filter(|freeze| !freeze.denies(self.release_type))
            .filter(|freeze| {
                let coverage = freeze
                    .schedule
                    .spans(instant, probe_end, MAX_OCCURRENCES_PER_QUERY);
                coverage.spans.iter().any(|span| span.contains(instant))
            })
            .map(|freeze| freeze.name.clone());
        distinct(names)
    }

    /// What makes the calendar close at `instant`: a freeze starting or a window ending.
    fn what_closes_at(&self, instant: DateTime<Utc>) -> String {
        let starting = self.freeze_names_where(|span| span.start == instant);
        if !starting.is_empty() {
            return format!("freeze {} starts", starting.join(", "));
        }
        let ending = self.window_names_where(|span| span.end == instant);
        format!("window {} ends", ending.join(", "))
    }

    /// What is open at `instant`: the window, or the freeze that ends when there are none.
    fn what_opens_at(&self, instant: DateTime<Utc>) -> String {
        if self.timeline.has_windows {
            return format!("window {}", self.window_names_at(instant).join(", "));
        }
        let ending = self.freeze_names_where(|span| span.end == instant);
        format!("freeze {} ends", ending.join(", "))
    }

    fn freeze_names_where(&self, matches: impl Fn(&Span) -> bool) -> Vec<String> {
        let names = self
            .timeline
            .denying
            .iter()
            .filter(|tagged| tagged.spans.iter().any(&matches))
            .filter_map(|tagged| self.calendar.freezes.get(tagged.index))
            .map(|freeze| freeze.name.clone());
        distinct(names)
    }

    fn window_names_where(&self, matches: impl Fn(&Span) -> bool) -> Vec<String> {
        let names = self
            .timeline
            .windows
            .iter()
            .filter(|tagged| tagged.spans.iter().any(&matches))
            .filter_map(|tagged| self.calendar.windows.get(tagged.index))
            .map(|window| window.name.clone());
        distinct(names)
    }
}

/// The names in order, without repeats.
fn distinct(names: impl Iterator<Item = String>) -> Vec<String> {
    let mut seen = Vec::new();
    for name in names {
        if !seen.contains(&name) {
            seen.push(name);
        }
    }
    seen
}
