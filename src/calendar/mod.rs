//! Deployment-window math: windows, freezes and time zones. Pure: no I/O, no clock.
//!
//! [`CompiledCalendar::compile`] checks a [`ReleaseCalendarSpec`](crate::api::ReleaseCalendarSpec)
//! once; [`CompiledCalendar::status_at`] then answers whether a release type may go out at an
//! instant, why, and when that next changes, and [`CompiledCalendar::occurrences`] lists the
//! windows and freezes in a range for the iCalendar feed and the kubectl plugin.
//!
//! - Time zones are IANA names; windows keep their local time across daylight-saving changes,
//!   and local times that do not exist or exist twice follow RFC 5545 (see below).
//! - Deny beats allow: a freeze closes every window, unless its `allowTypes` lists the type.
//! - The next change is looked for at most [`LOOKAHEAD_DAYS`] ahead, among the boundaries of
//!   occurrences; each window or freeze contributes at most [`MAX_OCCURRENCES_PER_QUERY`]
//!   occurrences to one query, so a rule recurring every few minutes shortens the lookahead.
//! - Durations are elapsed time: a 6h window that spans a daylight-saving change ends 5 or 7
//!   wall-clock hours after it starts. Weekly ranges are wall-clock times at both ends.
//!
//! # Daylight-saving time
//! A local time in a spring-forward gap is read with the UTC offset in force before the gap
//! (02:30 on the last Sunday of March in Europe/Berlin means 03:30 CEST); a local time in a
//! fall-back overlap means its first occurrence (02:30 CEST, not CET). This is what RFC 5545
//! prescribes and what the `rrule` crate does, so relman, its iCalendar feed and the calendar
//! apps subscribed to it agree.

pub mod board;
mod compiled;
mod error;
pub mod ical;
mod local;
mod recurrence;
mod schedule;
mod status;
mod weekly;

#[cfg(test)]
mod tests;

pub use compiled::{CompiledCalendar, Interval, IntervalKind, MAX_OCCURRENCES_PER_QUERY};
pub use error::CalendarError;
pub use recurrence::MAX_COUNT;
pub use status::{LOOKAHEAD_DAYS, WindowReason, WindowStatus};
