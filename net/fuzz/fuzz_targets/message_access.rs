//! Arbitrary bytes as the payload of a frame with a correct CRC: what a
//! buggy or hostile peer can put in front of the rkyv validator, which
//! random frames seldom reach because the CRC stops them first.
//!
//! Validation must never panic; an accepted archive must deserialise, and
//! its owned form must survive another trip through a frame.

#![no_main]

use cairn_net::frame::{decode_frame, encode_message, encode_payload_frame, FrameBuf, FrameBytes};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|payload: &[u8]| {
    let mut frame = FrameBytes::new();
    if encode_payload_frame(payload, &mut frame).is_err() {
        return; // Over the payload bound: the header check's job, not this target's.
    }
    let mut buf = FrameBuf::new();
    if decode_frame(&frame, &mut buf).is_err() {
        return;
    }
    let message = buf.deserialize().expect("a validated archive deserialises");
    encode_message(&message, &mut frame).expect("a received message re-encodes");
    decode_frame(&frame, &mut buf).expect("our own frame decodes");
    assert_eq!(buf.deserialize().expect("our own frame deserialises"), message);
});
