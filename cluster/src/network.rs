//! openraft's `RaftNetwork` over peer RPC: each raft request is serde JSON
//! inside a `Raft` message, answered by a `RaftReply` holding the JSON of
//! the `Result` the remote raft returned. One connection per target.

use std::sync::Arc;
use std::time::Duration;

use cairn_net::{Message, PeerConnection, PeerError, RaftRpc};
use cairn_raft::{Member, NodeId, TypeConfig};
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::identity::Identity;
use super::peers::connect;

/// Longest wait for any raft RPC, whatever openraft allows.
const RAFT_RPC_TIMEOUT_MAX: Duration = Duration::from_secs(10);

pub struct Network {
    pub identity: Arc<Identity>,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = RaftClient;

    async fn new_client(&mut self, target: NodeId, node: &Member) -> RaftClient {
        RaftClient {
            identity: self.identity.clone(),
            target,
            address: node.peer.clone(),
            connection: None,
        }
    }
}

pub struct RaftClient {
    identity: Arc<Identity>,
    target: NodeId,
    address: String,
    connection: Option<PeerConnection>,
}

type RpcResult<T, E = openraft::error::Infallible> =
    Result<T, RPCError<NodeId, Member, RaftError<NodeId, E>>>;

impl RaftClient {
    async fn exchange<Req, Resp, E>(
        &mut self,
        kind: RaftRpc,
        request: &Req,
        option: &RPCOption,
    ) -> RpcResult<Resp, E>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let payload =
            serde_json::to_vec(request).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let timeout = option.hard_ttl().min(RAFT_RPC_TIMEOUT_MAX);
        let reply = self.call(Message::Raft { kind, payload }, timeout).await.map_err(|e| {
            self.connection = None;
            RPCError::Unreachable(Unreachable::new(&e))
        })?;
        let Message::RaftReply { kind: reply_kind, payload } = reply else {
            let error = PeerError::Unexpected(format!("{reply:?}"));
            return Err(RPCError::Network(NetworkError::new(&error)));
        };
        if reply_kind != kind {
            let error = PeerError::Unexpected(format!("a {reply_kind:?} reply to {kind:?}"));
            return Err(RPCError::Network(NetworkError::new(&error)));
        }
        let result: Result<Resp, RaftError<NodeId, E>> = serde_json::from_slice(&payload)
            .map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }

    async fn call(&mut self, request: Message, timeout: Duration) -> Result<Message, PeerError> {
        // Taken out while in use: a call openraft cancels half-way leaves
        // no connection with an unread reply behind.
        let mut connection = match self.connection.take() {
            Some(connection) => connection,
            None => connect(&self.identity, &self.address, timeout).await?,
        };
        let reply = connection.call(&request, timeout).await;
        if reply.is_ok() {
            self.connection = Some(connection);
        }
        reply
    }
}

impl RaftNetwork<TypeConfig> for RaftClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<NodeId>> {
        self.exchange(RaftRpc::AppendEntries, &rpc, &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<NodeId>, InstallSnapshotError> {
        self.exchange(RaftRpc::InstallSnapshot, &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> RpcResult<VoteResponse<NodeId>> {
        self.exchange(RaftRpc::Vote, &rpc, &option).await
    }
}
