//! One value of every `Message` variant, shared by the frame tests.

use cairn_net::{IndexEntry, Message, RaftRpc};

/// Every variant once, with fields that are neither empty nor trivial, so a
/// field dropped or swapped by the format would show.
pub fn every_variant() -> Vec<Message> {
    vec![
        Message::Hello {
            node_id: 7,
            cluster_id: 0xC0FF_EE00_D15C_0001,
            nonce: [0xA6; 32],
            proof: [0xA5; 32],
            http: "10.0.0.7:8080".to_owned(),
            peer: "10.0.0.7:7070".to_owned(),
            zone: "rack-3".to_owned(),
        },
        Message::HelloAck { node_id: 1, cluster_id: 0xC0FF_EE00_D15C_0001, proof: [0x5A; 32] },
        Message::Heartbeat { term: 42, leader_id: 1, sent_ms: 1_700_000_000_123 },
        Message::HeartbeatReply {
            node_id: 2,
            term: 42,
            disk_total_bytes: 4 << 40,
            disk_free_bytes: 1 << 40,
            keys_by_state: vec![("ok".to_owned(), 1_000_000), ("under".to_owned(), 3)],
            clock_ms: 1_700_000_000_456,
        },
        Message::Raft { kind: RaftRpc::AppendEntries, payload: (0..=255).collect() },
        Message::RaftReply { kind: RaftRpc::Vote, payload: vec![1, 2, 3] },
        Message::Raft { kind: RaftRpc::InstallSnapshot, payload: Vec::new() },
        Message::Forward { path: "/admin/domain/photos".to_owned(), body: b"{\"x\":1}".to_vec() },
        Message::ForwardReply { status: 201, body: b"created".to_vec() },
        Message::Error { code: 503, message: "not the leader".to_owned() },
        Message::IndexUpdate { entry: Box::new(entry()) },
        Message::IndexLookup { domain: "photos".to_owned(), key: "a/b.jpg".to_owned() },
        Message::IndexReply { entry: Some(Box::new(entry())) },
        Message::IndexReply { entry: None },
        Message::NeedsQuery { max: 64 },
        Message::NeedsReply { needs: vec![entry(), entry()] },
        Message::Replicate {
            term: 9,
            entry: Box::new(entry()),
            source_peer: "10.0.0.2:7501".to_owned(),
        },
        Message::ReplicateReply { ok: false, message: "sha256 mismatch".to_owned() },
        Message::FetchBlob { sha256: [0x5C; 32] },
        Message::DropCopy { term: 9, entry: Box::new(entry()) },
        Message::Done,
        Message::Superseded { entry: Box::new(entry()) },
        Message::IndexForget { entry: Box::new(entry()) },
    ]
}

fn entry() -> IndexEntry {
    IndexEntry {
        domain: "photos".to_owned(),
        key: "a/b.jpg".to_owned(),
        hlc: 117_678_924_083_822_592,
        writer: 0x1336_DA54_759C_414D,
        sha256: [0x2C; 32],
        size_bytes: 5 << 30,
        class: "triple".to_owned(),
        content_type: "image/jpeg".to_owned(),
        deleted: false,
        holders: vec![1, 2, 3],
        wanted: 3,
        headers: "cache-control: max-age=60\n".to_owned(),
    }
}
