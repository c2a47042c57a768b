//! Spans of time: what a schedule produces (see `compiled::Schedule`), merged and searched.

use chrono::{DateTime, Utc};

/// The end of a span that never ends (a freeze with a start and no end).
pub(crate) const FOREVER: DateTime<Utc> = DateTime::<Utc>::MAX_UTC;

/// A half-open span of time `[start, end)`; `end == FOREVER` means it never ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Span {
    pub(crate) start: DateTime<Utc>,
    pub(crate) end: DateTime<Utc>,
}

impl Span {
    pub(crate) fn contains(&self, instant: DateTime<Utc>) -> bool {
        self.start <= instant && instant < self.end
    }

    pub(crate) fn overlaps(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> bool {
        self.start < to && from < self.end
    }
}

/// The spans a schedule has in a range, and how far that list is complete.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Coverage {
    /// The spans overlapping the range asked for, in start order.
    pub(crate) spans: Vec<Span>,
    /// Every span starting before this instant is listed. It is before the end of the range
    /// only when the schedule had more occurrences than one query may examine.
    pub(crate) complete_until: DateTime<Utc>,
}

impl Coverage {
    pub(crate) fn complete(spans: Vec<Span>) -> Self {
        Self {
            spans,
            complete_until: FOREVER,
        }
    }
}

/// Sorts spans and merges those that overlap or touch, so the result is disjoint and ordered.
pub(crate) fn merge(mut spans: Vec<Span>) -> Vec<Span> {
    spans.sort_unstable();
    let mut merged: Vec<Span> = Vec::with_capacity(spans.len());
    for span in spans {
        match merged.last_mut() {
            Some(last) if span.start <= last.end => last.end = last.end.max(span.end),
            _ => merged.push(span),
        }
    }
    merged
}

/// The span of a merged (disjoint, ordered) list that contains `instant`, if any.
pub(crate) fn covering(merged: &[Span], instant: DateTime<Utc>) -> Option<Span> {
    let after = merged.partition_point(|span| span.start <= instant);
    after
        .checked_sub(1)
        .and_then(|index| merged.get(index))
        .filter(|span| span.contains(instant))
        .copied()
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn at(hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, hour, 0, 0).unwrap()
    }

    fn span(start: u32, end: u32) -> Span {
        Span {
            start: at(start),
            end: at(end),
        }
    }

    #[test]
    fn merges_overlapping_and_touching_spans() {
        let merged = merge(vec![
            span(10, 12),
            span(1, 3),
            span(2, 5),
            span(5, 6),
            span(8, 9),
        ]);
        assert_eq!(merged, vec![span(1, 6), span(8, 9), span(10, 12)]);
    }

    #[test]
    fn finds_the_covering_span() {
        let merged = vec![span(1, 3), span(5, 6)];
        assert_eq!(covering(&merged, at(0)), None);
        assert_eq!(covering(&merged, at(1)), Some(span(1, 3)));
        assert_eq!(covering(&merged, at(2)), Some(span(1, 3)));
        assert_eq!(covering(&merged, at(3)), None);
        assert_eq!(covering(&merged, at(5)), Some(span(5, 6)));
        assert_eq!(covering(&merged, at(7)), None);
    }
}
