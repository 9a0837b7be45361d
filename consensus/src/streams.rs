//! Reassembly of proposal streams from peers, bounded against a peer that floods them.
//!
//! A stream is `Init`, data chunks, a signed `Fin` part, then the stream's own end marker. Its id names
//! the height, round and proposer ([`stream_id`]); the bridge admits a stream on its first part, whatever
//! the order parts arrive in, only if the id parses, the proposer is the one of that height and round and
//! the publisher is the peer the proposer's key vouched for ([`crate::peers`], or [`peer_id_of`] for a node
//! without a node key), or any publisher while no peer has vouched for that key (the signed `Fin` then
//! decides). This buffer then holds each admitted stream
//! to the block limits (parts, bytes, chunk size, one part per sequence number), keeps at most
//! [`MAX_STREAMS_PER_PEER`] streams per publisher and [`MAX_STREAMS`] in all (evicting the offending
//! publisher's oldest first), and strikes a publisher for every invalid stream: after [`MAX_STRIKES`] its
//! parts are ignored for [`BAN_HEIGHTS`] heights.

use std::collections::BTreeMap;

use bytes::Bytes;
use malachitebft_app_channel::app::streaming::{StreamContent, StreamId, StreamMessage};
use malachitebft_app_channel::app::types::PeerId;
use malachitebft_core_types::Round;

use crate::types::{Address, Height, PartInit, ProposalPart, PublicKey, Signature};

/// Size of the data chunks a block is streamed in; a longer chunk makes the stream invalid.
pub const CHUNK_SIZE: usize = 64 * 1024;
/// Streams buffered per publisher; a new one evicts that publisher's oldest.
pub const MAX_STREAMS_PER_PEER: usize = 3;
/// Streams buffered in all; a new one evicts the oldest stream of the publisher with the most.
pub const MAX_STREAMS: usize = 64;
/// Invalid streams after which a publisher is ignored.
pub const MAX_STRIKES: u32 = 3;
/// How many heights an ignored publisher stays ignored.
pub const BAN_HEIGHTS: u64 = 10;
/// Publishers whose strikes are remembered; beyond it the record with the fewest strikes is forgotten.
const MAX_TRACKED_PEERS: usize = 1024;

/// The id of the stream of `proposer`'s proposal for `height` and `round`: height (8 bytes), round (8),
/// proposer address (20), all big-endian.
pub fn stream_id(height: Height, round: Round, proposer: &Address) -> StreamId {
    let mut b = Vec::with_capacity(36);
    b.extend_from_slice(&height.0.to_be_bytes());
    b.extend_from_slice(&round.as_i64().to_be_bytes());
    b.extend_from_slice(&proposer.0);
    StreamId::new(Bytes::from(b))
}

/// What a stream id claims: height, round and proposer. `None` if it is not one [`stream_id`] makes.
pub fn parse_stream_id(id: &StreamId) -> Option<StreamHeader> {
    let b = id.to_bytes();
    if b.len() != 36 {
        return None;
    }
    let height = u64::from_be_bytes(b.get(0..8)?.try_into().ok()?);
    let round = i64::from_be_bytes(b.get(8..16)?.try_into().ok()?);
    let round = Round::new(u32::try_from(round).ok()?);
    let proposer = Address(b.get(16..36)?.try_into().ok()?);
    Some(StreamHeader {
        height: Height(height),
        round,
        proposer,
    })
}

/// The libp2p peer id a consensus key gives when a node runs its consensus swarm under it (a node without a
/// node key, see [`crate::service::ConsensusConfig::node_key`]): the identity multihash of the
/// protobuf-encoded ed25519 key.
pub fn peer_id_of(key: &PublicKey) -> Option<PeerId> {
    // Multihash: identity code 0x00, length 36; key protobuf: type Ed25519 (field 1 = 1), data (field 2,
    // 32 bytes).
    let mut b = Vec::with_capacity(38);
    b.extend_from_slice(&[0x00, 0x24, 0x08, 0x01, 0x12, 0x20]);
    b.extend_from_slice(&key.0);
    PeerId::from_bytes(&b).ok()
}

/// Height, round and proposer of a stream, as its id names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamHeader {
    /// The height.
    pub height: Height,
    /// The round.
    pub round: Round,
    /// The proposer.
    pub proposer: Address,
}

/// Bounds of one stream, from the block limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamLimits {
    /// Most data bytes (the encoded block).
    pub max_bytes: u64,
}

impl StreamLimits {
    /// Most parts: init, the data chunks of the largest block, the signed fin, the end marker.
    pub fn max_parts(&self) -> u64 {
        let chunk = u64::try_from(CHUNK_SIZE).unwrap_or(u64::MAX);
        self.max_bytes.div_ceil(chunk).saturating_add(3)
    }
}

/// A complete stream: init, data chunks in order and the fin signature, not yet verified.
#[derive(Clone, Debug)]
pub struct Complete {
    /// Who published it.
    pub peer: PeerId,
    /// Its init part.
    pub init: PartInit,
    /// The data chunks, in order.
    pub chunks: Vec<Bytes>,
    /// The proposer's signature from the fin part.
    pub signature: Signature,
}

/// What a pushed part did.
#[derive(Debug)]
pub enum Pushed {
    /// Buffered (or ignored as a harmless duplicate); the stream is not complete.
    Pending,
    /// The part completed the stream, which left the buffer.
    Complete(Box<Complete>),
    /// The part broke the stream's rules: the stream was dropped and its publisher struck.
    Invalid(&'static str),
    /// The publisher is ignored for now.
    Ignored,
}

#[derive(Debug)]
struct Partial {
    opened: u64,
    header: StreamHeader,
    init: Option<PartInit>,
    chunks: BTreeMap<u64, Bytes>,
    signature: Option<(u64, Signature)>,
    end: Option<u64>,
    bytes: u64,
}

impl Partial {
    fn parts(&self) -> u64 {
        let n = u64::try_from(self.chunks.len()).unwrap_or(u64::MAX);
        n.saturating_add(u64::from(self.init.is_some()))
            .saturating_add(u64::from(self.signature.is_some()))
            .saturating_add(u64::from(self.end.is_some()))
    }

    fn holds(&self, seq: u64) -> bool {
        (seq == 0 && self.init.is_some())
            || self.chunks.contains_key(&seq)
            || self.signature.is_some_and(|(s, _)| s == seq)
            || self.end == Some(seq)
    }

    fn highest(&self) -> u64 {
        let mut h = self.chunks.keys().next_back().copied().unwrap_or(0);
        if let Some((s, _)) = self.signature {
            h = h.max(s);
        }
        h
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct PeerRecord {
    strikes: u32,
    banned_until: Option<Height>,
}

/// The buffer of incomplete proposal streams. Owned by the bridge.
#[derive(Debug)]
pub struct StreamBuffer {
    limits: StreamLimits,
    streams: BTreeMap<(PeerId, Bytes), Partial>,
    opened: u64,
    peers: BTreeMap<PeerId, PeerRecord>,
}

impl StreamBuffer {
    /// An empty buffer holding streams to `limits`.
    pub fn new(limits: StreamLimits) -> Self {
        Self {
            limits,
            streams: BTreeMap::new(),
            opened: 0,
            peers: BTreeMap::new(),
        }
    }

    /// Whether `peer`'s parts are ignored at `height`.
    pub fn is_ignored(&self, peer: &PeerId, height: Height) -> bool {
        self.peers
            .get(peer)
            .and_then(|r| r.banned_until)
            .is_some_and(|until| height < until)
    }

    /// Number of streams buffered.
    pub fn len(&self) -> usize {
        self.streams.len()
    }

    /// Whether nothing is buffered.
    pub fn is_empty(&self) -> bool {
        self.streams.is_empty()
    }

    /// Streams buffered from `peer`.
    pub fn len_of(&self, peer: &PeerId) -> usize {
        self.streams.keys().filter(|(p, _)| p == peer).count()
    }

    /// Data bytes buffered in all.
    pub fn bytes(&self) -> u64 {
        self.streams
            .values()
            .fold(0u64, |a, s| a.saturating_add(s.bytes))
    }

    /// Records an invalid stream (or part) from `peer` at `height`; after [`MAX_STRIKES`] the peer is
    /// ignored and its buffered streams dropped.
    pub fn strike(&mut self, peer: PeerId, height: Height) {
        if !self.peers.contains_key(&peer) && self.peers.len() >= MAX_TRACKED_PEERS {
            let forget = self
                .peers
                .iter()
                .min_by_key(|(_, r)| (r.banned_until.is_some(), r.strikes))
                .map(|(p, _)| *p);
            if let Some(p) = forget {
                self.peers.remove(&p);
            }
        }
        let record = self.peers.entry(peer).or_default();
        record.strikes = record.strikes.saturating_add(1);
        if record.strikes >= MAX_STRIKES {
            record.strikes = 0;
            record.banned_until = Some(Height(height.0.saturating_add(BAN_HEIGHTS)));
            self.streams.retain(|(p, _), _| *p != peer);
        }
    }

    /// Drops every stream below `height` and forgets bans that have run out. Called when a height starts.
    pub fn start_height(&mut self, height: Height) {
        self.streams.retain(|_, s| s.header.height >= height);
        self.peers
            .retain(|_, r| r.banned_until.is_some_and(|until| height < until) || r.strikes > 0);
        for r in self.peers.values_mut() {
            if r.banned_until.is_some_and(|until| height >= until) {
                r.banned_until = None;
            }
        }
    }

    /// Adds a part of an admitted stream (`header` is what its id claims, already checked by the caller).
    /// `height` is the height being decided (for strikes).
    pub fn push(
        &mut self,
        peer: PeerId,
        header: StreamHeader,
        msg: StreamMessage<ProposalPart>,
        height: Height,
    ) -> Pushed {
        if self.is_ignored(&peer, height) {
            return Pushed::Ignored;
        }
        let key = (peer, msg.stream_id.to_bytes());
        if !self.streams.contains_key(&key) {
            self.make_room(&peer);
            self.opened = self.opened.saturating_add(1);
            self.streams.insert(
                key.clone(),
                Partial {
                    opened: self.opened,
                    header,
                    init: None,
                    chunks: BTreeMap::new(),
                    signature: None,
                    end: None,
                    bytes: 0,
                },
            );
        }
        let outcome = match self.streams.get_mut(&key) {
            Some(stream) => add_part(stream, msg, &self.limits),
            None => Ok(false),
        };
        match outcome {
            Ok(false) => Pushed::Pending,
            Ok(true) => match self.streams.remove(&key).and_then(|s| finish(peer, s)) {
                Some(c) => Pushed::Complete(Box::new(c)),
                None => {
                    self.strike(peer, height);
                    Pushed::Invalid("stream parts out of order")
                }
            },
            Err(why) => {
                self.streams.remove(&key);
                self.strike(peer, height);
                Pushed::Invalid(why)
            }
        }
    }

    /// Makes room for a new stream from `peer`: its own oldest beyond the per-peer cap, then the oldest of
    /// the publisher with the most streams beyond the total cap.
    fn make_room(&mut self, peer: &PeerId) {
        while self.len_of(peer) >= MAX_STREAMS_PER_PEER {
            let oldest = self
                .streams
                .iter()
                .filter(|((p, _), _)| p == peer)
                .min_by_key(|(_, s)| s.opened)
                .map(|(k, _)| k.clone());
            match oldest {
                Some(k) => {
                    self.streams.remove(&k);
                }
                None => break,
            }
        }
        while self.streams.len() >= MAX_STREAMS {
            let mut per_peer: BTreeMap<PeerId, usize> = BTreeMap::new();
            for (p, _) in self.streams.keys() {
                let n = per_peer.entry(*p).or_default();
                *n = n.saturating_add(1);
            }
            let Some(busiest) = per_peer.into_iter().max_by_key(|(_, n)| *n).map(|(p, _)| p) else {
                break;
            };
            let oldest = self
                .streams
                .iter()
                .filter(|((p, _), _)| *p == busiest)
                .min_by_key(|(_, s)| s.opened)
                .map(|(k, _)| k.clone());
            match oldest {
                Some(k) => {
                    self.streams.remove(&k);
                }
                None => break,
            }
        }
    }
}

/// Adds one part; `Ok(true)` once every part up to the end marker is in.
fn add_part(
    s: &mut Partial,
    msg: StreamMessage<ProposalPart>,
    limits: &StreamLimits,
) -> Result<bool, &'static str> {
    let seq = msg.sequence;
    if seq >= limits.max_parts() {
        return Err("sequence beyond the block limits");
    }
    if s.end.is_some_and(|end| seq > end) {
        return Err("part after the end of the stream");
    }
    if s.holds(seq) {
        return Err("sequence number used twice");
    }
    match msg.content {
        StreamContent::Data(ProposalPart::Init(init)) => {
            if seq != 0 {
                return Err("init part not first");
            }
            let h = s.header;
            if init.height != h.height || init.round != h.round || init.proposer != h.proposer {
                return Err("init part does not match the stream id");
            }
            s.init = Some(init);
        }
        StreamContent::Data(ProposalPart::Data(chunk)) => {
            if seq == 0 {
                return Err("data before init");
            }
            if chunk.len() > CHUNK_SIZE {
                return Err("chunk over the chunk size");
            }
            let len = u64::try_from(chunk.len()).unwrap_or(u64::MAX);
            s.bytes = s.bytes.saturating_add(len);
            if s.bytes > limits.max_bytes {
                return Err("stream over the block size limit");
            }
            if s.signature.is_some_and(|(sig_seq, _)| seq > sig_seq) {
                return Err("data after the signed fin");
            }
            s.chunks.insert(seq, chunk);
        }
        StreamContent::Data(ProposalPart::Fin(sig)) => {
            if s.signature.is_some() {
                return Err("two signed fins");
            }
            if seq == 0 || s.chunks.keys().next_back().is_some_and(|last| *last > seq) {
                return Err("signed fin before data");
            }
            s.signature = Some((seq, sig));
        }
        StreamContent::Fin => {
            if seq < s.highest() {
                return Err("end marker before other parts");
            }
            s.end = Some(seq);
        }
    }
    Ok(s.end.is_some_and(|end| s.parts() == end.saturating_add(1)))
}

/// A stream whose parts are all in, checked for shape: init at 0, chunks at 1.., signed fin, end marker.
fn finish(peer: PeerId, s: Partial) -> Option<Complete> {
    let init = s.init?;
    let (sig_seq, signature) = s.signature?;
    let end = s.end?;
    let n = u64::try_from(s.chunks.len()).ok()?;
    if sig_seq != n.checked_add(1)? || end != sig_seq.checked_add(1)? {
        return None;
    }
    Some(Complete {
        peer,
        init,
        chunks: s.chunks.into_values().collect(),
        signature,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::PrivateKey;
    use malachitebft_app_channel::app::types::Keypair;

    #[test]
    fn a_validator_peer_id_is_derived_from_its_consensus_key() {
        for seed in [[1u8; 32], [42; 32], [255; 32]] {
            let key = PrivateKey::from_seed(seed);
            let libp2p = Keypair::ed25519_from_bytes(seed)
                .map(|k| k.public().to_peer_id().to_bytes())
                .ok();
            assert_eq!(peer_id_of(&key.public_key()).map(|p| p.to_bytes()), libp2p);
        }
    }

    #[test]
    fn stream_ids_round_trip_and_foreign_ids_do_not_parse() {
        let a = Address([9; 20]);
        let id = stream_id(Height(7), Round::new(3), &a);
        assert_eq!(
            parse_stream_id(&id),
            Some(StreamHeader {
                height: Height(7),
                round: Round::new(3),
                proposer: a
            })
        );
        assert_eq!(
            parse_stream_id(&StreamId::new(Bytes::from_static(b"x"))),
            None
        );
        assert_eq!(parse_stream_id(&stream_id(Height(7), Round::Nil, &a)), None);
    }
}
