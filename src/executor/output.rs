//! The output kept from an attempt: the first bytes a target produced, capped
//! at [`OUTPUT_LIMIT`] (SPEC §7), with a marker when anything was cut.

/// The most output kept per attempt, in bytes of the final UTF-8 text,
/// marker included.
pub const OUTPUT_LIMIT: usize = 64 * 1024;

/// How every truncation marker starts, so readers can tell cut output apart.
pub const TRUNCATION_MARKER: &str = "[gnomon: output truncated";

/// Collects output, keeping the first [`OUTPUT_LIMIT`] bytes and counting the
/// rest so the producer can be drained without holding it in memory.
#[derive(Debug, Default)]
pub(crate) struct CappedOutput {
    kept: Vec<u8>,
    dropped: u64,
    /// Set when reading stopped before the producer was done, so the total
    /// size is unknown.
    incomplete: bool,
}

impl CappedOutput {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Keeps what still fits and counts the rest.
    pub(crate) fn push(&mut self, bytes: &[u8]) {
        let room = OUTPUT_LIMIT - self.kept.len();
        let take = room.min(bytes.len());
        self.kept.extend_from_slice(&bytes[..take]);
        self.dropped += (bytes.len() - take) as u64;
    }

    /// Whether nothing more will be kept.
    pub(crate) fn is_full(&self) -> bool {
        self.kept.len() >= OUTPUT_LIMIT
    }

    /// Records that reading stopped early, with more data still unread.
    pub(crate) fn mark_incomplete(&mut self) {
        self.incomplete = true;
    }

    /// The kept bytes as text (invalid UTF-8 replaced), at most
    /// [`OUTPUT_LIMIT`] bytes long, ending with a marker if anything was cut.
    pub(crate) fn finish(self) -> String {
        let mut text = String::from_utf8_lossy(&self.kept).into_owned();
        if self.dropped == 0 && !self.incomplete && text.len() <= OUTPUT_LIMIT {
            return text;
        }
        let marker = if self.incomplete {
            format!("\n{TRUNCATION_MARKER} to 64 KiB; the rest was not read]")
        } else {
            let total = self.kept.len() as u64 + self.dropped;
            format!("\n{TRUNCATION_MARKER} to 64 KiB of {total} bytes]")
        };
        // Lossy decoding can lengthen the text, so cut the text, not the bytes.
        let mut end = OUTPUT_LIMIT - marker.len();
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push_str(&marker);
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_output_is_kept_whole() {
        let mut out = CappedOutput::new();
        out.push(b"hello ");
        out.push(b"world");
        assert!(!out.is_full());
        assert_eq!(out.finish(), "hello world");
    }

    #[test]
    fn exactly_the_limit_is_not_marked() {
        let mut out = CappedOutput::new();
        out.push(&vec![b'a'; OUTPUT_LIMIT]);
        assert!(out.is_full());
        let text = out.finish();
        assert_eq!(text.len(), OUTPUT_LIMIT);
        assert!(!text.contains(TRUNCATION_MARKER));
    }

    #[test]
    fn overflow_is_cut_and_marked_with_the_total() {
        let mut out = CappedOutput::new();
        for _ in 0..100 {
            out.push(&[b'x'; 1000]);
        }
        let text = out.finish();
        assert!(text.len() <= OUTPUT_LIMIT, "{}", text.len());
        assert!(text.starts_with("xxxx"));
        assert!(
            text.ends_with("[gnomon: output truncated to 64 KiB of 100000 bytes]"),
            "{}",
            &text[text.len() - 80..]
        );
    }

    #[test]
    fn unread_rest_is_marked() {
        let mut out = CappedOutput::new();
        out.push(b"partial");
        out.mark_incomplete();
        let text = out.finish();
        assert!(text.starts_with("partial\n"));
        assert!(text.ends_with("the rest was not read]"));
    }

    #[test]
    fn invalid_utf8_never_grows_past_the_limit() {
        // Each invalid byte becomes a three-byte replacement character.
        let mut out = CappedOutput::new();
        out.push(&vec![0xff; OUTPUT_LIMIT]);
        let text = out.finish();
        assert!(text.len() <= OUTPUT_LIMIT, "{}", text.len());
        assert!(text.starts_with('\u{fffd}'));
        assert!(text.contains(TRUNCATION_MARKER));
    }

    #[test]
    fn a_cut_never_splits_a_character() {
        let mut out = CappedOutput::new();
        out.push(&"é".repeat(OUTPUT_LIMIT).into_bytes());
        let text = out.finish();
        assert!(text.len() <= OUTPUT_LIMIT);
        let body = &text[..text.find('\n').unwrap()];
        assert!(body.chars().all(|c| c == 'é'));
    }
}
