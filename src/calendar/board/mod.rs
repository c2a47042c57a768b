//! What a ReleaseCalendar's status shows, decided from the calendar, the Releases that name it
//! and the clock, all given: its rows (the Releases merged with the planned entries), the
//! conflicts among them, and the whole desired status with the moment it next changes. Pure:
//! the calendar controller (`controller::calendar`) reads the objects and writes the result.

pub mod conflicts;
pub mod rows;
pub mod status;
