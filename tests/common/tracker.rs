//! A MogileFS tracker-protocol client written from the protocol's
//! description: one `command k=v&k=v` line per request over TCP, one
//! `OK …` or `ERR code message` line per answer.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

use super::{reply, TestNode};

/// How long an answer may take.
const WAIT: Duration = Duration::from_secs(20);

/// A tracker connection.
pub struct Tracker {
    reader: BufReader<TcpStream>,
    pub stream: TcpStream,
}

/// `Ok(arguments)` or `Err((code, message))`.
pub type Answer = Result<HashMap<String, String>, (String, String)>;

impl Tracker {
    pub fn connect(node: &TestNode) -> Tracker {
        let stream = TcpStream::connect(("127.0.0.1", node.mogile_port)).expect("connect");
        stream.set_read_timeout(Some(WAIT)).expect("timeout");
        Tracker { reader: BufReader::new(stream.try_clone().expect("clone")), stream }
    }

    /// Sends raw bytes and reads one answer line, `\r\n` included.
    pub fn raw(&mut self, request: &[u8]) -> String {
        self.stream.write_all(request).expect("send");
        self.read_line()
    }

    pub fn read_line(&mut self) -> String {
        let mut line = String::new();
        self.reader.read_line(&mut line).expect("answer");
        assert!(line.ends_with("\r\n"), "answers end in CRLF: {line:?}");
        line
    }

    pub fn call(&mut self, command: &str, args: &[(&str, &str)]) -> Answer {
        let encoded: Vec<String> =
            args.iter().map(|(k, v)| format!("{}={}", encode(k), encode(v))).collect();
        let line = self.raw(format!("{command} {}\r\n", encoded.join("&")).as_bytes());
        parse_answer(&line)
    }

    pub fn ok(&mut self, command: &str, args: &[(&str, &str)]) -> HashMap<String, String> {
        self.call(command, args).unwrap_or_else(|e| panic!("{command} {args:?} failed: {e:?}"))
    }

    /// Asserts an `ERR` answer with `code`.
    pub fn err(&mut self, command: &str, args: &[(&str, &str)], code: &str) {
        match self.call(command, args) {
            Err((got, _)) => assert_eq!(got, code, "{command} {args:?}"),
            Ok(answer) => panic!("{command} {args:?} answered OK {answer:?}, not {code}"),
        }
    }
}

pub fn parse_answer(line: &str) -> Answer {
    let line = line.strip_suffix("\r\n").expect("CRLF");
    if let Some(args) = line.strip_prefix("OK ") {
        let mut out = HashMap::new();
        for pair in args.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            out.insert(decode(k), decode(v));
        }
        return Ok(out);
    }
    let rest = line.strip_prefix("ERR ").unwrap_or_else(|| panic!("not an answer: {line:?}"));
    let (code, message) = rest.split_once(' ').unwrap_or((rest, ""));
    Err((code.to_string(), decode(message)))
}

/// Form encoding: letters, digits and `-_.` as they are, space as `+`.
pub fn encode(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        match byte {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => out.push(byte as char),
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

pub fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).expect("ascii");
                out.push(u8::from_str_radix(hex, 16).expect("hex escape"));
                i += 2;
            }
            other => out.push(other),
        }
        i += 1;
    }
    String::from_utf8(out).expect("utf-8")
}

/// create_open → PUT → create_close; answers the fid.
pub fn store(tracker: &mut Tracker, domain: &str, key: &str, data: &[u8]) -> u64 {
    let open = tracker.ok("create_open", &[("domain", domain), ("key", key)]);
    let path = &open["path"];
    let put = reply(super::http::put(path).send_bytes(data));
    assert_eq!(put.status, 201, "{}", String::from_utf8_lossy(&put.body));
    let size = data.len().to_string();
    let close = [
        ("domain", domain),
        ("key", key),
        ("fid", open["fid"].as_str()),
        ("devid", open["devid"].as_str()),
        ("path", path.as_str()),
        ("size", size.as_str()),
    ];
    tracker.ok("create_close", &close);
    open["fid"].parse().expect("numeric fid")
}
