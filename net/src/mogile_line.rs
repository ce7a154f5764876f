//! The MogileFS tracker protocol's wire format: one request per line,
//! `command name=value&name=value`, and one answer line per request,
//! `OK name=value&…` or `ERR code message`, each ending in `\r\n`.
//!
//! This module owns the bytes only: splitting a connection's input into
//! lines (with a bound), decoding a request line, encoding answers with
//! MogileFS's own `eurl`. What a command means lives in the `cairn`
//! package (`src/mogile/`). The format is described in `docs/mogilefs.md`.

use thiserror::Error;

/// The longest request line accepted, without its line end.
pub const LINE_LEN_MAX_BYTES: usize = 64 * 1024;

/// A decoded request: the command in lowercase and its arguments in the
/// order they came. A name given twice keeps its first value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub command: String,
    pub args: Vec<(String, String)>,
}

impl Request {
    /// The value of `name`, if it was given.
    pub fn arg(&self, name: &str) -> Option<&str> {
        self.args.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// The value of `name` when it was given and is not empty (MogileFS
    /// treats an empty argument as a missing one).
    pub fn nonempty(&self, name: &str) -> Option<&str> {
        self.arg(name).filter(|v| !v.is_empty())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LineError {
    /// The line has no command word (`^\w+`).
    #[error("no command on the line")]
    NoCommand,
    #[error("bad %-encoding at byte {at} of the line")]
    BadEncoding { at: usize },
    #[error("argument {name:?} is not UTF-8 once decoded")]
    NotUtf8 { name: String },
    #[error("request line longer than {LINE_LEN_MAX_BYTES} bytes")]
    TooLong,
}

/// Decodes one request line (without its `\n`; a trailing `\r` is dropped).
///
/// The command is the leading run of `[A-Za-z0-9_]`, lowercased; the
/// arguments follow after spaces. Pieces are split on `&` (empty pieces are
/// skipped), a name from its value on the first `=`; `+` means a space and
/// `%XX` a byte. Unlike MogileFS, which keeps a `%` that is not followed by
/// two hex digits, a bad escape is an error, and so are names or values
/// that are not UTF-8 once decoded.
pub fn parse_line(line: &[u8]) -> Result<Request, LineError> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.len() > LINE_LEN_MAX_BYTES {
        return Err(LineError::TooLong);
    }
    let command_len = line.iter().take_while(|c| c.is_ascii_alphanumeric() || **c == b'_').count();
    if command_len == 0 {
        return Err(LineError::NoCommand);
    }
    let command = String::from_utf8_lossy(&line[..command_len]).to_ascii_lowercase();
    let rest = &line[command_len..];
    let spaces = rest.iter().take_while(|c| c.is_ascii_whitespace()).count();
    if spaces == 0 && !rest.is_empty() {
        // `get_paths&x`: not a command word followed by arguments.
        return Err(LineError::NoCommand);
    }
    let args_start = command_len + spaces;
    let mut args: Vec<(String, String)> = Vec::new();
    let mut offset = args_start;
    for piece in line[args_start..].split(|c| *c == b'&') {
        let at = offset;
        offset += piece.len() + 1;
        if piece.is_empty() {
            continue;
        }
        let (name, value) = match piece.iter().position(|c| *c == b'=') {
            Some(eq) => (&piece[..eq], &piece[eq + 1..]),
            None => (piece, &piece[piece.len()..]),
        };
        let value_at = at + name.len() + 1;
        let name = text(name, at)?;
        let value = text(value, value_at).map_err(|error| match error {
            LineError::NotUtf8 { .. } => LineError::NotUtf8 { name: name.clone() },
            other => other,
        })?;
        if !args.iter().any(|(n, _)| *n == name) {
            args.push((name, value));
        }
    }
    Ok(Request { command, args })
}

fn text(encoded: &[u8], at: usize) -> Result<String, LineError> {
    let bytes = unescape(encoded).map_err(|i| LineError::BadEncoding { at: at + i })?;
    String::from_utf8(bytes).map_err(|error| LineError::NotUtf8 {
        name: String::from_utf8_lossy(error.as_bytes()).into(),
    })
}

/// Reverses [`eurl`] (and any other percent-encoding): `+` is a space,
/// `%XX` a byte. Answers the offset of a bad escape.
pub fn unescape(encoded: &[u8]) -> Result<Vec<u8>, usize> {
    let mut out = Vec::with_capacity(encoded.len());
    let mut i = 0;
    while i < encoded.len() {
        match encoded[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let high = encoded.get(i + 1).and_then(|c| hex_value(*c));
                let low = encoded.get(i + 2).and_then(|c| hex_value(*c));
                let (Some(high), Some(low)) = (high, low) else {
                    return Err(i);
                };
                out.push(high << 4 | low);
                i += 2;
            }
            other => out.push(other),
        }
        i += 1;
    }
    Ok(out)
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// MogileFS's `eurl`: letters, digits and `_ , - . / \ :` stay, a space
/// becomes `+`, every other byte `%XX` (uppercase hex).
pub fn eurl(text: &str, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &c in text.as_bytes() {
        match c {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' => out.push(c),
            b'_' | b',' | b'-' | b'.' | b'/' | b'\\' | b':' => out.push(c),
            b' ' => out.push(b'+'),
            _ => out.extend_from_slice(&[b'%', HEX[usize::from(c >> 4)], HEX[usize::from(c & 15)]]),
        }
    }
}

/// `OK name=value&…\r\n`; with no pairs, `OK \r\n` (as MogileFS sends it).
pub fn ok_line<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Vec<u8> {
    let mut out = b"OK ".to_vec();
    for (i, (name, value)) in pairs.into_iter().enumerate() {
        if i > 0 {
            out.push(b'&');
        }
        eurl(name, &mut out);
        out.push(b'=');
        eurl(value, &mut out);
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// `ERR code message\r\n`, the message encoded with [`eurl`].
pub fn err_line(code: &str, message: &str) -> Vec<u8> {
    let mut out = b"ERR ".to_vec();
    out.extend_from_slice(code.as_bytes());
    out.push(b' ');
    eurl(message, &mut out);
    out.extend_from_slice(b"\r\n");
    out
}

/// Splits a connection's input into lines of at most [`LINE_LEN_MAX_BYTES`].
///
/// Feed it what arrives with [`LineReader::buffer_mut`]/[`LineReader::filled`]
/// and take lines with [`LineReader::next_line`]. A line that grows past
/// the bound is reported once as [`Line::TooLong`], and its bytes up to the
/// next `\n` are dropped as they arrive, so the buffer never holds more
/// than the bound plus one read.
pub struct LineReader {
    buf: Vec<u8>,
    /// Bytes of `buf` holding input not yet taken.
    len: usize,
    /// Bytes at the front of `buf` already handed out as a line.
    consumed: usize,
    /// Inside an over-long line: drop input up to the next `\n`.
    skipping: bool,
}

/// One step of [`LineReader::next_line`].
#[derive(Debug, PartialEq, Eq)]
pub enum Line<'a> {
    /// A whole line, without its `\n` (a `\r` before it is kept).
    Complete(&'a [u8]),
    /// A line longer than the bound started; it is being skipped.
    TooLong,
    /// More input is needed.
    Incomplete,
}

/// Bytes asked of one read.
const READ_CHUNK_BYTES: usize = 16 * 1024;

impl Default for LineReader {
    fn default() -> Self {
        LineReader::new()
    }
}

impl LineReader {
    pub fn new() -> LineReader {
        LineReader { buf: Vec::new(), len: 0, consumed: 0, skipping: false }
    }

    /// Room for the next read; call [`LineReader::filled`] with what it got.
    pub fn buffer_mut(&mut self) -> &mut [u8] {
        if self.consumed > 0 {
            self.buf.copy_within(self.consumed..self.len, 0);
            self.len -= self.consumed;
            self.consumed = 0;
        }
        if self.buf.len() < self.len + READ_CHUNK_BYTES {
            self.buf.resize(self.len + READ_CHUNK_BYTES, 0);
        }
        &mut self.buf[self.len..]
    }

    pub fn filled(&mut self, count: usize) {
        assert!(self.len + count <= self.buf.len(), "filled beyond the buffer");
        self.len += count;
    }

    /// Bytes received and not yet part of a line answered.
    pub fn pending_bytes(&self) -> usize {
        self.len - self.consumed
    }

    pub fn next_line(&mut self) -> Line<'_> {
        loop {
            let pending = &self.buf[self.consumed..self.len];
            let newline = pending.iter().position(|c| *c == b'\n');
            if self.skipping {
                match newline {
                    Some(at) => {
                        self.consumed += at + 1;
                        self.skipping = false;
                        continue;
                    }
                    None => {
                        self.consumed = self.len;
                        return Line::Incomplete;
                    }
                }
            }
            return match newline {
                // The `\r` of a `\r\n` may take the line one byte past the bound.
                Some(at) if at <= LINE_LEN_MAX_BYTES + 1 => {
                    let start = self.consumed;
                    self.consumed += at + 1;
                    Line::Complete(&self.buf[start..start + at])
                }
                Some(_) => {
                    self.skipping = true;
                    Line::TooLong
                }
                None if pending.len() > LINE_LEN_MAX_BYTES + 1 => {
                    self.skipping = true;
                    Line::TooLong
                }
                None => Line::Incomplete,
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn encoded(text: &str) -> String {
        let mut out = Vec::new();
        eurl(text, &mut out);
        String::from_utf8(out).expect("eurl output is ASCII")
    }

    #[test]
    fn eurl_keeps_what_mogilefs_keeps() {
        assert_eq!(encoded("aZ09_,-./\\:"), "aZ09_,-./\\:");
        assert_eq!(encoded("a b"), "a+b");
        assert_eq!(encoded("a&b=c%+?#~"), "a%26b%3Dc%25%2B%3F%23%7E");
        assert_eq!(encoded("é\n"), "%C3%A9%0A");
    }

    #[test]
    fn answers_are_byte_exact() {
        assert_eq!(ok_line([]), b"OK \r\n");
        assert_eq!(
            ok_line([("fid", "12"), ("path", "http://h:1/a b")]),
            b"OK fid=12&path=http://h:1/a+b\r\n"
        );
        assert_eq!(err_line("unknown_key", "unknown key"), b"ERR unknown_key unknown+key\r\n");
    }

    #[test]
    fn requests_decode_like_mogilefs() {
        let request = parse_line(b"GET_PATHS domain=d&key=a%2Fb+c&&noverify=1\r").unwrap();
        assert_eq!(request.command, "get_paths");
        assert_eq!(request.arg("domain"), Some("d"));
        assert_eq!(request.arg("key"), Some("a/b c"));
        assert_eq!(request.arg("noverify"), Some("1"));
        assert_eq!(parse_line(b"noop").unwrap().args, vec![]);
        assert_eq!(parse_line(b"noop   ").unwrap().args, vec![]);
        let request = parse_line(b"x a=1&a=2&b&c=").unwrap();
        assert_eq!(
            request.args,
            vec![("a".into(), "1".into()), ("b".into(), "".into()), ("c".into(), "".into())]
        );
        assert_eq!(request.nonempty("c"), None);
    }

    #[test]
    fn malformed_requests_are_errors() {
        assert_eq!(parse_line(b""), Err(LineError::NoCommand));
        assert_eq!(parse_line(b" noop"), Err(LineError::NoCommand));
        assert_eq!(parse_line(b"get&x=1"), Err(LineError::NoCommand));
        assert_eq!(parse_line(b"x key=a%2"), Err(LineError::BadEncoding { at: 7 }));
        assert_eq!(parse_line(b"x key=%zz"), Err(LineError::BadEncoding { at: 6 }));
        assert!(matches!(parse_line(b"x key=%ff"), Err(LineError::NotUtf8 { .. })));
        let long = [b'a'; LINE_LEN_MAX_BYTES + 1];
        assert_eq!(parse_line(&long), Err(LineError::TooLong));
    }

    #[test]
    fn reader_splits_lines_and_skips_long_ones() {
        let mut reader = LineReader::new();
        let feed = |reader: &mut LineReader, bytes: &[u8]| {
            for chunk in bytes.chunks(READ_CHUNK_BYTES) {
                reader.buffer_mut()[..chunk.len()].copy_from_slice(chunk);
                reader.filled(chunk.len());
            }
        };
        feed(&mut reader, b"noop\r\nnoop\n");
        assert_eq!(reader.next_line(), Line::Complete(b"noop\r"));
        assert_eq!(reader.next_line(), Line::Complete(b"noop"));
        assert_eq!(reader.next_line(), Line::Incomplete);
        let mut long = vec![b'x'; 3 * LINE_LEN_MAX_BYTES];
        long.extend_from_slice(b"\nnoop\n");
        let mut answers = Vec::new();
        for chunk in long.chunks(1000) {
            feed(&mut reader, chunk);
            loop {
                match reader.next_line() {
                    Line::Incomplete => break,
                    Line::TooLong => answers.push("too long".to_string()),
                    Line::Complete(line) => answers.push(String::from_utf8_lossy(line).into()),
                }
            }
            assert!(reader.pending_bytes() <= LINE_LEN_MAX_BYTES + 1000 + 1);
        }
        assert_eq!(answers, ["too long", "noop"]);
    }

    proptest! {
        #[test]
        fn eurl_round_trips(pairs in proptest::collection::vec(("[a-z_]{1,8}", any::<String>()), 0..6)) {
            let mut unique: Vec<(String, String)> = Vec::new();
            for (name, value) in pairs {
                if !unique.iter().any(|(n, _)| *n == name) {
                    unique.push((name, value));
                }
            }
            let answer = ok_line(unique.iter().map(|(n, v)| (n.as_str(), v.as_str())));
            // An answer's arguments read back as a request's.
            let mut line = b"cmd ".to_vec();
            line.extend_from_slice(&answer[3..answer.len() - 2]);
            let request = parse_line(&line).unwrap();
            let expected: Vec<_> = unique.into_iter().filter(|(n, _)| !n.is_empty()).collect();
            prop_assert_eq!(request.args, expected);
        }

        /// The reader, fed in arbitrary pieces, hands out what splitting
        /// the whole input on `\n` does, with over-long lines reported once.
        #[test]
        fn reader_matches_a_split_on_newlines(
            lines in proptest::collection::vec((0..LINE_LEN_MAX_BYTES + 300, any::<bool>()), 1..5),
            tail in 0..LINE_LEN_MAX_BYTES + 300,
            chunk in 1..40_000usize,
        ) {
            let mut input = Vec::new();
            let mut expected = Vec::new();
            for (i, (len, crlf)) in lines.iter().enumerate() {
                let mut line = vec![b'a' + (i % 26) as u8; *len];
                if *crlf {
                    line.push(b'\r');
                }
                input.extend_from_slice(&line);
                input.push(b'\n');
                expected.push(if line.len() > LINE_LEN_MAX_BYTES + 1 { None } else { Some(line) });
            }
            input.extend(std::iter::repeat_n(b'z', tail));
            if tail > LINE_LEN_MAX_BYTES + 1 {
                expected.push(None);
            }
            let mut reader = LineReader::new();
            let mut got = Vec::new();
            let mut rest = &input[..];
            while !rest.is_empty() {
                // A read takes what arrived, up to the room offered.
                let room = reader.buffer_mut();
                let n = rest.len().min(room.len()).min(chunk);
                room[..n].copy_from_slice(&rest[..n]);
                reader.filled(n);
                rest = &rest[n..];
                loop {
                    match reader.next_line() {
                        Line::Incomplete => break,
                        Line::TooLong => got.push(None),
                        Line::Complete(line) => got.push(Some(line.to_vec())),
                    }
                }
                prop_assert!(reader.pending_bytes() <= LINE_LEN_MAX_BYTES + 1 + READ_CHUNK_BYTES);
            }
            prop_assert_eq!(got, expected);
        }

        #[test]
        fn parser_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse_line(&bytes);
        }
    }
}
