//! One value of every `Message` variant, shared by the frame tests.

use cairn_net::{Message, RaftRpc};

/// Every variant once, with fields that are neither empty nor trivial, so a
/// field dropped or swapped by the format would show.
pub fn every_variant() -> Vec<Message> {
    vec![
        Message::Hello {
            node_id: 7,
            cluster_id: 0xC0FF_EE00_D15C_0001,
            token_sha256: [0xA5; 32],
            http: "10.0.0.7:8080".to_owned(),
            peer: "10.0.0.7:7070".to_owned(),
            zone: "rack-3".to_owned(),
        },
        Message::HelloAck { node_id: 1, cluster_id: 0xC0FF_EE00_D15C_0001 },
        Message::Heartbeat { term: 42, leader_id: 1, sent_ms: 1_700_000_000_123 },
        Message::HeartbeatReply {
            node_id: 2,
            term: 42,
            disk_total_bytes: 4 << 40,
            disk_free_bytes: 1 << 40,
            keys_by_state: vec![("ok".to_owned(), 1_000_000), ("under".to_owned(), 3)],
        },
        Message::Raft { kind: RaftRpc::AppendEntries, payload: (0..=255).collect() },
        Message::RaftReply { kind: RaftRpc::Vote, payload: vec![1, 2, 3] },
        Message::Raft { kind: RaftRpc::InstallSnapshot, payload: Vec::new() },
        Message::Forward { path: "/admin/domain/photos".to_owned(), body: b"{\"x\":1}".to_vec() },
        Message::ForwardReply { status: 201, body: b"created".to_vec() },
        Message::Error { code: 503, message: "not the leader".to_owned() },
    ]
}
