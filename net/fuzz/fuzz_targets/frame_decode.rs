//! Arbitrary bytes, as a peer could send them, through the frame decoder.
//!
//! Frames are decoded one after another with one buffer, as a connection
//! reads them. Decoding must never panic, and whatever is accepted must
//! re-encode to exactly the bytes it came from.

#![no_main]

use cairn_net::frame::{decode_frame, encode_payload_frame, DecodedFrame, FrameBuf, FrameBytes};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut buf = FrameBuf::new();
    let mut again = FrameBytes::new();
    let mut rest = data;
    while let Ok(decoded) = decode_frame(rest, &mut buf) {
        let frame_len_bytes = decoded.frame_len_bytes();
        if let DecodedFrame::Message { .. } = decoded {
            let payload = buf.payload().expect("a decoded message frame holds its payload");
            encode_payload_frame(payload, &mut again).expect("a decoded payload is within bound");
            assert_eq!(&again[..], &rest[..frame_len_bytes]);
            buf.deserialize().expect("a validated archive deserialises");
        }
        rest = &rest[frame_len_bytes..];
    }
});
