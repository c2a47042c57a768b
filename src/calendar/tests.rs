//! Tests of the whole calendar: compiling specs, statuses, occurrences, and property tests.

use chrono::{DateTime, NaiveDate, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;

use crate::api::calendar::{Freeze, ReleaseCalendarSpec, Weekday, WeeklyRange, Window};
use crate::api::release::ReleaseType;

use super::*;

const BERLIN: Tz = chrono_tz::Europe::Berlin;

fn spec(time_zone: &str, windows: Vec<Window>, freezes: Vec<Freeze>) -> ReleaseCalendarSpec {
    ReleaseCalendarSpec {
        time_zone: time_zone.to_owned(),
        windows,
        freezes,
        entries: Vec::new(),
    }
}

fn rrule_window(name: &str, rrule: &str, duration: &str) -> Window {
    Window {
        name: name.to_owned(),
        rrule: Some(rrule.to_owned()),
        start: None,
        duration: Some(duration.to_owned()),
        weekly: None,
    }
}

fn weekly_window(name: &str, days: &[Weekday], start: &str, end: &str) -> Window {
    Window {
        name: name.to_owned(),
        rrule: None,
        start: None,
        duration: None,
        weekly: Some(WeeklyRange {
            days: days.to_vec(),
            start: start.to_owned(),
            end: end.to_owned(),
        }),
    }
}

fn freeze(name: &str, start: &str, end: Option<&str>) -> Freeze {
    Freeze {
        name: name.to_owned(),
        reason: None,
        start: Some(start.to_owned()),
        end: end.map(str::to_owned),
        rrule: None,
        duration: None,
        allow_types: Vec::new(),
    }
}

fn recurring_freeze(name: &str, rrule: &str, duration: &str) -> Freeze {
    Freeze {
        name: name.to_owned(),
        reason: None,
        start: None,
        end: None,
        rrule: Some(rrule.to_owned()),
        duration: Some(duration.to_owned()),
        allow_types: Vec::new(),
    }
}

const WEEKDAYS: [Weekday; 5] = [
    Weekday::Mon,
    Weekday::Tue,
    Weekday::Wed,
    Weekday::Thu,
    Weekday::Fri,
];
const ALL_DAYS: [Weekday; 7] = [
    Weekday::Mon,
    Weekday::Tue,
    Weekday::Wed,
    Weekday::Thu,
    Weekday::Fri,
    Weekday::Sat,
    Weekday::Sun,
];

fn compile(spec: &ReleaseCalendarSpec) -> CompiledCalendar {
    CompiledCalendar::compile(spec).unwrap()
}

/// An instant given as a local wall-clock time in `tz` (`2026-12-01T09:00`).
fn local(tz: Tz, text: &str) -> DateTime<Utc> {
    let naive = chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M").unwrap();
    tz.from_local_datetime(&naive)
        .earliest()
        .unwrap()
        .with_timezone(&Utc)
}

fn business_hours() -> CompiledCalendar {
    compile(&spec(
        "Europe/Berlin",
        vec![weekly_window("business-hours", &WEEKDAYS, "09:00", "17:00")],
        Vec::new(),
    ))
}

mod compiling {
    use super::*;

    #[test]
    fn rejects_a_time_zone_that_is_not_iana() {
        let error =
            CompiledCalendar::compile(&spec("Mars/Base", Vec::new(), Vec::new())).unwrap_err();
        assert_eq!(error.field(), "spec.timeZone");
        assert_eq!(error.reason(), "InvalidTimeZone");
        assert_eq!(
            error.to_string(),
            "spec.timeZone: \"Mars/Base\" is not an IANA time zone; use a name such as \
             Europe/Berlin, America/New_York or UTC"
        );
    }

    #[test]
    fn rejects_a_bad_rrule_naming_the_window() {
        let windows = vec![
            rrule_window("ok", "FREQ=DAILY;BYHOUR=9", "1h"),
            rrule_window("bad", "FREQ=WEEKLY;BYDAY=XX;BYHOUR=9", "1h"),
        ];
        let error = CompiledCalendar::compile(&spec("UTC", windows, Vec::new())).unwrap_err();
        assert_eq!(error.field(), "spec.windows[1].rrule");
        assert_eq!(error.reason(), "InvalidRRule");
        assert!(
            error.to_string().starts_with(
                "spec.windows[1].rrule: unknown BYDAY value \"XX\": use MO,TU,WE,TH,FR,SA,SU"
            ),
            "{error}"
        );
    }

    #[test]
    fn rejects_fields_that_do_not_go_together() {
        let cases: Vec<(ReleaseCalendarSpec, &str)> = vec![
            (
                spec(
                    "UTC",
                    vec![Window {
                        duration: None,
                        ..rrule_window("w", "FREQ=DAILY", "1h")
                    }],
                    Vec::new(),
                ),
                "spec.windows[0].duration",
            ),
            (
                spec(
                    "UTC",
                    vec![Window {
                        weekly: weekly_window("w", &WEEKDAYS, "09:00", "17:00").weekly,
                        ..rrule_window("w", "FREQ=DAILY", "1h")
                    }],
                    Vec::new(),
                ),
                "spec.windows[0]",
            ),
            (
                spec(
                    "UTC",
                    vec![Window {
                        rrule: None,
                        weekly: None,
                        ..rrule_window("w", "FREQ=DAILY", "1h")
                    }],
                    Vec::new(),
                ),
                "spec.windows[0]",
            ),
            (
                spec(
                    "UTC",
                    vec![Window {
                        duration: Some("1h".into()),
                        ..weekly_window("w", &WEEKDAYS, "09:00", "17:00")
                    }],
                    Vec::new(),
                ),
                "spec.windows[0].duration",
            ),
            (
                spec(
                    "UTC",
                    Vec::new(),
                    vec![Freeze {
                        end: Some("2027-01-01".into()),
                        ..recurring_freeze("f", "FREQ=WEEKLY", "1h")
                    }],
                ),
                "spec.freezes[0].end",
            ),
            (
                spec(
                    "UTC",
                    Vec::new(),
                    vec![freeze("f", "2026-12-20", Some("2026-12-20"))],
                ),
                "spec.freezes[0].end",
            ),
            (
                spec(
                    "UTC",
                    Vec::new(),
                    vec![freeze("f", "2026-12-20", Some("next year"))],
                ),
                "spec.freezes[0].end",
            ),
            (
                spec(
                    "UTC",
                    Vec::new(),
                    vec![Freeze {
                        start: None,
                        ..freeze("f", "2026-12-20", None)
                    }],
                ),
                "spec.freezes[0]",
            ),
            (
                spec(
                    "UTC",
                    Vec::new(),
                    vec![Freeze {
                        duration: Some("1h".into()),
                        ..freeze("f", "2026-12-20", None)
                    }],
                ),
                "spec.freezes[0].duration",
            ),
            (
                spec(
                    "UTC",
                    Vec::new(),
                    vec![recurring_freeze("f", "FREQ=WEEKLY;BYDAY=FR", "2 days")],
                ),
                "spec.freezes[0].duration",
            ),
        ];
        for (spec, field) in cases {
            let error = CompiledCalendar::compile(&spec).unwrap_err();
            assert_eq!(error.field(), field, "{error}");
            assert!(
                error.to_string().starts_with(&format!("{field}: ")),
                "{error}"
            );
        }
    }
}

mod status {
    use super::*;

    #[test]
    fn no_windows_and_no_freezes_is_always_open() {
        let calendar = compile(&spec("UTC", Vec::new(), Vec::new()));
        let status = calendar.status_at(Utc::now(), ReleaseType::Major);
        assert!(status.open);
        assert_eq!(status.reason, WindowReason::NoWindows);
        assert_eq!(status.next_close, None);
        assert_eq!(status.next_change(), None);
        assert_eq!(status.message, "open: the calendar has no windows");
    }

    #[test]
    fn closed_until_the_next_window_in_local_time() {
        let status =
            business_hours().status_at(local(BERLIN, "2026-11-30T18:00"), ReleaseType::Minor);
        assert!(!status.open);
        assert_eq!(status.reason, WindowReason::WindowClosed);
        assert_eq!(status.next_open, Some(local(BERLIN, "2026-12-01T09:00")));
        assert_eq!(status.next_change(), status.next_open);
        assert_eq!(
            status.message,
            "closed until Tue 2026-12-01 09:00 Europe/Berlin (window business-hours)"
        );
    }

    #[test]
    fn open_until_the_window_ends() {
        let status =
            business_hours().status_at(local(BERLIN, "2026-12-01T10:00"), ReleaseType::Minor);
        assert!(status.open);
        assert_eq!(status.reason, WindowReason::InWindow);
        assert_eq!(status.next_close, Some(local(BERLIN, "2026-12-01T17:00")));
        assert_eq!(status.next_open, None);
        assert_eq!(
            status.message,
            "open in window business-hours until Tue 2026-12-01 17:00 Europe/Berlin (window business-hours ends)"
        );
    }

    #[test]
    fn friday_evening_waits_for_monday() {
        let status =
            business_hours().status_at(local(BERLIN, "2026-12-04T17:00"), ReleaseType::Minor);
        assert!(!status.open);
        assert_eq!(status.next_open, Some(local(BERLIN, "2026-12-07T09:00")));
    }

    #[test]
    fn freeze_by_date_only_runs_from_midnight_to_midnight() {
        let calendar = compile(&spec(
            "Europe/Berlin",
            Vec::new(),
            vec![freeze("year-end", "2026-12-20", Some("2027-01-04"))],
        ));
        let before = calendar.status_at(local(BERLIN, "2026-12-19T23:59"), ReleaseType::Minor);
        assert!(before.open);
        assert_eq!(before.next_close, Some(local(BERLIN, "2026-12-20T00:00")));
        assert_eq!(
            before.message,
            "open: the calendar has no windows until Sun 2026-12-20 00:00 Europe/Berlin (freeze year-end starts)"
        );
        let during = calendar.status_at(local(BERLIN, "2026-12-20T00:00"), ReleaseType::Minor);
        assert!(!during.open);
        assert_eq!(during.reason, WindowReason::Frozen);
        assert_eq!(during.next_open, Some(local(BERLIN, "2027-01-04T00:00")));
        assert_eq!(
            during.message,
            "frozen by year-end until Mon 2027-01-04 00:00 Europe/Berlin (freeze year-end ends)"
        );
    }

    #[test]
    fn a_freeze_ending_inside_a_window_opens_at_its_end() {
        let mut year_end = freeze("year-end", "2026-12-20", Some("2027-01-04T11:00"));
        year_end.reason = Some("holidays".to_owned());
        let calendar = compile(&spec(
            "Europe/Berlin",
            vec![weekly_window("business-hours", &WEEKDAYS, "09:00", "17:00")],
            vec![year_end],
        ));
        let status = calendar.status_at(local(BERLIN, "2026-12-22T10:00"), ReleaseType::Minor);
        assert!(!status.open);
        assert_eq!(status.reason, WindowReason::Frozen);
        assert_eq!(status.next_open, Some(local(BERLIN, "2027-01-04T11:00")));
        assert_eq!(
            status.message,
            "frozen by year-end (holidays) until Mon 2027-01-04 11:00 Europe/Berlin (window business-hours)"
        );
    }

    #[test]
    fn an_emergency_stop_holds_until_removed() {
        let calendar = compile(&spec(
            "Europe/Berlin",
            vec![weekly_window("business-hours", &WEEKDAYS, "09:00", "17:00")],
            vec![freeze("incident-4711", "2026-12-01T10:30", None)],
        ));
        let before = calendar.status_at(local(BERLIN, "2026-12-01T10:00"), ReleaseType::Patch);
        assert!(before.open);
        assert_eq!(before.next_close, Some(local(BERLIN, "2026-12-01T10:30")));
        let during = calendar.status_at(local(BERLIN, "2026-12-02T10:00"), ReleaseType::Patch);
        assert!(!during.open);
        assert_eq!(during.reason, WindowReason::Frozen);
        assert_eq!(during.next_open, None);
        assert_eq!(during.next_change(), None);
        assert_eq!(
            during.message,
            "frozen by incident-4711 until the freeze is removed"
        );
    }

    #[test]
    fn allow_types_lets_hotfixes_through_while_minor_waits() {
        let mut year_end = freeze("year-end", "2026-12-20", Some("2027-01-04"));
        year_end.allow_types = vec![ReleaseType::Patch];
        let calendar = compile(&spec(
            "Europe/Berlin",
            vec![weekly_window("business-hours", &WEEKDAYS, "09:00", "17:00")],
            vec![year_end],
        ));
        let now = local(BERLIN, "2026-12-22T10:00");
        let patch = calendar.status_at(now, ReleaseType::Patch);
        assert!(patch.open);
        assert_eq!(patch.reason, WindowReason::FrozenButAllowed);
        assert_eq!(patch.next_close, Some(local(BERLIN, "2026-12-22T17:00")));
        assert_eq!(
            patch.message,
            "open in window business-hours; freeze year-end lets Patch releases through until \
             Tue 2026-12-22 17:00 Europe/Berlin (window business-hours ends)"
        );
        let minor = calendar.status_at(now, ReleaseType::Minor);
        assert!(!minor.open);
        assert_eq!(minor.reason, WindowReason::Frozen);
        assert_eq!(minor.next_open, Some(local(BERLIN, "2027-01-04T09:00")));
        // Outside the window the freeze's allowance does not help.
        let evening = calendar.status_at(local(BERLIN, "2026-12-22T18:00"), ReleaseType::Patch);
        assert!(!evening.open);
        assert_eq!(evening.reason, WindowReason::WindowClosed);
    }

    #[test]
    fn a_weekly_range_crossing_midnight() {
        let calendar = compile(&spec(
            "Europe/Berlin",
            vec![weekly_window("night", &[Weekday::Fri], "22:00", "06:00")],
            Vec::new(),
        ));
        let status = calendar.status_at(local(BERLIN, "2026-12-05T05:00"), ReleaseType::Minor);
        assert!(status.open, "{}", status.message);
        assert_eq!(status.next_close, Some(local(BERLIN, "2026-12-05T06:00")));
        let status = calendar.status_at(local(BERLIN, "2026-12-05T06:00"), ReleaseType::Minor);
        assert!(!status.open);
        assert_eq!(status.next_open, Some(local(BERLIN, "2026-12-11T22:00")));
    }

    #[test]
    fn a_weekly_range_ending_at_24_00() {
        let calendar = compile(&spec(
            "Europe/Berlin",
            vec![weekly_window(
                "saturday-evening",
                &[Weekday::Sat],
                "18:00",
                "24:00",
            )],
            Vec::new(),
        ));
        let status = calendar.status_at(local(BERLIN, "2026-12-05T20:00"), ReleaseType::Minor);
        assert!(status.open);
        assert_eq!(status.next_close, Some(local(BERLIN, "2026-12-06T00:00")));
    }

    #[test]
    fn overlapping_windows_merge() {
        let calendar = compile(&spec(
            "UTC",
            vec![
                rrule_window("morning", "FREQ=DAILY;BYHOUR=9;BYMINUTE=0", "3h"),
                rrule_window("midday", "FREQ=DAILY;BYHOUR=11;BYMINUTE=0", "4h"),
                rrule_window("afternoon", "FREQ=DAILY;BYHOUR=15;BYMINUTE=0", "1h"),
            ],
            Vec::new(),
        ));
        let status = calendar.status_at(
            local(chrono_tz::UTC, "2026-06-01T10:00"),
            ReleaseType::Minor,
        );
        assert!(status.open);
        assert_eq!(
            status.next_close,
            Some(local(chrono_tz::UTC, "2026-06-01T16:00"))
        );
        assert!(
            status.message.contains("(window afternoon ends)"),
            "{}",
            status.message
        );
    }

    #[test]
    fn a_recurring_freeze_closes_every_weekend() {
        let calendar = compile(&spec(
            "Europe/Berlin",
            Vec::new(),
            vec![recurring_freeze(
                "weekend",
                "FREQ=WEEKLY;BYDAY=FR;BYHOUR=14;BYMINUTE=0",
                "64h",
            )],
        ));
        let status = calendar.status_at(local(BERLIN, "2026-12-05T12:00"), ReleaseType::Patch);
        assert!(!status.open);
        assert_eq!(status.next_open, Some(local(BERLIN, "2026-12-07T06:00")));
        let status = calendar.status_at(local(BERLIN, "2026-12-07T06:00"), ReleaseType::Patch);
        assert!(status.open);
        assert_eq!(status.next_close, Some(local(BERLIN, "2026-12-11T14:00")));
    }

    #[test]
    fn a_window_at_nine_stays_at_nine_after_spring_forward() {
        let calendar = compile(&spec(
            "Europe/Berlin",
            vec![rrule_window(
                "daily",
                "FREQ=DAILY;BYHOUR=9;BYMINUTE=0",
                "8h",
            )],
            Vec::new(),
        ));
        let status = calendar.status_at(local(BERLIN, "2026-03-29T01:00"), ReleaseType::Minor);
        assert_eq!(status.next_open, Some(local(BERLIN, "2026-03-29T09:00")));
        assert_eq!(
            status.next_open,
            Some(Utc.with_ymd_and_hms(2026, 3, 29, 7, 0, 0).unwrap())
        );
    }

    #[test]
    fn a_window_in_the_spring_forward_gap_opens_after_it() {
        let calendar = compile(&spec(
            "Europe/Berlin",
            vec![weekly_window("night", &ALL_DAYS, "02:30", "04:00")],
            Vec::new(),
        ));
        let status = calendar.status_at(local(BERLIN, "2026-03-29T01:00"), ReleaseType::Minor);
        // 02:30 does not exist that night: it is read as 02:30 CET, which is 03:30 CEST.
        assert_eq!(status.next_open, Some(local(BERLIN, "2026-03-29T03:30")));
        assert_eq!(
            status.next_open,
            Some(Utc.with_ymd_and_hms(2026, 3, 29, 1, 30, 0).unwrap())
        );
    }

    #[test]
    fn a_window_in_the_fall_back_overlap_opens_the_first_time() {
        let calendar = compile(&spec(
            "Europe/Berlin",
            vec![rrule_window(
                "night",
                "FREQ=DAILY;BYHOUR=2;BYMINUTE=30",
                "1h",
            )],
            Vec::new(),
        ));
        let status = calendar.status_at(local(BERLIN, "2026-10-25T01:00"), ReleaseType::Minor);
        assert_eq!(
            status.next_open,
            Some(Utc.with_ymd_and_hms(2026, 10, 25, 0, 30, 0).unwrap())
        );
    }

    #[test]
    fn a_leap_day_window_further_than_the_lookahead_is_not_reported() {
        let calendar = compile(&spec(
            "UTC",
            vec![rrule_window(
                "leap-day",
                "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29;BYHOUR=0",
                "24h",
            )],
            Vec::new(),
        ));
        let far = calendar.status_at(
            local(chrono_tz::UTC, "2026-06-01T00:00"),
            ReleaseType::Minor,
        );
        assert!(!far.open);
        assert_eq!(far.next_open, None);
        assert_eq!(far.message, "closed with no opening in the next 400 days");
        let near = calendar.status_at(
            local(chrono_tz::UTC, "2027-06-01T00:00"),
            ReleaseType::Minor,
        );
        assert_eq!(
            near.next_open,
            Some(local(chrono_tz::UTC, "2028-02-29T00:00"))
        );
    }

    #[test]
    fn reasons_have_stable_names() {
        assert_eq!(
            WindowReason::FrozenButAllowed.to_string(),
            "FrozenButAllowed"
        );
        assert_eq!(WindowReason::InWindow.as_str(), "InWindow");
    }
}

mod occurrences {
    use super::*;

    #[test]
    fn lists_windows_and_freezes_in_order() {
        let mut year_end = freeze("year-end", "2026-12-02T12:00", Some("2026-12-03"));
        year_end.allow_types = vec![ReleaseType::Patch];
        year_end.reason = Some("holidays".to_owned());
        let calendar = compile(&spec(
            "Europe/Berlin",
            vec![weekly_window("business-hours", &WEEKDAYS, "09:00", "17:00")],
            vec![year_end, freeze("stop", "2026-12-03T12:00", None)],
        ));
        let intervals = calendar.occurrences(
            local(BERLIN, "2026-12-01T12:00"),
            local(BERLIN, "2026-12-03T13:00"),
        );
        type Summary<'a> = (IntervalKind, &'a str, DateTime<Utc>, Option<DateTime<Utc>>);
        let summary: Vec<Summary<'_>> = intervals
            .iter()
            .map(|interval| {
                (
                    interval.kind,
                    interval.name.as_str(),
                    interval.start,
                    interval.end,
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                (
                    IntervalKind::Window,
                    "business-hours",
                    local(BERLIN, "2026-12-01T09:00"),
                    Some(local(BERLIN, "2026-12-01T17:00"))
                ),
                (
                    IntervalKind::Window,
                    "business-hours",
                    local(BERLIN, "2026-12-02T09:00"),
                    Some(local(BERLIN, "2026-12-02T17:00"))
                ),
                (
                    IntervalKind::Freeze,
                    "year-end",
                    local(BERLIN, "2026-12-02T12:00"),
                    Some(local(BERLIN, "2026-12-03T00:00"))
                ),
                (
                    IntervalKind::Window,
                    "business-hours",
                    local(BERLIN, "2026-12-03T09:00"),
                    Some(local(BERLIN, "2026-12-03T17:00"))
                ),
                (
                    IntervalKind::Freeze,
                    "stop",
                    local(BERLIN, "2026-12-03T12:00"),
                    None
                ),
            ]
        );
        let year_end = &intervals[2];
        assert_eq!(year_end.allow_types, [ReleaseType::Patch]);
        assert_eq!(year_end.reason.as_deref(), Some("holidays"));
    }

    #[test]
    fn an_empty_range_has_none() {
        let calendar = business_hours();
        let now = local(BERLIN, "2026-12-01T12:00");
        assert!(calendar.occurrences(now, now).is_empty());
        assert!(
            calendar
                .occurrences(now, now - TimeDelta::days(1))
                .is_empty()
        );
    }
}

mod properties {
    use proptest::prelude::*;

    use super::*;

    const ZONES: [&str; 6] = [
        "UTC",
        "Europe/Berlin",
        "America/New_York",
        "America/Havana",
        "Australia/Lord_Howe",
        "Asia/Kolkata",
    ];

    fn release_type() -> impl Strategy<Value = ReleaseType> {
        prop_oneof![
            Just(ReleaseType::Patch),
            Just(ReleaseType::Minor),
            Just(ReleaseType::Major)
        ]
    }

    fn time_of_day() -> impl Strategy<Value = String> {
        (
            0u32..24,
            prop_oneof![Just(0u32), Just(15), Just(30), Just(45)],
        )
            .prop_map(|(hour, minute)| format!("{hour:02}:{minute:02}"))
    }

    fn day() -> impl Strategy<Value = Weekday> {
        proptest::sample::select(ALL_DAYS.to_vec())
    }

    fn window() -> impl Strategy<Value = Window> {
        prop_oneof![
            (
                0u32..24,
                0u32..4,
                1u32..48,
                proptest::collection::vec(day(), 0..3)
            )
                .prop_map(|(hour, quarter, half_hours, days)| {
                    let by_day = if days.is_empty() {
                        String::new()
                    } else {
                        let names: Vec<&str> = days.iter().map(|day| rrule_day(*day)).collect();
                        format!(";BYDAY={}", names.join(","))
                    };
                    let freq = if days.is_empty() { "DAILY" } else { "WEEKLY" };
                    rrule_window(
                        "rrule",
                        &format!(
                            "FREQ={freq}{by_day};BYHOUR={hour};BYMINUTE={}",
                            quarter * 15
                        ),
                        &format!("{}m", half_hours * 30),
                    )
                }),
            (
                proptest::collection::vec(day(), 1..8),
                time_of_day(),
                time_of_day(),
                any::<bool>()
            )
                .prop_filter("start and end differ", |(_, start, end, _)| start != end)
                .prop_map(|(days, start, end, to_midnight)| {
                    let end = if to_midnight { "24:00".to_owned() } else { end };
                    weekly_window("weekly", &days, &start, &end)
                }),
        ]
    }

    fn rrule_day(day: Weekday) -> &'static str {
        match day {
            Weekday::Mon => "MO",
            Weekday::Tue => "TU",
            Weekday::Wed => "WE",
            Weekday::Thu => "TH",
            Weekday::Fri => "FR",
            Weekday::Sat => "SA",
            Weekday::Sun => "SU",
        }
    }

    fn allow_types() -> impl Strategy<Value = Vec<ReleaseType>> {
        proptest::collection::vec(release_type(), 0..3)
    }

    /// A local date-time in 2026-2027, on a quarter hour.
    fn written_date_time() -> impl Strategy<Value = String> {
        (0i64..730, 0u32..96).prop_map(|(day, quarter)| {
            let date = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap() + TimeDelta::days(day);
            format!("{date}T{:02}:{:02}", quarter / 4, (quarter % 4) * 15)
        })
    }

    fn freeze_spec() -> impl Strategy<Value = Freeze> {
        prop_oneof![
            (
                written_date_time(),
                1i64..(24 * 30),
                prop::option::weighted(0.9, Just(())),
                allow_types()
            )
                .prop_map(|(start, hours, has_end, allow)| {
                    let start_at =
                        chrono::NaiveDateTime::parse_from_str(&start, "%Y-%m-%dT%H:%M").unwrap();
                    let end = has_end.map(|()| {
                        (start_at + TimeDelta::hours(hours))
                            .format("%Y-%m-%dT%H:%M")
                            .to_string()
                    });
                    Freeze {
                        allow_types: allow,
                        ..freeze("once", &start, end.as_deref())
                    }
                }),
            (day(), 0u32..24, 1u32..72, allow_types()).prop_map(|(day, hour, hours, allow)| {
                Freeze {
                    allow_types: allow,
                    ..recurring_freeze(
                        "weekly",
                        &format!(
                            "FREQ=WEEKLY;BYDAY={};BYHOUR={hour};BYMINUTE=0",
                            rrule_day(day)
                        ),
                        &format!("{hours}h"),
                    )
                }
            }),
        ]
    }

    fn calendar_spec() -> impl Strategy<Value = ReleaseCalendarSpec> {
        (
            proptest::sample::select(ZONES.to_vec()),
            proptest::collection::vec(window(), 0..3),
            proptest::collection::vec(freeze_spec(), 0..3),
        )
            .prop_map(|(zone, windows, freezes)| spec(zone, windows, freezes))
    }

    /// An instant in 2026-2027, to the second.
    fn instant() -> impl Strategy<Value = DateTime<Utc>> {
        let start = Utc
            .with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
            .unwrap()
            .timestamp();
        (start..start + 730 * 86_400)
            .prop_map(|seconds| DateTime::from_timestamp(seconds, 0).unwrap())
    }

    /// Openness computed directly from the occurrences, as a reference.
    fn open_by_occurrences(
        calendar: &CompiledCalendar,
        at: DateTime<Utc>,
        release_type: ReleaseType,
    ) -> bool {
        let intervals = calendar.occurrences(at, at + TimeDelta::seconds(1));
        let contains =
            |interval: &&Interval| interval.start <= at && interval.end.is_none_or(|end| at < end);
        let has_windows = !calendar.windows.is_empty();
        let in_window = intervals
            .iter()
            .filter(|interval| interval.kind == IntervalKind::Window)
            .any(|interval| contains(&interval));
        let denied = intervals
            .iter()
            .filter(|interval| interval.kind == IntervalKind::Freeze)
            .filter(|interval| !interval.allow_types.contains(&release_type))
            .any(|interval| contains(&interval));
        (!has_windows || in_window) && !denied
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        /// (a) The status agrees with itself at its next change, and nothing changes before.
        #[test]
        fn status_is_consistent_at_its_next_change(
            spec in calendar_spec(),
            now in instant(),
            release_type in release_type(),
            samples in proptest::collection::vec(0.0f64..1.0, 3),
        ) {
            let calendar = CompiledCalendar::compile(&spec).unwrap();
            let status = calendar.status_at(now, release_type);
            prop_assert_eq!(status.open, open_by_occurrences(&calendar, now, release_type), "{}", status.message);
            if status.open {
                prop_assert_eq!(status.next_open, None);
            } else {
                prop_assert_eq!(status.next_close, None);
            }
            if let Some(change) = status.next_change() {
                prop_assert!(change > now);
                let just_before = calendar.status_at(change - TimeDelta::seconds(1), release_type);
                prop_assert_eq!(just_before.open, status.open, "{}", status.message);
                prop_assert_eq!(just_before.next_change(), Some(change));
                let at_change = calendar.status_at(change, release_type);
                prop_assert_eq!(at_change.open, !status.open, "{} / {}", status.message, at_change.message);
                for fraction in samples {
                    let offset = ((change - now).num_seconds() as f64 * fraction) as i64;
                    let between = now + TimeDelta::seconds(offset);
                    prop_assert_eq!(open_by_occurrences(&calendar, between, release_type), status.open);
                }
            }
        }

        /// (b) Deny beats allow: inside a freeze that does not allow the type it is never open.
        #[test]
        fn deny_beats_allow(
            spec in calendar_spec(),
            now in instant(),
            release_type in release_type(),
        ) {
            let calendar = CompiledCalendar::compile(&spec).unwrap();
            let denied = calendar
                .occurrences(now, now + TimeDelta::seconds(1))
                .iter()
                .filter(|interval| interval.kind == IntervalKind::Freeze)
                .filter(|interval| !interval.allow_types.contains(&release_type))
                .any(|interval| interval.start <= now && interval.end.is_none_or(|end| now < end));
            let status = calendar.status_at(now, release_type);
            if denied {
                prop_assert!(!status.open, "{}", status.message);
                prop_assert_eq!(status.reason, WindowReason::Frozen);
            }
        }

        /// (c) A daily 09:00-17:00 window opens at 09:00 local time every day around the 2026
        /// daylight-saving changes, in both directions.
        #[test]
        fn nine_to_five_keeps_local_time_across_dst(
            (zone, transition) in proptest::sample::select(vec![
                ("Europe/Berlin", "2026-03-29"),
                ("Europe/Berlin", "2026-10-25"),
                ("America/New_York", "2026-03-08"),
                ("America/New_York", "2026-11-01"),
            ]),
            day_offset in -10i64..=10,
            as_weekly in any::<bool>(),
        ) {
            let tz: Tz = zone.parse().unwrap();
            let window = if as_weekly {
                weekly_window("nine-to-five", &ALL_DAYS, "09:00", "17:00")
            } else {
                rrule_window("nine-to-five", "FREQ=DAILY;BYHOUR=9;BYMINUTE=0", "8h")
            };
            let calendar = compile(&spec(zone, vec![window], Vec::new()));
            let date = NaiveDate::parse_from_str(transition, "%Y-%m-%d").unwrap() + TimeDelta::days(day_offset);
            let nine = local(tz, &format!("{date}T09:00"));
            let five = local(tz, &format!("{date}T17:00"));
            let early = calendar.status_at(local(tz, &format!("{date}T00:00")), ReleaseType::Minor);
            prop_assert!(!early.open);
            prop_assert_eq!(early.next_open, Some(nine));
            prop_assert_eq!(nine.with_timezone(&tz).format("%H:%M").to_string(), "09:00");
            let opened = calendar.status_at(nine, ReleaseType::Minor);
            prop_assert!(opened.open);
            prop_assert_eq!(opened.next_close, Some(five));
            prop_assert!(!calendar.status_at(nine - TimeDelta::seconds(1), ReleaseType::Minor).open);
        }

        /// (d) A leap-day rule occurs only on 29 February.
        #[test]
        fn leap_day_rule_occurs_only_on_february_29(
            year in 2000i32..2090,
            zone in proptest::sample::select(ZONES.to_vec()),
        ) {
            let tz: Tz = zone.parse().unwrap();
            let calendar = compile(&spec(
                zone,
                vec![rrule_window("leap-day", "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29;BYHOUR=9", "1h")],
                Vec::new(),
            ));
            let from = Utc.with_ymd_and_hms(year, 1, 1, 0, 0, 0).unwrap();
            let to = Utc.with_ymd_and_hms(year + 9, 1, 1, 0, 0, 0).unwrap();
            let occurrences = calendar.occurrences(from, to);
            prop_assert!(occurrences.len() >= 2);
            for occurrence in &occurrences {
                let local_start = occurrence.start.with_timezone(&tz);
                prop_assert_eq!(local_start.format("%m-%d %H:%M").to_string(), "02-29 09:00");
            }
            let status = calendar.status_at(from, ReleaseType::Minor);
            if let Some(next_open) = status.next_open {
                prop_assert_eq!(next_open.with_timezone(&tz).format("%m-%d").to_string(), "02-29");
            }
        }

        /// (e) Without windows and freezes it is always open and never closes.
        #[test]
        fn an_empty_calendar_is_always_open(
            zone in proptest::sample::select(ZONES.to_vec()),
            now in instant(),
            release_type in release_type(),
        ) {
            let calendar = compile(&spec(zone, Vec::new(), Vec::new()));
            let status = calendar.status_at(now, release_type);
            prop_assert!(status.open);
            prop_assert_eq!(status.reason, WindowReason::NoWindows);
            prop_assert_eq!(status.next_close, None);
            prop_assert_eq!(status.next_change(), None);
        }
    }
}
