//! Properties of the frame decoder: any message round-trips, and no input
//! makes it panic; what it accepts re-encodes to exactly the bytes given.

use cairn_net::frame::{
    decode_frame, encode_message, encode_payload_frame, DecodedFrame, FrameBuf, FrameBytes,
    FrameError, FrameHeader, FRAME_HEADER_BYTES,
};
use cairn_net::peer_io::read_frame;
use cairn_net::{Message, RaftRpc};
use futures_lite::future::block_on;
use futures_lite::io::Cursor;
use proptest::collection::vec;
use proptest::prelude::*;

/// Longest string or byte field generated: long enough to leave the inline
/// string representation and cross several alignment boundaries.
const FIELD_LEN_MAX_BYTES: usize = 100;
/// Longest random input fed to the decoder.
const INPUT_LEN_MAX_BYTES: usize = 600;

fn text() -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!(".{{0,{FIELD_LEN_MAX_BYTES}}}")).expect("a valid regex")
}

fn bytes() -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..FIELD_LEN_MAX_BYTES)
}

fn raft_rpc() -> impl Strategy<Value = RaftRpc> {
    prop_oneof![Just(RaftRpc::AppendEntries), Just(RaftRpc::Vote), Just(RaftRpc::InstallSnapshot)]
}

fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        (any::<u64>(), any::<u64>(), any::<[u8; 32]>(), text(), text(), text()).prop_map(
            |(node_id, cluster_id, proof, http, peer, zone)| Message::Hello {
                node_id,
                cluster_id,
                nonce: proof,
                proof,
                http,
                peer,
                zone,
            }
        ),
        (any::<u64>(), any::<u64>(), any::<[u8; 32]>()).prop_map(|(node_id, cluster_id, proof)| {
            Message::HelloAck { node_id, cluster_id, proof }
        }),
        any::<[u8; 32]>().prop_map(|nonce| Message::Challenge { nonce }),
        (any::<u64>(), any::<u64>(), any::<u64>()).prop_map(|(term, leader_id, sent_ms)| {
            Message::Heartbeat { term, leader_id, sent_ms }
        }),
        (
            (any::<u64>(), any::<u64>(), any::<u64>(), any::<u64>()),
            vec((text(), any::<u64>()), 0..8),
            any::<u64>(),
        )
            .prop_map(
                |((node_id, term, disk_total_bytes, disk_free_bytes), keys_by_state, clock_ms)| {
                    Message::HeartbeatReply {
                        node_id,
                        term,
                        disk_total_bytes,
                        disk_free_bytes,
                        keys_by_state,
                        clock_ms,
                    }
                }
            ),
        (raft_rpc(), bytes()).prop_map(|(kind, payload)| Message::Raft { kind, payload }),
        (raft_rpc(), bytes()).prop_map(|(kind, payload)| Message::RaftReply { kind, payload }),
        (text(), bytes()).prop_map(|(path, body)| Message::Forward { path, body }),
        (any::<u16>(), bytes()).prop_map(|(status, body)| Message::ForwardReply { status, body }),
        (any::<u16>(), text()).prop_map(|(code, message)| Message::Error { code, message }),
    ]
}

fn encoded(message: &Message) -> FrameBytes {
    let mut frame = FrameBytes::new();
    encode_message(message, &mut frame).expect("a small message encodes");
    frame
}

/// Decodes `input` and, when that succeeds, checks that the frame is
/// exactly what the encoder makes of its parts, that the message survives
/// a trip through the owned form, and that the stream reader agrees.
fn check_decoder_on(input: &[u8]) -> Result<(), TestCaseError> {
    let mut buf = FrameBuf::new();
    let decoded = decode_frame(input, &mut buf);
    let stream_result = block_on(read_frame(&mut Cursor::new(input), &mut FrameBuf::new()));
    let decoded = match decoded {
        Ok(decoded) => decoded,
        Err(_) => return Ok(()),
    };
    let header = stream_result.expect("the stream reader takes what decode_frame takes");
    let mut again = FrameBytes::new();
    match decoded {
        DecodedFrame::Message { frame_len_bytes } => {
            let payload = buf.payload().expect("decoded");
            encode_payload_frame(payload, &mut again).expect("within the bound");
            prop_assert_eq!(&again[..], &input[..frame_len_bytes]);
            // The owned form encodes to a message equal to the one received;
            // not necessarily to the same bytes, as an archive may carry
            // bytes its root does not reach.
            let message = buf.deserialize().expect("validated archive deserialises");
            let mut rebuf = FrameBuf::new();
            decode_frame(&encoded(&message), &mut rebuf).expect("own frame decodes");
            prop_assert_eq!(rebuf.deserialize().expect("own frame deserialises"), message);
        }
        DecodedFrame::BlobBody { body } => {
            again.extend_from_slice(&header.encode());
            again.extend_from_slice(body);
            prop_assert_eq!(&again[..], &input[..FRAME_HEADER_BYTES + body.len()]);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn any_message_round_trips(message in message()) {
        let frame = encoded(&message);
        prop_assert_eq!(frame.len() % 16, 0);
        let mut buf = FrameBuf::new();
        let decoded = decode_frame(&frame, &mut buf).expect("own frame decodes");
        prop_assert_eq!(decoded.frame_len_bytes(), frame.len());
        prop_assert!(*buf.access().expect("validates") == message);
        prop_assert_eq!(buf.deserialize().expect("deserialises"), message.clone());

        let mut stream_buf = FrameBuf::new();
        block_on(read_frame(&mut Cursor::new(&frame[..]), &mut stream_buf)).expect("reads");
        prop_assert_eq!(stream_buf.deserialize().expect("deserialises"), message);
    }

    #[test]
    fn arbitrary_bytes_never_panic(input in vec(any::<u8>(), 0..INPUT_LEN_MAX_BYTES)) {
        check_decoder_on(&input)?;
    }

    /// Random bytes almost never get past the magic; this gives them a
    /// valid-looking header so the length, padding and CRC checks see them.
    #[test]
    fn arbitrary_bytes_behind_a_header_never_panic(
        kind in 0u8..4,
        payload_len_bytes in 0u32..(INPUT_LEN_MAX_BYTES as u32),
        crc32 in prop_oneof![Just(0u32), any::<u32>()],
        rest in vec(any::<u8>(), 0..INPUT_LEN_MAX_BYTES),
    ) {
        let mut input = FrameHeader::blob_body(payload_len_bytes).encode().to_vec();
        input[5] = kind;
        input[12..16].copy_from_slice(&crc32.to_le_bytes());
        input.extend_from_slice(&rest);
        check_decoder_on(&input)?;
    }

    /// Arbitrary payloads with a correct CRC: this is the archive
    /// validator's input, and what a buggy or hostile peer controls.
    #[test]
    fn arbitrary_payloads_with_a_good_crc_never_panic(
        payload in vec(any::<u8>(), 0..INPUT_LEN_MAX_BYTES),
    ) {
        let mut frame = FrameBytes::new();
        encode_payload_frame(&payload, &mut frame).expect("within the bound");
        check_decoder_on(&frame)?;
    }

    /// A real message with some payload bytes changed and the CRC made
    /// right again: close to valid, so the validator's deeper checks (tags,
    /// lengths, relative pointers, UTF-8) are what stands in the way.
    #[test]
    fn corrupted_archives_with_a_good_crc_never_panic(
        message in message(),
        flips in vec((any::<prop::sample::Index>(), 1u8..=255), 1..6),
    ) {
        let frame = encoded(&message);
        let payload_len_bytes =
            u32::from_le_bytes(frame[8..12].try_into().expect("four bytes")) as usize;
        let mut payload = frame[FRAME_HEADER_BYTES..FRAME_HEADER_BYTES + payload_len_bytes].to_vec();
        for (index, mask) in flips {
            let at = index.index(payload.len());
            payload[at] ^= mask;
        }
        let mut corrupted = FrameBytes::new();
        encode_payload_frame(&payload, &mut corrupted).expect("within the bound");
        check_decoder_on(&corrupted)?;
    }

    /// A real frame with bytes changed anywhere, header included, and the
    /// CRC left alone: rejected unless the change missed everything checked.
    #[test]
    fn corrupted_frames_never_panic(
        message in message(),
        flips in vec((any::<prop::sample::Index>(), 1u8..=255), 1..4),
    ) {
        let mut frame = encoded(&message).to_vec();
        for (index, mask) in flips {
            let at = index.index(frame.len());
            frame[at] ^= mask;
        }
        let mut buf = FrameBuf::new();
        match decode_frame(&frame, &mut buf) {
            // The CRC covers the payload, so a payload change is caught.
            Ok(DecodedFrame::Message { .. }) => {
                prop_assert!(buf.deserialize().expect("validated") == message);
            }
            Ok(DecodedFrame::BlobBody { .. }) | Err(_) => {}
        }
        check_decoder_on(&frame)?;
    }
}

#[test]
fn the_stream_reader_says_closed_only_for_empty_input() {
    let result = block_on(read_frame(&mut Cursor::new(&[][..]), &mut FrameBuf::new()));
    assert!(matches!(result, Err(FrameError::Closed)));
    assert!(matches!(
        decode_frame(&[], &mut FrameBuf::new()),
        Err(FrameError::Truncated { expected_bytes: 16, received_bytes: 0 })
    ));
}
