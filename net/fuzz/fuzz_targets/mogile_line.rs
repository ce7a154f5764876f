//! Arbitrary bytes, as a MogileFS client could send them, through the
//! tracker line reader and the request parser.
//!
//! The input is fed to one `LineReader` in pieces, as a connection reads
//! it. Nothing may panic; the reader never holds more than the line bound
//! plus one read; every line it hands out is within the bound; and every
//! request that parses re-encodes (as an answer's arguments) to pairs that
//! parse back to the same request.

#![no_main]

use cairn_net::mogile_line::{ok_line, parse_line, Line, LineReader, LINE_LEN_MAX_BYTES};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut reader = LineReader::new();
    // The first byte picks the read size, so splits land everywhere.
    let (chunk, input) = match data.split_first() {
        Some((first, rest)) => (usize::from(*first).max(1) * 7, rest),
        None => return,
    };
    for piece in input.chunks(chunk) {
        let room = reader.buffer_mut();
        let n = piece.len().min(room.len());
        room[..n].copy_from_slice(&piece[..n]);
        reader.filled(n);
        loop {
            match reader.next_line() {
                Line::Incomplete => break,
                Line::TooLong => {}
                Line::Complete(line) => {
                    assert!(line.len() <= LINE_LEN_MAX_BYTES + 1);
                    if let Ok(request) = parse_line(line) {
                        let answer =
                            ok_line(request.args.iter().map(|(n, v)| (n.as_str(), v.as_str())));
                        let mut again = b"x ".to_vec();
                        again.extend_from_slice(&answer[3..answer.len() - 2]);
                        let reparsed = parse_line(&again).expect("an encoded request parses");
                        assert_eq!(reparsed.args, request.args);
                    }
                }
            }
        }
        assert!(reader.pending_bytes() <= LINE_LEN_MAX_BYTES + 1 + chunk);
    }
});
