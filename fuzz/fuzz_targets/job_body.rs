//! Fuzz the job body as it arrives over HTTP: any JSON must be accepted or
//! refused by field without panicking, and an accepted body must survive
//! the trip through its stored form unchanged.

#![no_main]

use gnomon::job::JobSpec;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(spec) = serde_json::from_slice::<JobSpec>(data) else {
        return;
    };
    let Ok(schedule) = spec.validate(true) else {
        return;
    };
    let _ = schedule.next_after_ms(1_767_225_600_000);
    let stored = spec.to_put("fuzz");
    assert_eq!(JobSpec::parse_stored(&stored.definition).expect("stored form parses"), spec);
});
