//! Why a `ReleaseCalendar` spec cannot be compiled: each error names the field and the fix.

use thiserror::Error;

use crate::api::duration::DurationError;

/// A problem in a `ReleaseCalendar` spec. The message starts with the field path (for example
/// `spec.windows[1].rrule`) and says how to fix it, so it can go straight into a condition.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CalendarError {
    /// `spec.timeZone` is not a name in the IANA time zone database.
    #[error("{field}: {value:?} is not an IANA time zone; use a name such as {suggestion}")]
    TimeZone {
        /// The field path.
        field: String,
        /// The name as written.
        value: String,
        /// A correction (the same name with the right case) or examples.
        suggestion: String,
    },
    /// A recurrence rule does not parse or validate.
    #[error("{field}: {message}")]
    RRule {
        /// The field path.
        field: String,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// A duration does not parse or is not usable.
    #[error("{field}: {message}")]
    Duration {
        /// The field path.
        field: String,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// A date, date-time or time of day does not parse or is out of order.
    #[error("{field}: {message}")]
    DateTime {
        /// The field path.
        field: String,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// A window or freeze sets a combination of fields that has no meaning.
    #[error("{field}: {message}")]
    Shape {
        /// The field path.
        field: String,
        /// What is wrong and how to fix it.
        message: String,
    },
}

impl CalendarError {
    /// The path of the field at fault, e.g. `spec.windows[1].rrule`.
    pub fn field(&self) -> &str {
        match self {
            Self::TimeZone { field, .. }
            | Self::RRule { field, .. }
            | Self::Duration { field, .. }
            | Self::DateTime { field, .. }
            | Self::Shape { field, .. } => field,
        }
    }

    /// A stable CamelCase reason for conditions, events and metric labels.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::TimeZone { .. } => "InvalidTimeZone",
            Self::RRule { .. } => "InvalidRRule",
            Self::Duration { .. } => "InvalidDuration",
            Self::DateTime { .. } => "InvalidDateTime",
            Self::Shape { .. } => "InvalidSpec",
        }
    }

    pub(crate) fn rrule(field: &str, message: impl Into<String>) -> Self {
        Self::RRule {
            field: field.to_owned(),
            message: message.into(),
        }
    }

    pub(crate) fn duration(field: &str, error: &DurationError) -> Self {
        Self::Duration {
            field: field.to_owned(),
            message: error.to_string(),
        }
    }

    pub(crate) fn date_time(field: &str, message: impl Into<String>) -> Self {
        Self::DateTime {
            field: field.to_owned(),
            message: message.into(),
        }
    }

    pub(crate) fn shape(field: &str, message: impl Into<String>) -> Self {
        Self::Shape {
            field: field.to_owned(),
            message: message.into(),
        }
    }
}
