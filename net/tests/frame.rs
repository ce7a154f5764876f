//! The frame format on byte slices: layout as net/PROTOCOL.md writes it,
//! round trips of every message, and every way a frame can be bad.

mod samples;

use cairn_net::frame::{
    decode_frame, encode_message, encode_payload_frame, DecodedFrame, EncodeError, FrameBuf,
    FrameBytes, FrameError, FrameHeader, FrameKind, FRAME_HEADER_BYTES, FRAME_PAYLOAD_MAX_BYTES,
};
use cairn_net::Message;

fn encoded(message: &Message) -> FrameBytes {
    let mut frame = FrameBytes::new();
    encode_message(message, &mut frame).expect("a small message encodes");
    frame
}

/// A frame whose payload is `payload` with a correct CRC, to reach the
/// checks behind the CRC.
fn framed_payload(payload: &[u8]) -> FrameBytes {
    let mut frame = FrameBytes::new();
    encode_payload_frame(payload, &mut frame).expect("payload within the bound");
    frame
}

fn decode_error(bytes: &[u8]) -> FrameError {
    match decode_frame(bytes, &mut FrameBuf::new()) {
        Ok(decoded) => panic!("decoded {decoded:?} from bad bytes"),
        Err(error) => error,
    }
}

#[test]
fn every_variant_round_trips_in_place_and_owned() {
    let mut buf = FrameBuf::new();
    for message in samples::every_variant() {
        let frame = encoded(&message);
        let decoded = decode_frame(&frame, &mut buf).expect("own frame decodes");
        assert_eq!(decoded, DecodedFrame::Message { frame_len_bytes: frame.len() });
        let archived = buf.access().expect("own frame validates");
        assert!(*archived == message, "archived {archived:?} is not {message:?}");
        assert_eq!(buf.deserialize().expect("own frame deserialises"), message);
    }
}

#[test]
fn header_layout_is_as_documented() {
    for message in samples::every_variant() {
        let frame = encoded(&message);
        assert_eq!(&frame[0..4], b"CRN1", "magic");
        assert_eq!(frame[4], 3, "version");
        assert_eq!(frame[5], 1, "kind: message");
        assert_eq!(&frame[6..8], &[0, 0], "reserved");
        let payload_len_bytes =
            u32::from_le_bytes(frame[8..12].try_into().expect("four bytes")) as usize;
        let payload = &frame[16..16 + payload_len_bytes];
        assert_eq!(&frame[12..16], &crc32fast::hash(payload).to_le_bytes(), "crc32");
        assert_eq!(frame.len(), 16 + payload_len_bytes.next_multiple_of(16), "padded to 16");
        assert!(frame[16 + payload_len_bytes..].iter().all(|byte| *byte == 0), "zero padding");
        // The payload is the plain rkyv archive of the message.
        let archived = rkyv::access::<cairn_net::ArchivedMessage, rkyv::rancor::Error>(payload)
            .expect("payload is the archive");
        assert!(*archived == message);
    }
}

#[test]
fn blob_header_layout_is_as_documented() {
    let header = FrameHeader::blob_body(0x0102_0304).encode();
    assert_eq!(header, [b'C', b'R', b'N', b'1', 3, 2, 0, 0, 4, 3, 2, 1, 0, 0, 0, 0]);
}

/// Pins the archive format itself: rkyv's layout follows its cargo features
/// (endianness, alignment, pointer width), and any crate in the workspace
/// could switch one on for everybody. If this fails, the wire changed: bump
/// `FRAME_VERSION` or undo the feature. The same bytes are in PROTOCOL.md.
#[test]
fn hello_ack_frame_is_byte_for_byte_the_documented_one() {
    let frame = encoded(&Message::HelloAck { node_id: 1, cluster_id: 2, proof: [0; 32] });
    let mut expected = vec![
        0x43, 0x52, 0x4e, 0x31, 0x03, 0x01, 0x00,
        0x00, // magic "CRN1", version 3, kind 1, reserved
        0x70, 0x00, 0x00, 0x00, 0xaa, 0x40, 0x84,
        0x43, // payload length 112, CRC32 0x438440aa
        0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, // tag 1 (HelloAck), 7 bytes of alignment
        0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // node_id 1
        0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // cluster_id 2
    ];
    // The proof (zeros here) and the rest of the 112-byte enum (sized by
    // its largest variant), zeros; 16 + 112 is already a multiple of 16,
    // so no padding follows.
    expected.resize(16 + 112, 0);
    assert_eq!(&frame[..], &expected[..], "got {:02x?}", &frame[..]);
}

#[test]
fn frames_decode_one_after_another_with_one_buffer() {
    let messages = samples::every_variant();
    let mut stream = Vec::new();
    for message in &messages {
        stream.extend_from_slice(&encoded(message));
    }
    let mut buf = FrameBuf::new();
    let mut rest = &stream[..];
    for message in &messages {
        let decoded = decode_frame(rest, &mut buf).expect("own frame decodes");
        assert_eq!(&buf.deserialize().expect("validated"), message);
        rest = &rest[decoded.frame_len_bytes()..];
    }
    assert!(rest.is_empty());
}

#[test]
fn blob_body_frame_decodes_to_its_body() {
    let mut bytes = FrameHeader::blob_body(5).encode().to_vec();
    bytes.extend_from_slice(b"hello and then the next frame");
    let mut buf = FrameBuf::new();
    let decoded = decode_frame(&bytes, &mut buf).expect("blob frame decodes");
    assert_eq!(decoded, DecodedFrame::BlobBody { body: b"hello" });
    assert_eq!(decoded.frame_len_bytes(), FRAME_HEADER_BYTES + 5);
    assert!(matches!(buf.access(), Err(FrameError::NoMessage)));
}

#[test]
fn truncated_at_every_byte_offset_is_truncated() {
    for message in samples::every_variant() {
        let frame = encoded(&message);
        for cut_bytes in 0..frame.len() {
            let expected_bytes = if cut_bytes < 16 { 16 } else { frame.len() as u64 };
            match decode_error(&frame[..cut_bytes]) {
                FrameError::Truncated { expected_bytes: e, received_bytes: r }
                    if e == expected_bytes && r == cut_bytes as u64 => {}
                other => panic!("cut at {cut_bytes} of {message:?}: {other:?}"),
            }
        }
    }
    let mut blob = FrameHeader::blob_body(10).encode().to_vec();
    blob.extend_from_slice(&[7; 9]);
    assert!(matches!(
        decode_error(&blob),
        FrameError::Truncated { expected_bytes: 26, received_bytes: 25 }
    ));
}

#[test]
fn bad_crc_is_rejected() {
    let mut frame = encoded(&Message::Heartbeat { term: 1, leader_id: 2, sent_ms: 3 });
    frame[16] ^= 0x01;
    assert!(matches!(decode_error(&frame), FrameError::CrcMismatch { .. }));

    let mut frame = encoded(&Message::Heartbeat { term: 1, leader_id: 2, sent_ms: 3 });
    frame[12] ^= 0x80;
    assert!(matches!(
        decode_error(&frame),
        FrameError::CrcMismatch { header_crc32, payload_crc32 } if header_crc32 != payload_crc32
    ));
}

#[test]
fn bad_magic_is_rejected() {
    let mut frame = encoded(&Message::HelloAck { node_id: 1, cluster_id: 2, proof: [0; 32] });
    frame[0] = b'X';
    assert!(matches!(
        decode_error(&frame),
        FrameError::BadMagic { found } if found == u32::from_le_bytes(*b"XRN1")
    ));
}

#[test]
fn unknown_version_is_rejected() {
    let mut frame = encoded(&Message::HelloAck { node_id: 1, cluster_id: 2, proof: [0; 32] });
    for version in [0, 1, 2, 4, 255] {
        frame[4] = version;
        assert!(matches!(
            decode_error(&frame),
            FrameError::UnsupportedVersion { found } if found == version
        ));
    }
}

#[test]
fn unknown_kind_is_rejected() {
    let mut frame = encoded(&Message::HelloAck { node_id: 1, cluster_id: 2, proof: [0; 32] });
    for kind in [0, 3, 255] {
        frame[5] = kind;
        assert!(matches!(decode_error(&frame), FrameError::UnknownKind { found } if found == kind));
    }
}

#[test]
fn nonzero_reserved_is_rejected() {
    let mut frame = encoded(&Message::HelloAck { node_id: 1, cluster_id: 2, proof: [0; 32] });
    frame[7] = 0x01;
    assert!(matches!(decode_error(&frame), FrameError::ReservedNonzero { found: 0x0100 }));
}

#[test]
fn oversize_length_is_rejected_from_the_header_alone() {
    let mut header = FrameHeader::blob_body(0).encode();
    header[5] = FrameKind::Message.as_byte();
    for payload_len_bytes in [FRAME_PAYLOAD_MAX_BYTES + 1, u32::MAX] {
        header[8..12].copy_from_slice(&payload_len_bytes.to_le_bytes());
        // Only the header is given: the bound is checked before the payload
        // is even looked for.
        assert!(matches!(
            decode_error(&header),
            FrameError::PayloadTooLarge { payload_len_bytes: l, max_bytes }
                if l == payload_len_bytes && max_bytes == FRAME_PAYLOAD_MAX_BYTES
        ));
    }
}

#[test]
fn blob_header_with_a_crc_is_rejected() {
    let mut header = FrameHeader::blob_body(0).encode();
    header[15] = 0xff;
    assert!(matches!(decode_error(&header), FrameError::BlobCrcNonzero { found: 0xff00_0000 }));
}

#[test]
fn nonzero_padding_is_rejected() {
    // Find a sample whose payload is not already a multiple of 16.
    let frame = samples::every_variant()
        .iter()
        .map(encoded)
        .find(|frame| {
            let len = u32::from_le_bytes(frame[8..12].try_into().expect("four bytes")) as usize;
            len % 16 != 0
        })
        .expect("some sample has padding");
    let mut frame = frame;
    let last = frame.len() - 1;
    frame[last] = 0x01;
    assert!(matches!(decode_error(&frame), FrameError::PaddingNonzero));
}

#[test]
fn payload_that_is_not_a_message_archive_is_rejected() {
    // The CRC is right, so this gets as far as bytecheck.
    for payload in [&[][..], &[0xff; 16][..], &[0xff; 100][..], b"not an rkyv archive"] {
        assert!(
            matches!(decode_error(&framed_payload(payload)), FrameError::InvalidArchive(_)),
            "{payload:02x?}"
        );
    }
    // A valid HelloAck archive with its discriminant pushed out of range.
    let frame = encoded(&Message::HelloAck { node_id: 1, cluster_id: 2, proof: [0; 32] });
    let payload_len_bytes = u32::from_le_bytes(frame[8..12].try_into().expect("four bytes"));
    let mut payload = frame[16..16 + payload_len_bytes as usize].to_vec();
    // The root object sits at the end and an enum's archive starts with its
    // u8 tag (HelloAck is 1).
    let tag = payload.len() - std::mem::size_of::<cairn_net::ArchivedMessage>();
    assert_eq!(payload[tag], 1);
    payload[tag] = 200;
    assert!(matches!(decode_error(&framed_payload(&payload)), FrameError::InvalidArchive(_)));
}

#[test]
fn random_garbage_is_rejected_without_panic() {
    // A fixed xorshift stream: reproducible without a seed file.
    let mut state = 0x9E37_79B9_7F4A_7C15_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut buf = FrameBuf::new();
    for round in 0..20_000 {
        let len = (next() % 200) as usize;
        let mut bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        // Every other round starts with a valid header, to get past it.
        if round % 2 == 0 && len >= 16 {
            let header = FrameHeader::blob_body(0).encode();
            bytes[..6].copy_from_slice(&header[..6]);
            bytes[5] = 1 + (round % 4 == 0) as u8;
            bytes[6..8].fill(0);
            bytes[9..12].fill(0);
            if bytes[5] == 2 {
                bytes[12..16].fill(0);
            }
        }
        if let Ok(decoded) = decode_frame(&bytes, &mut buf) {
            // Random bytes rarely make a frame; when they do it must be
            // one that re-encodes to exactly those bytes.
            let mut again = FrameBytes::new();
            match decoded {
                DecodedFrame::Message { frame_len_bytes } => {
                    encode_payload_frame(buf.payload().expect("decoded"), &mut again)
                        .expect("within the bound");
                    assert_eq!(&again[..], &bytes[..frame_len_bytes]);
                }
                DecodedFrame::BlobBody { body } => {
                    again.extend_from_slice(&FrameHeader::blob_body(body.len() as u32).encode());
                    again.extend_from_slice(body);
                    assert_eq!(&again[..], &bytes[..again.len()]);
                }
            }
        }
    }
}

#[test]
fn a_message_over_the_bound_is_not_encoded() {
    let body = vec![0u8; FRAME_PAYLOAD_MAX_BYTES as usize];
    let message = Message::Forward { path: "/admin/x".to_owned(), body };
    let mut frame = FrameBytes::new();
    assert!(matches!(
        encode_message(&message, &mut frame),
        Err(EncodeError::PayloadTooLarge { max_bytes: FRAME_PAYLOAD_MAX_BYTES, .. })
    ));
    assert!(frame.is_empty(), "no half-built frame is left behind");
}

#[test]
fn a_payload_exactly_at_the_bound_passes_the_length_check() {
    // All 0xff: the root (at the end) has an impossible tag. (Zeros would be
    // a valid Hello: bytes before the root that it does not point to are
    // not looked at.)
    let mut payload = vec![0xffu8; FRAME_PAYLOAD_MAX_BYTES as usize];
    let frame = framed_payload(&payload);
    assert_eq!(frame.len(), 16 + FRAME_PAYLOAD_MAX_BYTES as usize);
    // It fails later, on the archive, not on its length.
    assert!(matches!(decode_error(&frame), FrameError::InvalidArchive(_)));

    payload.push(0);
    let mut frame = FrameBytes::new();
    assert!(matches!(
        encode_payload_frame(&payload, &mut frame),
        Err(EncodeError::PayloadTooLarge { .. })
    ));
}

#[test]
fn a_failed_decode_leaves_no_message_behind() {
    let mut buf = FrameBuf::new();
    assert!(matches!(buf.access(), Err(FrameError::NoMessage)));
    let frame = encoded(&Message::HelloAck { node_id: 1, cluster_id: 2, proof: [0; 32] });
    decode_frame(&frame, &mut buf).expect("own frame decodes");
    assert!(buf.access().is_ok());
    assert!(decode_frame(&frame[..20], &mut buf).is_err());
    assert!(matches!(buf.access(), Err(FrameError::NoMessage)));
    assert!(matches!(buf.deserialize(), Err(FrameError::NoMessage)));
}

#[test]
fn debug_output_never_shows_the_join_token_digest() {
    let hello = samples::every_variant().remove(0);
    assert!(matches!(hello, Message::Hello { .. }));
    let frame = encoded(&hello);
    let mut buf = FrameBuf::new();
    decode_frame(&frame, &mut buf).expect("own frame decodes");
    for shown in [format!("{hello:?}"), format!("{:?}", buf.access().expect("validated"))] {
        assert!(shown.contains("<redacted>"), "{shown}");
        assert!(!shown.contains("165"), "token bytes (0xa5 = 165) leaked: {shown}");
        assert!(shown.contains("rack-3"), "{shown}");
    }
}
