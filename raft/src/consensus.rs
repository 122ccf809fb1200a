//! The node's handle on consensus: start Raft over the redb file, route
//! every write, linearizable read and membership change to the leader, and
//! report the cluster's state.
//!
//! Any node answers any request. A request that needs the leader is run
//! locally when this node leads and is otherwise forwarded to the leader
//! over `/raft/forward`; while there is no leader (an election, a lost
//! quorum) it waits with backoff up to a deadline. The caller never has to
//! find the leader.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::DefaultBodyLimit;
use axum::extract::State;
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use gnomon_storage::command::{Command, Outcome};
use gnomon_storage::sm::{ReadView, StateMachine};
use openraft::error::{
    ChangeMembershipError, CheckIsLeaderError, ClientWriteError, InitializeError, RaftError,
};
use openraft::{ChangeMembers, Config, ServerState, SnapshotPolicy};
use redb::Database;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::error::{ConsensusError, MembershipError};
use crate::log_store::LogStore;
use crate::network::{decode_body, reply, Network, PeerClient, PeerError};
use crate::proposer::Proposer;
use crate::state_machine::StateMachineStore;
use crate::types::{Metrics, Node, NodeId, Raft};

/// How long a request waits for a leader before giving up.
const LEADER_DEADLINE: Duration = Duration::from_secs(10);

/// Most entries one append to a follower carries.
pub const MAX_PAYLOAD_ENTRIES: u64 = 32;

/// Largest body a peer may send: [`MAX_PAYLOAD_ENTRIES`] entries of the
/// largest size group commit makes, with room to spare.
pub const PEER_BODY_LIMIT: usize = 512 << 20;

/// How long a new member gets to catch up with the log before it is a voter.
const CATCH_UP_DEADLINE: Duration = Duration::from_secs(60);

/// Tunables of the Raft group; the defaults suit a LAN of small machines.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Leader heartbeat interval.
    pub heartbeat_ms: u64,
    /// Election timeout range. A follower stands for election once it has
    /// heard nothing for the top of this range (openraft's leader lease)
    /// plus a random time within it, so failover takes from the sum of the
    /// two ends to twice the top, plus one vote round.
    pub election_ms: (u64, u64),
    /// Build a snapshot after this many applied entries.
    pub snapshot_every: u64,
    /// Entries kept in the log behind a snapshot, for followers that lag a little.
    pub keep_behind_snapshot: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            heartbeat_ms: 100,
            election_ms: (300, 600),
            snapshot_every: 10_000,
            keep_behind_snapshot: 1_000,
        }
    }
}

impl Settings {
    fn raft_config(&self) -> Result<Config, ConsensusError> {
        Config {
            cluster_name: "gnomon".into(),
            heartbeat_interval: self.heartbeat_ms,
            election_timeout_min: self.election_ms.0,
            election_timeout_max: self.election_ms.1,
            install_snapshot_timeout: 10_000,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(self.snapshot_every),
            max_in_snapshot_log_to_keep: self.keep_behind_snapshot,
            purge_batch_size: 64,
            max_payload_entries: MAX_PAYLOAD_ENTRIES,
            ..Default::default()
        }
        .validate()
        .map_err(|e| ConsensusError::Fatal(format!("invalid Raft settings: {e}")))
    }
}

/// Requests a follower forwards to the leader.
#[derive(Debug, Clone, Serialize, Deserialize)]
enum Forward {
    Propose(Vec<Command>),
    ReadIndex,
    AddMember { id: NodeId, addr: String },
    RemoveMember { id: NodeId },
    Reachability,
}

/// The leader's answers to [`Forward`] requests.
#[derive(Debug, Clone, Serialize, Deserialize)]
enum Forwarded {
    Outcomes(Vec<Outcome>),
    ReadIndex(u64),
    Done,
    Reachability(Vec<NodeId>),
}

/// What `/raft/hello` says about a node, so a leader can check an address
/// before adding it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Hello {
    id: NodeId,
    initialized: bool,
}

/// One member as `GET /v1/cluster` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MemberStatus {
    /// Node id.
    pub id: NodeId,
    /// `host:port` its peers and clients use.
    pub addr: String,
    /// Whether it votes (a learner does not).
    pub voter: bool,
    /// Whether the leader has heard from it recently.
    pub reachable: bool,
}

/// The cluster as this node sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClusterStatus {
    /// This node's id.
    pub node_id: NodeId,
    /// The leader this node knows of.
    pub leader_id: Option<NodeId>,
    /// The current term.
    pub term: u64,
    /// The highest log index known to be committed.
    pub commit_index: u64,
    /// The highest log index this node has applied.
    pub applied_index: u64,
    /// The last log index covered by this node's latest snapshot.
    pub snapshot_index: u64,
    /// The log index up to which this node has discarded its log.
    pub purged_index: u64,
    /// Every member, by id.
    pub members: Vec<MemberStatus>,
}

struct Inner {
    id: NodeId,
    addr: String,
    raft: Raft,
    sm: StateMachineStore,
    peers: PeerClient,
    proposer: Proposer,
    heartbeat: Duration,
}

/// A cheap-to-clone handle on this node's replica.
#[derive(Clone)]
pub struct Consensus {
    inner: Arc<Inner>,
}

impl Consensus {
    /// Start Raft for node `id`, reachable by peers at `addr`, over `db`
    /// (opened by `gnomon_storage::db::open`). Peer calls carry `token`.
    pub async fn start(
        id: NodeId,
        addr: String,
        db: Arc<Database>,
        token: Option<String>,
        settings: &Settings,
    ) -> Result<Self, ConsensusError> {
        let config = Arc::new(settings.raft_config()?);
        let sm = StateMachineStore::new(StateMachine::new(db.clone()))
            .map_err(|e| ConsensusError::Fatal(e.to_string()))?;
        let peers = PeerClient::new(token);
        let raft = Raft::new(
            id,
            config,
            Network::new(peers.clone()),
            LogStore::new(db),
            sm.clone(),
        )
        .await
        .map_err(|e| ConsensusError::Fatal(e.to_string()))?;
        let proposer = Proposer::spawn(raft.clone());
        Ok(Self {
            inner: Arc::new(Inner {
                id,
                addr,
                raft,
                sm,
                peers,
                proposer,
                heartbeat: Duration::from_millis(settings.heartbeat_ms),
            }),
        })
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.inner.id
    }

    /// The routes peers call: Raft RPCs, `/raft/forward` and `/raft/hello`.
    ///
    /// Their bodies may be far larger than a client's: one append carries
    /// up to [`MAX_PAYLOAD_ENTRIES`] entries of several MiB each, so these
    /// routes have their own limit, [`PEER_BODY_LIMIT`] (peers authenticate
    /// with the cluster token when one is set).
    pub fn router(&self) -> Router {
        crate::network::rpc_routes(self.inner.raft.clone())
            .merge(
                Router::new()
                    .route("/raft/forward", post(forward_handler))
                    .route("/raft/hello", post(hello_handler))
                    .with_state(self.clone()),
            )
            .layer(DefaultBodyLimit::max(PEER_BODY_LIMIT))
    }

    /// Whether this node has a membership (bootstrapped, or added to a cluster).
    pub async fn is_initialized(&self) -> Result<bool, ConsensusError> {
        self.inner
            .raft
            .is_initialized()
            .await
            .map_err(|e| ConsensusError::Fatal(e.to_string()))
    }

    /// Bootstrap a one-node cluster with this node as its only voter. Does
    /// nothing if this node already has a membership.
    pub async fn bootstrap(&self) -> Result<(), ConsensusError> {
        let members = BTreeMap::from([(self.inner.id, Node::new(&self.inner.addr))]);
        match self.inner.raft.initialize(members).await {
            Ok(()) | Err(RaftError::APIError(InitializeError::NotAllowed(_))) => Ok(()),
            Err(e) => Err(ConsensusError::Fatal(e.to_string())),
        }
    }

    /// Stop Raft.
    pub async fn shutdown(&self) {
        if let Err(e) = self.inner.raft.shutdown().await {
            tracing::warn!(error = %e, "raft did not shut down cleanly");
        }
    }

    /// openraft's metrics, updated as they change.
    pub fn metrics(&self) -> watch::Receiver<Metrics> {
        self.inner.raft.metrics()
    }

    /// The last applied log index, updated after every apply.
    pub fn applied_index(&self) -> watch::Receiver<u64> {
        self.inner.sm.applied_index()
    }

    /// A consistent view of this node's applied state. Use
    /// [`Consensus::linearize`] first for a linearizable read.
    pub fn read(&self) -> Result<ReadView, ConsensusError> {
        self.inner
            .sm
            .storage()
            .read()
            .map_err(|e| ConsensusError::Fatal(e.to_string()))
    }

    /// Whether this node is the leader right now.
    pub fn is_leader(&self) -> bool {
        self.inner.raft.metrics().borrow().state == ServerState::Leader
    }

    /// Write `commands` through the leader; their outcomes, in order.
    pub async fn propose(&self, commands: Vec<Command>) -> Result<Vec<Outcome>, ConsensusError> {
        let retry_safe = commands.iter().all(Command::is_retry_safe);
        match self
            .on_leader(Forward::Propose(commands), retry_safe)
            .await?
        {
            Forwarded::Outcomes(outcomes) => Ok(outcomes),
            other => Err(unexpected(&other)),
        }
    }

    /// Write one command through the leader; its outcome.
    pub async fn propose_one(
        &self,
        command: impl Into<Command>,
    ) -> Result<Outcome, ConsensusError> {
        self.propose(vec![command.into()])
            .await?
            .pop()
            .ok_or_else(|| ConsensusError::Fatal("a proposal came back without an outcome".into()))
    }

    /// Wait until this node has applied everything committed before this
    /// call (a read index confirmed by a quorum): a read after this is
    /// linearizable.
    pub async fn linearize(&self) -> Result<(), ConsensusError> {
        let started = Instant::now();
        let index = match self.on_leader(Forward::ReadIndex, true).await? {
            Forwarded::ReadIndex(index) => index,
            other => return Err(unexpected(&other)),
        };
        let mut applied = self.applied_index();
        let remaining = LEADER_DEADLINE.saturating_sub(started.elapsed());
        let waited = tokio::time::timeout(remaining, applied.wait_for(|a| *a >= index))
            .await
            .map(|r| r.map(drop));
        match waited {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(ConsensusError::Fatal(
                "the state machine has stopped".into(),
            )),
            Err(_) => Err(ConsensusError::Unknown(format!(
                "this node did not apply up to the read index {index} in time"
            ))),
        }
    }

    /// Add node `id` at `addr`: as a learner, then, once it has caught up,
    /// as a voter. Adding a member that is already a voter at `addr` is a no-op.
    pub async fn add_member(&self, id: NodeId, addr: String) -> Result<(), ConsensusError> {
        if id == 0 {
            return Err(MembershipError::InvalidId(id).into());
        }
        check_addr(&addr)?;
        self.on_leader(Forward::AddMember { id, addr }, true)
            .await
            .map(drop)
    }

    /// Remove node `id` from the cluster.
    pub async fn remove_member(&self, id: NodeId) -> Result<(), ConsensusError> {
        self.on_leader(Forward::RemoveMember { id }, false)
            .await
            .map(drop)
    }

    /// The cluster as this node sees it; `reachable` is the leader's view
    /// (asked of the leader when this node is a follower).
    pub async fn status(&self) -> ClusterStatus {
        let mut status = self.status_local().await;
        if status.leader_id.is_some_and(|l| l != self.inner.id) {
            let asked = tokio::time::timeout(
                Duration::from_secs(1),
                self.on_leader(Forward::Reachability, true),
            )
            .await;
            if let Ok(Ok(Forwarded::Reachability(ids))) = asked {
                for m in &mut status.members {
                    m.reachable = ids.contains(&m.id);
                }
            }
        }
        status
    }

    /// The cluster from this node's own knowledge only, without asking the
    /// leader: a follower reports only itself as reachable.
    pub async fn status_local(&self) -> ClusterStatus {
        let metrics = self.metrics().borrow().clone();
        let committed = self
            .inner
            .raft
            .with_raft_state(|st| st.committed.map_or(0, |c| c.index))
            .await
            .unwrap_or(0);
        let reachable: BTreeSet<NodeId> = if metrics.current_leader == Some(self.inner.id) {
            self.reachable_peers().into_iter().collect()
        } else {
            BTreeSet::from([self.inner.id])
        };
        let membership = metrics.membership_config.membership();
        let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
        let members = membership
            .nodes()
            .map(|(id, node)| MemberStatus {
                id: *id,
                addr: node.addr.clone(),
                voter: voters.contains(id),
                reachable: reachable.contains(id),
            })
            .collect();
        ClusterStatus {
            node_id: self.inner.id,
            leader_id: metrics.current_leader,
            term: metrics.current_term,
            commit_index: committed,
            applied_index: metrics.last_applied.map_or(0, |l| l.index),
            snapshot_index: metrics.snapshot.map_or(0, |l| l.index),
            purged_index: metrics.purged.map_or(0, |l| l.index),
            members,
        }
    }

    /// Ready: a leader is known and this node has applied up to the commit index.
    pub async fn is_ready(&self) -> bool {
        let (leader, applied) = {
            let m = self.inner.raft.metrics();
            let m = m.borrow();
            (m.current_leader, m.last_applied.map_or(0, |l| l.index))
        };
        let committed = self
            .inner
            .raft
            .with_raft_state(|st| st.committed.map_or(0, |c| c.index))
            .await;
        leader.is_some() && committed.is_ok_and(|c| applied >= c)
    }

    /// This node (the leader) plus every peer that answered within a few
    /// heartbeats.
    fn reachable_peers(&self) -> Vec<NodeId> {
        let fresh = self.inner.heartbeat * 5;
        let mut ids: Vec<NodeId> = self
            .inner
            .peers
            .last_answers()
            .into_iter()
            .filter(|(_, at)| at.elapsed() <= fresh)
            .map(|(id, _)| id)
            .collect();
        ids.push(self.inner.id);
        ids
    }

    /// The current leader's id and address, if one is known.
    fn leader(&self) -> Option<(NodeId, String)> {
        let metrics = self.inner.raft.metrics();
        let metrics = metrics.borrow();
        let leader = metrics.current_leader?;
        let node = metrics.membership_config.membership().get_node(&leader)?;
        Some((leader, node.addr.clone()))
    }

    /// Run `request` on the leader: here if this node leads, else forwarded.
    /// Waits for a leader (or for a membership change in progress to finish)
    /// with backoff up to [`LEADER_DEADLINE`]. When the
    /// outcome of an attempt is unknown, it is retried only if `retry_safe`.
    async fn on_leader(
        &self,
        request: Forward,
        retry_safe: bool,
    ) -> Result<Forwarded, ConsensusError> {
        let started = Instant::now();
        let mut backoff = Duration::from_millis(10);
        loop {
            let remaining = LEADER_DEADLINE.saturating_sub(started.elapsed());
            if remaining.is_zero() {
                return Err(ConsensusError::NoLeader {
                    waited_ms: started.elapsed().as_millis() as u64,
                });
            }
            let attempt = match self.leader() {
                Some((id, _)) if id == self.inner.id => {
                    bounded(remaining, self.execute(request.clone())).await
                }
                Some((_, addr)) => {
                    match self
                        .inner
                        .peers
                        .call::<_, Result<Forwarded, ConsensusError>>(
                            &addr,
                            "/raft/forward",
                            &request,
                            remaining,
                        )
                        .await
                    {
                        Ok(result) => result,
                        Err(PeerError::Unreachable { .. }) => Err(ConsensusError::NotLeader),
                        Err(e @ PeerError::Failed { .. }) => {
                            Err(ConsensusError::Unknown(e.to_string()))
                        }
                    }
                }
                None => Err(ConsensusError::NotLeader),
            };
            match attempt {
                Err(ConsensusError::NotLeader | ConsensusError::Busy(_)) => {}
                Err(ConsensusError::Unknown(_)) if retry_safe => {}
                other => return other,
            }
            // Wake early when the leader changes, else after the backoff.
            let mut metrics = self.inner.raft.metrics();
            let known = metrics.borrow().current_leader;
            let _ = tokio::time::timeout(
                backoff.min(remaining),
                metrics.wait_for(|m| m.current_leader != known && m.current_leader.is_some()),
            )
            .await;
            backoff = (backoff * 2).min(Duration::from_millis(500));
        }
    }

    /// Run a forwarded request on this node, which believes it leads.
    async fn execute(&self, request: Forward) -> Result<Forwarded, ConsensusError> {
        match request {
            Forward::Propose(commands) => self
                .inner
                .proposer
                .propose(commands)
                .await
                .map(Forwarded::Outcomes),
            Forward::ReadIndex => match self.inner.raft.get_read_log_id().await {
                Ok((read, _)) => Ok(Forwarded::ReadIndex(read.map_or(0, |l| l.index))),
                Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(_))) => {
                    Err(ConsensusError::NotLeader)
                }
                Err(RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(e))) => Err(
                    ConsensusError::Unknown(format!("leadership not confirmed: {e}")),
                ),
                Err(RaftError::Fatal(f)) => Err(ConsensusError::Fatal(f.to_string())),
            },
            Forward::AddMember { id, addr } => self
                .add_member_here(id, addr)
                .await
                .map(|()| Forwarded::Done),
            Forward::RemoveMember { id } => {
                self.remove_member_here(id).await.map(|()| Forwarded::Done)
            }
            Forward::Reachability => {
                if self.is_leader() {
                    Ok(Forwarded::Reachability(self.reachable_peers()))
                } else {
                    Err(ConsensusError::NotLeader)
                }
            }
        }
    }

    async fn add_member_here(&self, id: NodeId, addr: String) -> Result<(), ConsensusError> {
        let (is_voter, existing) = {
            let metrics = self.inner.raft.metrics();
            let metrics = metrics.borrow();
            let membership = metrics.membership_config.membership();
            let is_voter = membership.voter_ids().any(|v| v == id);
            (is_voter, membership.get_node(&id).map(|n| n.addr.clone()))
        };
        match existing {
            Some(existing) if existing != addr => {
                return Err(MembershipError::IdTaken { id, existing, addr }.into());
            }
            Some(_) if is_voter => return Ok(()),
            // Already a learner here (an earlier attempt stopped half-way):
            // it has this cluster's state, so go on to promote it.
            Some(_) => {}
            None => self.check_newcomer(id, &addr).await?,
        }
        let added = tokio::time::timeout(
            CATCH_UP_DEADLINE,
            self.inner.raft.add_learner(id, Node::new(&addr), true),
        )
        .await;
        match added {
            Ok(result) => {
                result.map_err(change_error)?;
            }
            Err(_) => {
                let _ = self
                    .inner
                    .raft
                    .change_membership(ChangeMembers::RemoveNodes(BTreeSet::from([id])), false)
                    .await;
                return Err(MembershipError::CatchUpTimeout {
                    id,
                    waited_ms: CATCH_UP_DEADLINE.as_millis() as u64,
                }
                .into());
            }
        }
        self.inner
            .raft
            .change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([id])), false)
            .await
            .map_err(change_error)?;
        tracing::info!(node_id = id, %addr, "added a voter");
        Ok(())
    }

    /// Before adding a node, make sure a fresh gnomon with that id answers.
    async fn check_newcomer(&self, id: NodeId, addr: &str) -> Result<(), ConsensusError> {
        let hello: Hello = self
            .inner
            .peers
            .call(addr, "/raft/hello", &(), Duration::from_secs(2))
            .await
            .map_err(|e| MembershipError::Unreachable {
                addr: addr.to_string(),
                reason: e.to_string(),
            })?;
        if hello.id != id {
            return Err(MembershipError::IdMismatch {
                addr: addr.to_string(),
                expected: id,
                actual: hello.id,
            }
            .into());
        }
        if hello.initialized {
            return Err(MembershipError::AlreadyInitialized {
                addr: addr.to_string(),
            }
            .into());
        }
        Ok(())
    }

    async fn remove_member_here(&self, id: NodeId) -> Result<(), ConsensusError> {
        let (voters, known) = {
            let metrics = self.inner.raft.metrics();
            let metrics = metrics.borrow();
            let membership = metrics.membership_config.membership();
            let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
            (voters, membership.get_node(&id).is_some())
        };
        if !known {
            return Err(MembershipError::UnknownMember(id).into());
        }
        let change = if voters.contains(&id) {
            if voters.len() == 1 {
                return Err(MembershipError::LastVoter(id).into());
            }
            ChangeMembers::RemoveVoters(BTreeSet::from([id]))
        } else {
            ChangeMembers::RemoveNodes(BTreeSet::from([id]))
        };
        self.inner
            .raft
            .change_membership(change, false)
            .await
            .map_err(change_error)?;
        tracing::info!(node_id = id, "removed a member");
        Ok(())
    }
}

/// Bound `f` by `limit`; a request that runs out of time has an unknown outcome.
async fn bounded<T>(
    limit: Duration,
    f: impl Future<Output = Result<T, ConsensusError>>,
) -> Result<T, ConsensusError> {
    tokio::time::timeout(limit, f).await.unwrap_or_else(|_| {
        Err(ConsensusError::Unknown(
            "the leader did not commit in time".into(),
        ))
    })
}

fn unexpected(reply: &Forwarded) -> ConsensusError {
    ConsensusError::Fatal(format!("unexpected reply from the leader: {reply:?}"))
}

fn change_error(e: RaftError<NodeId, ClientWriteError<NodeId, Node>>) -> ConsensusError {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(_)) => ConsensusError::NotLeader,
        RaftError::APIError(ClientWriteError::ChangeMembershipError(
            ChangeMembershipError::InProgress(p),
        )) => ConsensusError::Busy(format!("another membership change is in progress: {p}")),
        RaftError::APIError(ClientWriteError::ChangeMembershipError(e)) => {
            MembershipError::Refused(e.to_string()).into()
        }
        RaftError::Fatal(f) => ConsensusError::Fatal(f.to_string()),
    }
}

fn check_addr(addr: &str) -> Result<(), MembershipError> {
    let invalid = || MembershipError::InvalidAddr {
        addr: addr.to_string(),
    };
    let (host, port) = addr.rsplit_once(':').ok_or_else(invalid)?;
    if host.is_empty() || port.parse::<u16>().map_or(true, |p| p == 0) || addr.contains('/') {
        return Err(invalid());
    }
    Ok(())
}

async fn forward_handler(State(consensus): State<Consensus>, body: Bytes) -> Response {
    match decode_body::<Forward>(&body) {
        Ok(request) => reply(&consensus.execute(request).await),
        Err(bad) => bad,
    }
}

async fn hello_handler(State(consensus): State<Consensus>) -> Response {
    let initialized = consensus.is_initialized().await.unwrap_or(true);
    reply(&Hello {
        id: consensus.inner.id,
        initialized,
    })
}
