//! A `ReleaseCalendarSpec` checked and turned into schedules: [`CompiledCalendar`].

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use crate::api::calendar::{Freeze, ReleaseCalendarSpec, Window};
use crate::api::release::ReleaseType;

use super::error::CalendarError;
use super::local::{parse_time_zone, parse_written_date_time};
use super::recurrence::{Recurrence, RecurrenceFields};
use super::schedule::{Coverage, FOREVER, Span};
use super::weekly::WeeklySchedule;

/// The most occurrences one window or freeze may contribute to one query (a status or an
/// [`CompiledCalendar::occurrences`] call). A daily window has about 400 in the lookahead; only
/// rules that recur every few minutes reach it, and then a status looks less far ahead and
/// `occurrences` returns the first ones.
pub const MAX_OCCURRENCES_PER_QUERY: usize = 20_000;

/// A validated calendar, ready to answer "is it open now, and until when?".
///
/// Build it once per calendar generation with [`CompiledCalendar::compile`]; it holds no clock,
/// so every question takes `now` as a parameter.
#[derive(Clone, Debug)]
pub struct CompiledCalendar {
    pub(crate) time_zone: Tz,
    pub(crate) windows: Vec<CompiledWindow>,
    pub(crate) freezes: Vec<CompiledFreeze>,
}

/// A window with its schedule.
#[derive(Clone, Debug)]
pub(crate) struct CompiledWindow {
    pub(crate) name: String,
    pub(crate) schedule: Schedule,
}

/// A freeze with its schedule.
#[derive(Clone, Debug)]
pub(crate) struct CompiledFreeze {
    pub(crate) name: String,
    pub(crate) reason: Option<String>,
    pub(crate) allow_types: Vec<ReleaseType>,
    pub(crate) schedule: Schedule,
}

impl CompiledFreeze {
    /// Whether this freeze stops releases of `release_type`.
    pub(crate) fn denies(&self, release_type: ReleaseType) -> bool {
        !self.allow_types.contains(&release_type)
    }
}

/// Whether an [`Interval`] is a window (releases may go out) or a freeze (they may not).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum IntervalKind {
    /// An occurrence of a window.
    Window,
    /// An occurrence of a freeze.
    Freeze,
}

/// One occurrence of a window or freeze, for the iCalendar feed and the kubectl plugin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interval {
    /// Window or freeze.
    pub kind: IntervalKind,
    /// The window's or freeze's name.
    pub name: String,
    /// When it starts.
    pub start: DateTime<Utc>,
    /// When it ends (exclusive); `None` for a freeze with no end (an emergency stop).
    pub end: Option<DateTime<Utc>>,
    /// A freeze's reason.
    pub reason: Option<String>,
    /// The release types a freeze lets through; empty for windows.
    pub allow_types: Vec<ReleaseType>,
}

impl CompiledCalendar {
    /// Checks a calendar spec and compiles its time zone, windows and freezes. The error names
    /// the first field at fault and says how to fix it. `entries` are not looked at.
    pub fn compile(spec: &ReleaseCalendarSpec) -> Result<Self, CalendarError> {
        let time_zone = parse_time_zone("spec.timeZone", &spec.time_zone)?;
        let windows = spec
            .windows
            .iter()
            .enumerate()
            .map(|(index, window)| {
                compile_window(&format!("spec.windows[{index}]"), window, time_zone)
            })
            .collect::<Result<_, _>>()?;
        let freezes = spec
            .freezes
            .iter()
            .enumerate()
            .map(|(index, freeze)| {
                compile_freeze(&format!("spec.freezes[{index}]"), freeze, time_zone)
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            time_zone,
            windows,
            freezes,
        })
    }

    /// The calendar's time zone.
    pub fn time_zone(&self) -> Tz {
        self.time_zone
    }

    /// Every occurrence of a window or freeze that overlaps `[from, to)`, ordered by start.
    /// Occurrences are listed as written, not merged. Each window or freeze contributes at most
    /// [`MAX_OCCURRENCES_PER_QUERY`] occurrences.
    pub fn occurrences(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<Interval> {
        if to <= from {
            return Vec::new();
        }
        let windows = self.windows.iter().flat_map(|window| {
            let coverage = window.schedule.spans(from, to, MAX_OCCURRENCES_PER_QUERY);
            coverage.spans.into_iter().map(|span| Interval {
                kind: IntervalKind::Window,
                name: window.name.clone(),
                start: span.start,
                end: Some(span.end),
                reason: None,
                allow_types: Vec::new(),
            })
        });
        let freezes = self.freezes.iter().flat_map(|freeze| {
            let coverage = freeze.schedule.spans(from, to, MAX_OCCURRENCES_PER_QUERY);
            coverage.spans.into_iter().map(|span| Interval {
                kind: IntervalKind::Freeze,
                name: freeze.name.clone(),
                start: span.start,
                end: (span.end != FOREVER).then_some(span.end),
                reason: freeze.reason.clone(),
                allow_types: freeze.allow_types.clone(),
            })
        });
        let mut intervals: Vec<Interval> = windows.chain(freezes).collect();
        intervals.sort_by(|a, b| (a.start, a.kind, &a.name).cmp(&(b.start, b.kind, &b.name)));
        intervals
    }
}

fn compile_window(path: &str, window: &Window, tz: Tz) -> Result<CompiledWindow, CalendarError> {
    let schedule = match (&window.rrule, &window.weekly) {
        (Some(rrule), None) => {
            let duration = window.duration.as_deref().ok_or_else(|| {
                CalendarError::shape(
                    &format!("{path}.duration"),
                    "a window with an rrule needs a duration, e.g. 6h",
                )
            })?;
            let fields = RecurrenceFields {
                path,
                rrule,
                start: window.start.as_deref(),
                duration,
            };
            Schedule::Recurring(Box::new(Recurrence::compile(&fields, tz)?))
        }
        (None, Some(weekly)) => {
            if window.duration.is_some() {
                return Err(CalendarError::shape(
                    &format!("{path}.duration"),
                    "only a window with an rrule takes a duration; a weekly range ends at weekly.end",
                ));
            }
            if window.start.is_some() {
                return Err(CalendarError::shape(
                    &format!("{path}.start"),
                    "only a window with an rrule takes a start; a weekly range starts at weekly.start",
                ));
            }
            Schedule::Weekly(WeeklySchedule::compile(
                &format!("{path}.weekly"),
                weekly,
                tz,
            )?)
        }
        (Some(_), Some(_)) => {
            return Err(CalendarError::shape(
                path,
                "set either rrule (with duration) or weekly, not both",
            ));
        }
        (None, None) => {
            return Err(CalendarError::shape(
                path,
                "set an rrule with a duration (e.g. FREQ=WEEKLY;BYDAY=TU;BYHOUR=9 and 6h) or a \
                 weekly range (e.g. days [Mon, Tue], 09:00 to 17:00)",
            ));
        }
    };
    Ok(CompiledWindow {
        name: window.name.clone(),
        schedule,
    })
}

fn compile_freeze(path: &str, freeze: &Freeze, tz: Tz) -> Result<CompiledFreeze, CalendarError> {
    let schedule = match (&freeze.rrule, &freeze.start) {
        (Some(rrule), start) => {
            if freeze.end.is_some() {
                return Err(CalendarError::shape(
                    &format!("{path}.end"),
                    "a recurring freeze ends each occurrence after its duration; to stop the \
                     recurrence, put UNTIL in the rrule",
                ));
            }
            let duration = freeze.duration.as_deref().ok_or_else(|| {
                CalendarError::shape(
                    &format!("{path}.duration"),
                    "a freeze with an rrule needs a duration, e.g. 48h",
                )
            })?;
            let fields = RecurrenceFields {
                path,
                rrule,
                start: start.as_deref(),
                duration,
            };
            Schedule::Recurring(Box::new(Recurrence::compile(&fields, tz)?))
        }
        (None, Some(start)) => {
            if freeze.duration.is_some() {
                return Err(CalendarError::shape(
                    &format!("{path}.duration"),
                    "only a freeze with an rrule takes a duration; give a one-off freeze an end",
                ));
            }
            Schedule::Once(one_off_freeze(path, start, freeze.end.as_deref(), tz)?)
        }
        (None, None) => {
            return Err(CalendarError::shape(
                path,
                "set a start (with an optional end) or an rrule with a duration",
            ));
        }
    };
    Ok(CompiledFreeze {
        name: freeze.name.clone(),
        reason: freeze.reason.clone(),
        allow_types: freeze.allow_types.clone(),
        schedule,
    })
}

/// A freeze from `start` to `end` (exclusive), or forever without an end.
fn one_off_freeze(
    path: &str,
    start: &str,
    end: Option<&str>,
    tz: Tz,
) -> Result<Span, CalendarError> {
    let start_field = format!("{path}.start");
    let start_instant = parse_written_date_time(&start_field, start)?
        .instant(tz)
        .ok_or_else(|| CalendarError::date_time(&start_field, "the start is out of range"))?;
    let Some(end) = end else {
        return Ok(Span {
            start: start_instant,
            end: FOREVER,
        });
    };
    let end_field = format!("{path}.end");
    let end_instant = parse_written_date_time(&end_field, end)?
        .instant(tz)
        .ok_or_else(|| CalendarError::date_time(&end_field, "the end is out of range"))?;
    if end_instant <= start_instant {
        return Err(CalendarError::date_time(
            &end_field,
            format!(
                "{end:?} is not after start {start:?}; the end is exclusive, so a one-day freeze on 2026-12-24 ends 2026-12-25"
            ),
        ));
    }
    Ok(Span {
        start: start_instant,
        end: end_instant,
    })
}

/// When a window is open or a freeze holds.
#[derive(Clone, Debug)]
pub(crate) enum Schedule {
    /// An RRULE with a duration.
    Recurring(Box<Recurrence>),
    /// Days of the week with a local time range.
    Weekly(WeeklySchedule),
    /// One span: a freeze with a start and an optional end.
    Once(Span),
}

impl Schedule {
    /// The spans overlapping `[from, to)`, examining at most `budget` occurrences.
    pub(crate) fn spans(&self, from: DateTime<Utc>, to: DateTime<Utc>, budget: usize) -> Coverage {
        match self {
            Self::Recurring(recurrence) => recurrence.spans(from, to, budget),
            Self::Weekly(weekly) => weekly.spans(from, to, budget),
            Self::Once(span) => {
                let spans = span.overlaps(from, to).then_some(*span);
                Coverage::complete(spans.into_iter().collect())
            }
        }
    }
}
