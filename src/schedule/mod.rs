//! The schedule engine: cron dialects, time zones and daylight saving.
