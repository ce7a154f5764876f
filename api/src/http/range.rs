//! The `Range` header: one byte range (`bytes=a-b`, `bytes=a-`,
//! `bytes=-n`). Several ranges are answered with the whole body, which
//! RFC 9110 allows.

/// What to send of a body of a known length.
#[derive(Debug, PartialEq, Eq)]
pub enum RangeAnswer {
    Whole,
    /// Bytes `[start, end)`.
    Part {
        start: u64,
        end: u64,
    },
    NotSatisfiable,
}

pub fn parse_range(header: Option<&str>, size_bytes: u64) -> RangeAnswer {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return RangeAnswer::Whole;
    };
    if spec.contains(',') {
        return RangeAnswer::Whole;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return RangeAnswer::Whole;
    };
    let parse = |text: &str| text.trim().parse::<u64>().ok();
    match (first.trim().is_empty(), last.trim().is_empty()) {
        (true, true) => RangeAnswer::Whole,
        (true, false) => match parse(last) {
            None => RangeAnswer::Whole,
            Some(0) => RangeAnswer::NotSatisfiable,
            Some(_) if size_bytes == 0 => RangeAnswer::NotSatisfiable,
            Some(n) => RangeAnswer::Part { start: size_bytes.saturating_sub(n), end: size_bytes },
        },
        (false, open_end) => {
            let Some(start) = parse(first) else {
                return RangeAnswer::Whole;
            };
            let end = if open_end {
                size_bytes
            } else {
                match parse(last) {
                    Some(last) if last >= start => (last + 1).min(size_bytes),
                    _ => return RangeAnswer::Whole,
                }
            };
            if start >= size_bytes {
                RangeAnswer::NotSatisfiable
            } else {
                RangeAnswer::Part { start, end }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        use RangeAnswer::*;
        assert_eq!(parse_range(None, 10), Whole);
        assert_eq!(parse_range(Some("bytes=0-0"), 10), Part { start: 0, end: 1 });
        assert_eq!(parse_range(Some("bytes=2-"), 10), Part { start: 2, end: 10 });
        assert_eq!(parse_range(Some("bytes=2-100"), 10), Part { start: 2, end: 10 });
        assert_eq!(parse_range(Some("bytes=-3"), 10), Part { start: 7, end: 10 });
        assert_eq!(parse_range(Some("bytes=-30"), 10), Part { start: 0, end: 10 });
        assert_eq!(parse_range(Some("bytes=10-"), 10), NotSatisfiable);
        assert_eq!(parse_range(Some("bytes=-0"), 10), NotSatisfiable);
        assert_eq!(parse_range(Some("bytes=0-"), 0), NotSatisfiable);
        assert_eq!(parse_range(Some("bytes=5-2"), 10), Whole);
        assert_eq!(parse_range(Some("bytes=0-1,3-4"), 10), Whole);
        assert_eq!(parse_range(Some("items=0-1"), 10), Whole);
        assert_eq!(parse_range(Some("bytes=x-1"), 10), Whole);
    }
}
