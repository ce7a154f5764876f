//! Frames over streams: in-memory cursors, readers that misbehave, and
//! glommio's TcpStream on loopback.

mod samples;

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use cairn_net::frame::{encode_message, FrameBuf, FrameBytes, FrameError, FrameHeader, FrameKind};
use cairn_net::peer_io::{read_blob_body, read_frame, write_frame, BLOB_CHUNK_MAX_BYTES};
use cairn_net::Message;
use futures_lite::future::block_on;
use futures_lite::io::Cursor;
use futures_lite::AsyncRead;

fn encoded(message: &Message) -> FrameBytes {
    let mut frame = FrameBytes::new();
    encode_message(message, &mut frame).expect("a small message encodes");
    frame
}

/// A blob body whose every byte depends on its position.
fn blob(len_bytes: usize) -> Vec<u8> {
    (0..len_bytes).map(|i| (i % 251) as u8).collect()
}

#[test]
fn every_variant_round_trips_through_a_stream_with_one_buffer() {
    block_on(async {
        let messages = samples::every_variant();
        let mut wire = Cursor::new(Vec::new());
        for message in &messages {
            write_frame(&mut wire, &encoded(message)).await.expect("write to memory");
        }
        let mut reader = Cursor::new(wire.into_inner());
        let mut buf = FrameBuf::new();
        for message in &messages {
            let header = read_frame(&mut reader, &mut buf).await.expect("own frame reads");
            assert_eq!(header.kind(), FrameKind::Message);
            let archived = buf.access().expect("own frame validates");
            assert!(*archived == *message, "archived {archived:?} is not {message:?}");
            assert_eq!(&buf.deserialize().expect("validated"), message);
        }
        assert!(matches!(read_frame(&mut reader, &mut buf).await, Err(FrameError::Closed)));
    });
}

#[test]
fn a_stream_cut_at_every_byte_offset_is_closed_or_truncated() {
    block_on(async {
        let frame = encoded(&samples::every_variant().remove(0));
        let mut buf = FrameBuf::new();
        for cut_bytes in 0..frame.len() {
            let mut reader = Cursor::new(&frame[..cut_bytes]);
            let result = read_frame(&mut reader, &mut buf).await;
            let expected_bytes = if cut_bytes < 16 { 16 } else { frame.len() as u64 };
            match result {
                Err(FrameError::Closed) if cut_bytes == 0 => {}
                Err(FrameError::Truncated { expected_bytes: e, received_bytes: r })
                    if cut_bytes > 0 && e == expected_bytes && r == cut_bytes as u64 => {}
                other => panic!("cut at {cut_bytes}: {other:?}"),
            }
            assert!(matches!(buf.access(), Err(FrameError::NoMessage)));
        }
    });
}

#[test]
fn an_oversize_header_is_rejected_before_its_payload_is_read() {
    block_on(async {
        let mut header = FrameHeader::blob_body(0).encode();
        header[5] = FrameKind::Message.as_byte();
        header[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        let mut wire = header.to_vec();
        wire.extend_from_slice(&[0; 64]);
        let mut reader = Cursor::new(wire);
        let result = read_frame(&mut reader, &mut FrameBuf::new()).await;
        assert!(matches!(result, Err(FrameError::PayloadTooLarge { .. })), "{result:?}");
        assert_eq!(reader.position(), 16, "nothing past the header was read");
    });
}

#[test]
fn bad_crc_and_padding_are_rejected_on_a_stream() {
    block_on(async {
        // A sample whose payload is not already a multiple of 16.
        let good = samples::every_variant()
            .iter()
            .map(encoded)
            .find(|frame| {
                u32::from_le_bytes(frame[8..12].try_into().expect("four bytes")) % 16 != 0
            })
            .expect("some sample has padding");

        let mut bad_crc = good.to_vec();
        bad_crc[16] ^= 0x40;
        let result = read_frame(&mut Cursor::new(bad_crc), &mut FrameBuf::new()).await;
        assert!(matches!(result, Err(FrameError::CrcMismatch { .. })), "{result:?}");

        let mut bad_padding = good.to_vec();
        *bad_padding.last_mut().expect("not empty") = 0x01;
        let result = read_frame(&mut Cursor::new(bad_padding), &mut FrameBuf::new()).await;
        assert!(matches!(result, Err(FrameError::PaddingNonzero)), "{result:?}");
    });
}

#[test]
fn a_blob_body_streams_in_bounded_chunks_between_messages() {
    block_on(async {
        let body = blob(3 * BLOB_CHUNK_MAX_BYTES + 1234);
        let before = Message::Forward { path: "/blob/a".to_owned(), body: Vec::new() };
        let after = Message::ForwardReply { status: 200, body: Vec::new() };
        let mut wire = Cursor::new(Vec::new());
        write_frame(&mut wire, &encoded(&before)).await.expect("write to memory");
        let blob_header = FrameHeader::blob_body(body.len() as u32).encode();
        write_frame(&mut wire, &blob_header).await.expect("write to memory");
        write_frame(&mut wire, &body).await.expect("write to memory");
        write_frame(&mut wire, &encoded(&after)).await.expect("write to memory");

        let mut reader = Cursor::new(wire.into_inner());
        let mut buf = FrameBuf::new();
        read_frame(&mut reader, &mut buf).await.expect("message before");
        assert_eq!(buf.deserialize().expect("validated"), before);

        let header = read_frame(&mut reader, &mut buf).await.expect("blob header");
        assert_eq!(header.kind(), FrameKind::BlobBody);
        assert_eq!(header.payload_len_bytes() as usize, body.len());
        assert!(matches!(buf.access(), Err(FrameError::NoMessage)));

        // A lent buffer larger than the bound still gets bounded chunks.
        let mut chunk = vec![0u8; 4 * BLOB_CHUNK_MAX_BYTES];
        let mut received = Vec::new();
        let mut body_reader = read_blob_body(&mut reader, &header).expect("blob header");
        while let Some(bytes) = body_reader.next_chunk(&mut chunk).await.expect("whole body") {
            assert!(!bytes.is_empty() && bytes.len() <= BLOB_CHUNK_MAX_BYTES);
            received.extend_from_slice(bytes);
        }
        assert_eq!(body_reader.remaining_bytes(), 0);
        assert!(received == body, "body arrived intact");

        read_frame(&mut reader, &mut buf).await.expect("message after");
        assert_eq!(buf.deserialize().expect("validated"), after);
    });
}

#[test]
fn a_blob_body_reads_into_a_small_chunk_buffer() {
    block_on(async {
        let body = blob(10_000);
        let mut wire = FrameHeader::blob_body(body.len() as u32).encode().to_vec();
        wire.extend_from_slice(&body);
        let mut reader = Cursor::new(wire);
        let header = read_frame(&mut reader, &mut FrameBuf::new()).await.expect("blob header");
        let mut chunk = [0u8; 999];
        let mut received = Vec::new();
        let mut body_reader = read_blob_body(&mut reader, &header).expect("blob header");
        while let Some(bytes) = body_reader.next_chunk(&mut chunk).await.expect("whole body") {
            received.extend_from_slice(bytes);
        }
        assert_eq!(received, body);
    });
}

#[test]
fn an_empty_blob_body_has_no_chunks() {
    block_on(async {
        let mut reader = Cursor::new(FrameHeader::blob_body(0).encode().to_vec());
        let header = read_frame(&mut reader, &mut FrameBuf::new()).await.expect("blob header");
        let mut body_reader = read_blob_body(&mut reader, &header).expect("blob header");
        assert_eq!(body_reader.next_chunk(&mut [0u8; 16]).await.expect("empty"), None);
    });
}

#[test]
fn a_blob_body_cut_short_is_truncated() {
    block_on(async {
        let mut wire = FrameHeader::blob_body(1000).encode().to_vec();
        wire.extend_from_slice(&blob(600));
        let mut reader = Cursor::new(wire);
        let header = read_frame(&mut reader, &mut FrameBuf::new()).await.expect("blob header");
        let mut body_reader = read_blob_body(&mut reader, &header).expect("blob header");
        let mut chunk = [0u8; 512];
        assert_eq!(
            body_reader.next_chunk(&mut chunk).await.expect("first 512").map(<[u8]>::len),
            Some(512)
        );
        let result = body_reader.next_chunk(&mut chunk).await;
        assert!(
            matches!(
                result,
                Err(FrameError::Truncated { expected_bytes: 1016, received_bytes: 616 })
            ),
            "{result:?}"
        );
    });
}

#[test]
fn a_message_header_is_not_a_blob_body() {
    block_on(async {
        let mut reader = Cursor::new(
            encoded(&Message::HelloAck { node_id: 1, cluster_id: 2, proof: [0; 32] }).to_vec(),
        );
        let header = read_frame(&mut reader, &mut FrameBuf::new()).await.expect("message");
        let result = read_blob_body(&mut reader, &header).map(|_| ());
        assert!(
            matches!(
                result,
                Err(FrameError::UnexpectedKind {
                    expected: FrameKind::BlobBody,
                    found: FrameKind::Message
                })
            ),
            "{result:?}"
        );
    });
}

/// Hands out one byte per read and says `Interrupted` before each, like a
/// slow socket hit by signals.
struct Trickle {
    bytes: Vec<u8>,
    position: usize,
    interrupt_next: bool,
}

impl AsyncRead for Trickle {
    fn poll_read(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.interrupt_next = !this.interrupt_next;
        if !this.interrupt_next {
            return Poll::Ready(Err(io::ErrorKind::Interrupted.into()));
        }
        match (this.bytes.get(this.position), buf.first_mut()) {
            (Some(byte), Some(slot)) => {
                *slot = *byte;
                this.position += 1;
                Poll::Ready(Ok(1))
            }
            _ => Poll::Ready(Ok(0)),
        }
    }
}

#[test]
fn short_and_interrupted_reads_still_make_whole_frames() {
    block_on(async {
        let messages = samples::every_variant();
        let mut bytes = Vec::new();
        for message in &messages {
            bytes.extend_from_slice(&encoded(message));
        }
        let mut reader = Trickle { bytes, position: 0, interrupt_next: false };
        let mut buf = FrameBuf::new();
        for message in &messages {
            read_frame(&mut reader, &mut buf).await.expect("own frame reads");
            assert_eq!(&buf.deserialize().expect("validated"), message);
        }
        assert!(matches!(read_frame(&mut reader, &mut buf).await, Err(FrameError::Closed)));
    });
}

/// Fails every read, like a reset connection.
struct Broken;

impl AsyncRead for Broken {
    fn poll_read(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        _buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        Poll::Ready(Err(io::ErrorKind::ConnectionReset.into()))
    }
}

#[test]
fn a_read_error_is_an_io_error_not_a_close() {
    block_on(async {
        let result = read_frame(&mut Broken, &mut FrameBuf::new()).await;
        assert!(
            matches!(&result, Err(FrameError::Io(error)) if error.kind() == io::ErrorKind::ConnectionReset),
            "{result:?}"
        );
    });
}

/// The real transport: a glommio executor, a listener and a client on
/// loopback. The server answers each `Heartbeat` with a `HeartbeatReply`
/// and echoes a blob body back.
#[test]
// One conversation, read top to bottom.
#[allow(clippy::too_many_lines)]
fn frames_cross_a_glommio_tcp_connection() {
    glommio::LocalExecutorBuilder::default()
        .spawn(|| async move {
            let listener =
                glommio::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback port");
            let addr = listener.local_addr().expect("bound address");
            let server = glommio::spawn_local(async move {
                let mut stream = listener.accept().await.expect("accept");
                let mut buf = FrameBuf::new();
                let mut out = FrameBytes::new();
                loop {
                    let header = match read_frame(&mut stream, &mut buf).await {
                        Ok(header) => header,
                        Err(FrameError::Closed) => return,
                        Err(error) => panic!("server read: {error}"),
                    };
                    match header.kind() {
                        FrameKind::Message => {
                            let archived = buf.access().expect("client frame validates");
                            let cairn_net::ArchivedMessage::Heartbeat { term, .. } = archived
                            else {
                                panic!("unexpected {archived:?}");
                            };
                            let reply = Message::HeartbeatReply {
                                node_id: 2,
                                term: term.to_native(),
                                disk_total_bytes: 100,
                                disk_free_bytes: 60,
                                keys_by_state: vec![("ok".to_owned(), 5)],
                                clock_ms: 7,
                            };
                            encode_message(&reply, &mut out).expect("encode reply");
                            write_frame(&mut stream, &out).await.expect("server write");
                        }
                        FrameKind::BlobBody => {
                            let mut body = Vec::new();
                            let mut chunk = vec![0u8; 64 * 1024];
                            let mut body_reader =
                                read_blob_body(&mut stream, &header).expect("blob header");
                            while let Some(bytes) =
                                body_reader.next_chunk(&mut chunk).await.expect("body")
                            {
                                body.extend_from_slice(bytes);
                            }
                            write_frame(&mut stream, &header.encode()).await.expect("echo header");
                            write_frame(&mut stream, &body).await.expect("echo body");
                        }
                    }
                }
            });

            let mut stream = glommio::net::TcpStream::connect(addr).await.expect("connect");
            let mut buf = FrameBuf::new();
            for term in 1..=100u64 {
                let heartbeat = Message::Heartbeat { term, leader_id: 1, sent_ms: 7 };
                write_frame(&mut stream, &encoded(&heartbeat)).await.expect("client write");
                read_frame(&mut stream, &mut buf).await.expect("reply");
                let cairn_net::ArchivedMessage::HeartbeatReply { term: replied, .. } =
                    buf.access().expect("reply validates")
                else {
                    panic!("not a heartbeat reply");
                };
                assert_eq!(replied.to_native(), term);
            }

            let body = blob(1_000_003);
            let header = FrameHeader::blob_body(body.len() as u32);
            write_frame(&mut stream, &header.encode()).await.expect("blob header");
            write_frame(&mut stream, &body).await.expect("blob body");
            let echoed_header = read_frame(&mut stream, &mut buf).await.expect("echo header");
            assert_eq!(echoed_header, header);
            let mut echoed = Vec::new();
            let mut chunk = vec![0u8; BLOB_CHUNK_MAX_BYTES];
            let mut body_reader = read_blob_body(&mut stream, &echoed_header).expect("blob");
            while let Some(bytes) = body_reader.next_chunk(&mut chunk).await.expect("echo") {
                echoed.extend_from_slice(bytes);
            }
            assert!(echoed == body, "blob echoed intact");

            // Half-close: the server sees a clean end between frames.
            stream.shutdown(std::net::Shutdown::Write).await.expect("shutdown");
            server.await;
        })
        .expect("spawn executor")
        .join()
        .expect("executor ran to the end");
}

#[test]
fn a_bounded_read_refuses_big_payloads_and_blob_bodies_before_reading_them() {
    block_on(async {
        let big = Message::Forward { path: "x".into(), body: vec![7; 8192] };
        let mut reader = Cursor::new(encoded(&big).to_vec());
        let mut buf = FrameBuf::new();
        let refused = cairn_net::read_frame_bounded(&mut reader, &mut buf, 4096).await;
        assert!(matches!(refused, Err(FrameError::PayloadTooLarge { max_bytes: 4096, .. })));
        assert_eq!(reader.position(), 16, "only the header was read");

        let mut reader = Cursor::new(FrameHeader::blob_body(10).encode().to_vec());
        let refused = cairn_net::read_frame_bounded(&mut reader, &mut buf, 4096).await;
        assert!(matches!(refused, Err(FrameError::UnexpectedKind { .. })));

        let small = Message::HelloAck { node_id: 1, cluster_id: 2, proof: [0; 32] };
        let mut reader = Cursor::new(encoded(&small).to_vec());
        cairn_net::read_frame_bounded(&mut reader, &mut buf, 4096).await.expect("fits");
        assert_eq!(buf.deserialize().unwrap(), small);
    });
}
