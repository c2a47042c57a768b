//! The `ReleaseCalendar` resource: deployment windows, freezes and planned releases.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::release::ReleaseType;
use super::schema::{DURATION, SEMVER, conditions_schema};

/// CEL: an RFC 5545 recurrence rule, as far as a pattern can tell (the controller parses it fully).
const RRULE: &str = "self.matches('^(RRULE:)?[A-Z]+=[A-Za-z0-9,+-]+(;[A-Z]+=[A-Za-z0-9,+-]+)*$') && self.contains('FREQ=')";

/// CEL: a local date-time (YYYY-MM-DDTHH:MM[:SS]) or date, optionally with a UTC offset.
const LOCAL_DATE_TIME: &str = "self.matches('^[0-9]{4}-[0-9]{2}-[0-9]{2}(T[0-9]{2}:[0-9]{2}(:[0-9]{2})?)?(Z|[+-][0-9]{2}:[0-9]{2})?$')";

/// The Release Manager's calendar for the organisation.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "relman.io",
    version = "v1alpha1",
    kind = "ReleaseCalendar",
    status = "ReleaseCalendarStatus",
    shortname = "relcal",
    category = "relman",
    doc = "A ReleaseCalendar holds the deployment windows (when releases may go out), the freezes \
           (when they may not), and the releases planned for the organisation. Stages that set \
           window: true wait until it is open.",
    printcolumn(name = "Time Zone", type_ = "string", json_path = ".spec.timeZone"),
    printcolumn(name = "Open", type_ = "boolean", json_path = ".status.open"),
    printcolumn(name = "Reason", type_ = "string", json_path = ".status.reason"),
    // A string, not a date: kubectl shows a date column as the time since it, and a future
    // time as <invalid>.
    printcolumn(
        name = "Next Change",
        type_ = "string",
        json_path = ".status.nextChange"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseCalendarSpec {
    /// The IANA time zone the windows and freezes are written in, e.g. Europe/Berlin or UTC.
    /// Local times keep their meaning across daylight-saving changes.
    #[serde(default = "default_time_zone")]
    #[schemars(length(min = 1, max = 64))]
    #[x_kube(validation = Rule::new("self == 'UTC' || self.matches('^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+){0,2}$')").message("spec.timeZone must be an IANA time zone name such as Europe/Berlin, America/New_York or UTC"))]
    pub time_zone: String,

    /// When releases may go out. With no windows the calendar is always open (except in freezes).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub windows: Vec<Window>,

    /// When releases may not go out. A freeze beats every window.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub freezes: Vec<Freeze>,

    /// Releases planned before their Release manifest exists, per the release guide's calendar
    /// template. They are merged with real Releases of the same application and version.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 200))]
    pub entries: Vec<CalendarEntry>,
}

fn default_time_zone() -> String {
    "UTC".to_owned()
}

/// A recurring deployment window: an RRULE with a duration, or a weekly time range.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("has(self.rrule) != has(self.weekly)").message("a window sets either rrule (with duration) or weekly, not both"),
    validation = Rule::new("!has(self.rrule) || has(self.duration)").message("a window with an rrule needs a duration, e.g. 6h")
)]
pub struct Window {
    /// A name for the window, shown when it opens or closes.
    #[schemars(length(min = 1, max = 63))]
    pub name: String,

    /// An RFC 5545 recurrence rule for the window's start times in the calendar's time zone,
    /// e.g. FREQ=WEEKLY;BYDAY=TU,WE,TH;BYHOUR=9;BYMINUTE=0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 512))]
    #[x_kube(validation = Rule::new(RRULE).message("rrule must be an RFC 5545 recurrence rule such as FREQ=WEEKLY;BYDAY=TU,WE,TH;BYHOUR=9;BYMINUTE=0"))]
    pub rrule: Option<String>,

    /// When the recurrence starts (DTSTART), as a local date-time in the calendar's time zone.
    /// Defaults to 2000-01-01T00:00.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    #[x_kube(validation = Rule::new(LOCAL_DATE_TIME).message("start must be a local date-time such as 2026-01-05T09:00"))]
    pub start: Option<String>,

    /// How long each occurrence of the rrule stays open, e.g. 6h or 90m.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    #[x_kube(validation = Rule::new(DURATION).message("duration must be a duration such as 90m or 6h"))]
    pub duration: Option<String>,

    /// A weekly time range, e.g. Monday to Thursday 09:00-16:00.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weekly: Option<WeeklyRange>,
}

/// Days of the week with a local time range.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.start != self.end").message("weekly.start and weekly.end must differ; an end before the start runs past midnight"))]
pub struct WeeklyRange {
    /// The days the range starts on.
    #[schemars(length(min = 1, max = 7))]
    pub days: Vec<Weekday>,
    /// The local start time, HH:MM.
    #[x_kube(validation = Rule::new("self.matches('^([01][0-9]|2[0-3]):[0-5][0-9]$')").message("weekly.start must be a local time HH:MM, e.g. 09:00"))]
    #[schemars(length(max = 5))]
    pub start: String,
    /// The local end time, HH:MM. An end before the start runs past midnight.
    #[x_kube(validation = Rule::new("self.matches('^([01][0-9]|2[0-3]):[0-5][0-9]$|^24:00$')").message("weekly.end must be a local time HH:MM, e.g. 17:00"))]
    #[schemars(length(max = 5))]
    pub end: String,
}

/// A day of the week.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum Weekday {
    /// Monday.
    Mon,
    /// Tuesday.
    Tue,
    /// Wednesday.
    Wed,
    /// Thursday.
    Thu,
    /// Friday.
    Fri,
    /// Saturday.
    Sat,
    /// Sunday.
    Sun,
}

/// A time when releases may not go out.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("has(self.start) || has(self.rrule)").message("a freeze needs a start (with an optional end) or an rrule with a duration"),
    validation = Rule::new("!has(self.rrule) || has(self.duration)").message("a freeze with an rrule needs a duration, e.g. 48h"),
    validation = Rule::new("!has(self.rrule) || !has(self.end)").message("a recurring freeze uses UNTIL in its rrule, not end"),
    validation = Rule::new("!has(self.duration) || has(self.rrule)").message("only a freeze with an rrule takes a duration; give a one-off freeze an end")
)]
pub struct Freeze {
    /// A name for the freeze, e.g. year-end.
    #[schemars(length(min = 1, max = 63))]
    pub name: String,

    /// Why there is a freeze, shown to people whose release waits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub reason: Option<String>,

    /// When the freeze starts: a local date-time or date in the calendar's time zone (or with an
    /// explicit offset), e.g. 2026-12-20 or 2026-12-20T18:00. For a recurring freeze it is the
    /// recurrence's start (DTSTART).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    #[x_kube(validation = Rule::new(LOCAL_DATE_TIME).message("start must be a date or local date-time such as 2026-12-20 or 2026-12-20T18:00"))]
    pub start: Option<String>,

    /// When the freeze ends (exclusive). With a start and no end the freeze lasts until it is
    /// removed: an emergency stop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    #[x_kube(validation = Rule::new(LOCAL_DATE_TIME).message("end must be a date or local date-time such as 2027-01-04 or 2027-01-04T08:00"))]
    pub end: Option<String>,

    /// A recurring freeze, e.g. every Friday afternoon: FREQ=WEEKLY;BYDAY=FR;BYHOUR=14.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 512))]
    #[x_kube(validation = Rule::new(RRULE).message("rrule must be an RFC 5545 recurrence rule such as FREQ=WEEKLY;BYDAY=FR;BYHOUR=14"))]
    pub rrule: Option<String>,

    /// How long each occurrence of the rrule lasts, e.g. 48h.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    #[x_kube(validation = Rule::new(DURATION).message("duration must be a duration such as 10h or 48h"))]
    pub duration: Option<String>,

    /// Release types that may go out anyway, e.g. Patch to let hotfixes through.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 3))]
    pub allow_types: Vec<ReleaseType>,
}

/// A release planned in the calendar, per the release guide's template.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CalendarEntry {
    /// The release's name or number, e.g. checkout-2.3.0 or REL-142.
    #[schemars(length(min = 1, max = 128))]
    pub name: String,
    /// The application.
    #[schemars(length(min = 1, max = 63))]
    pub application: String,
    /// The planned version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 128))]
    #[x_kube(validation = Rule::new(SEMVER).message("version must be a semantic version such as 2.3.0"))]
    pub version: Option<String>,
    /// The target date, YYYY-MM-DD.
    #[schemars(length(max = 10))]
    #[x_kube(validation = Rule::new("self.matches('^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$')").message("targetDate must be a date as YYYY-MM-DD, e.g. 2026-12-01"))]
    pub target_date: String,
    /// Who owns it.
    #[schemars(length(min = 1, max = 128))]
    pub owner: String,
    /// Patch, Minor or Major.
    #[serde(rename = "type")]
    pub release_type: ReleaseType,
    /// The rollback plan (URL or text). An entry without one is reported as a conflict.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub rollback_plan: Option<String>,
    /// Notes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub notes: Option<String>,
}

/// What the calendar allows now and what is planned. Written only by relman.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseCalendarStatus {
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Whether a Minor release could go out now (freezes may still let Patch releases through).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open: Option<bool>,
    /// Why the calendar is open or closed for a Minor release: InWindow, NoWindows,
    /// FrozenButAllowed (a freeze holds that lets Minor releases through), WindowClosed, Frozen,
    /// or CalendarInvalid (see the Stalled condition).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Details, e.g. the window or freeze in force.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When the calendar next changes between open and closed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_change: Option<Time>,
    /// When it next opens (if closed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_open: Option<Time>,
    /// When it next closes (if open).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_close: Option<Time>,
    /// Ready and Stalled (an invalid rule or time zone).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "conditions_schema")]
    pub conditions: Vec<Condition>,
    /// The releases and entries on the calendar: at most 500, those not finished first (the
    /// rest are counted in `releasesNotListed`; the iCalendar feed has every one).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub releases: Vec<CalendarRelease>,
    /// How many releases and entries `releases` leaves out to stay small: finished ones, the
    /// oldest first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub releases_not_listed: Option<u32>,
    /// Problems a Release Manager should look at (at most 100).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conflicts: Vec<String>,
    /// How many problems `conflicts` leaves out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conflicts_not_listed: Option<u32>,
}

/// A release on the calendar: a Release, a planned entry, or both merged.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CalendarRelease {
    /// namespace/name of the Release, if one exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,
    /// The calendar entry's name, if planned in the calendar.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry: Option<String>,
    /// The application.
    pub application: String,
    /// The version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Patch, Minor or Major.
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "type")]
    pub release_type: Option<ReleaseType>,
    /// Who owns it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// The target date.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_date: Option<String>,
    /// The Release's phase, or Planned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
}
