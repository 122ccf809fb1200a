//! Fuzz the decoding of log entries' payloads: any bytes (from a damaged
//! disk or a peer) must decode or fail without panicking, and whatever
//! decodes must encode back to bytes that decode to the same value.

#![no_main]

use gnomon_storage::codec;
use gnomon_storage::command::Batch;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(batch) = codec::decode::<Batch>("batch", data) else {
        return;
    };
    for command in &batch.commands {
        // Validation runs on every decoded command when it is applied.
        let _ = command.validate();
    }
    let again: Batch = codec::decode("batch", &codec::encode(&batch)).expect("a re-encoded batch decodes");
    assert_eq!(again, batch);
});
