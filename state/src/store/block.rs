//! The `blocks` column family's record: a block's txs and its FinalizeBlock results.
//!
//! Stored as borsh `(txs: Vec<Vec<u8>>, results: Vec<u8>)`. `results` is either the protobuf
//! `ResponseFinalizeBlock` (records written before the compact form existed) or [`COMPACT`] followed by the
//! compact form below; [`decode_results`] turns either into the response. Readers see the protobuf bytes
//! exactly as before ([`super::Store::block`] expands the compact form).
//!
//! Why a compact form: a transfer's result names three addresses and three numbers as strings (events),
//! about 250 bytes of protobuf per tx, most of a block's synced write. The compact form keeps each distinct
//! string once per block, in a table (an address as its 20 bytes, a canonical decimal as a varint), and
//! refers to it by index; a transfer's result then takes about 50 bytes.
//!
//! Compact form (varints are LEB128; `ref` is a varint index into the table; `bytes` is a varint length and
//! the bytes):
//!
//! ```text
//! COMPACT, VERSION
//! table:   varint n, n × (tag u8, payload): 0 string (bytes, UTF-8) | 1 address (20 bytes: its bech32m
//!          `lode1…` string) | 2 decimal (varint u128: its canonical decimal string)
//! events:  varint n, n × event                      (the block's own events)
//! results: varint n, n × (varint code, bytes data, ref log, ref info, varint gas_wanted as u64,
//!          varint gas_used as u64, varint m, m × event, ref codespace)
//! rest:    bytes: protobuf ResponseFinalizeBlock holding only validator_updates and consensus_param_updates
//! app_hash: bytes
//! event:   ref type, varint m, m × (varint ref << 1 | index, ref value)
//! ```

use crate::fasthash::HashMap;

use borsh::{BorshDeserialize, BorshSerialize};
use bytes::Bytes;
use prost::Message;
use tendermint_proto::v0_38::abci::{Event, EventAttribute, ExecTxResult, ResponseFinalizeBlock};

use crate::{address::Address, error::StoreError};

/// First byte of compact results. Protobuf never starts with it: a tag byte of 0xFF has wire type 7.
pub const COMPACT: u8 = 0xFF;
/// Version of the compact form.
const VERSION: u8 = 1;

const TAG_STRING: u8 = 0;
const TAG_ADDRESS: u8 = 1;
const TAG_DECIMAL: u8 = 2;

/// A stored block: its txs and the encoded ABCI `ResponseFinalizeBlock` (protobuf).
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct BlockRecord {
    pub txs: Vec<Vec<u8>>,
    pub results: Vec<u8>,
}

/// A block record encoded up to its app hash, which [`EncodedBlock::finish`] appends once the tree update
/// has computed it.
#[derive(Debug)]
pub struct EncodedBlock {
    bytes: Vec<u8>,
    /// Where the results' borsh length prefix is.
    results_at: usize,
}

impl EncodedBlock {
    /// The stored record, with `app_hash` as the results' app hash.
    pub fn finish(mut self, app_hash: &[u8]) -> Result<Vec<u8>, StoreError> {
        put_bytes(&mut self.bytes, app_hash);
        let (prefix, results) = self
            .bytes
            .get_mut(self.results_at..)
            .and_then(<[u8]>::split_first_chunk_mut::<4>)
            .ok_or_else(|| StoreError::Jmt("block record: no results length prefix".into()))?;
        let len = u32::try_from(results.len()).map_err(|_| too_large("results"))?;
        *prefix = len.to_le_bytes();
        Ok(self.bytes)
    }
}

fn too_large(what: &str) -> StoreError {
    StoreError::Jmt(format!("block record: {what} over 4 GiB"))
}

/// Encodes a block record: `txs` and `response` in the compact form, except `response.app_hash`, which
/// [`EncodedBlock::finish`] takes.
pub fn encode_block(
    txs: &[Bytes],
    response: &ResponseFinalizeBlock,
) -> Result<EncodedBlock, StoreError> {
    // A capacity hint: each tx with its length prefix, about 64 bytes per result, the rest.
    let tx_bytes = txs
        .iter()
        .fold(0usize, |n, t| n.saturating_add(t.len()).saturating_add(4));
    let results = response.tx_results.len().saturating_mul(64);
    let mut bytes = Vec::with_capacity(tx_bytes.saturating_add(results).saturating_add(64));
    let count = u32::try_from(txs.len()).map_err(|_| too_large("tx count"))?;
    bytes.extend_from_slice(&count.to_le_bytes());
    for tx in txs {
        let len = u32::try_from(tx.len()).map_err(|_| too_large("tx"))?;
        bytes.extend_from_slice(&len.to_le_bytes());
        bytes.extend_from_slice(tx);
    }
    let results_at = bytes.len();
    bytes.extend_from_slice(&[0; 4]);
    bytes.extend_from_slice(&encode_results_body(response));
    Ok(EncodedBlock { bytes, results_at })
}

/// The compact form of `response` without its app hash (the last field).
fn encode_results_body(response: &ResponseFinalizeBlock) -> Vec<u8> {
    let mut table = Table::default();
    // A capacity hint: about 48 bytes per result.
    let mut body = Vec::with_capacity(
        response
            .tx_results
            .len()
            .saturating_mul(48)
            .saturating_add(64),
    );
    put_events(&mut body, &mut table, &response.events);
    put_varint(&mut body, response.tx_results.len() as u128);
    for r in &response.tx_results {
        put_varint(&mut body, r.code as u128);
        put_bytes(&mut body, &r.data);
        put_varint(&mut body, table.index(&r.log));
        put_varint(&mut body, table.index(&r.info));
        put_varint(&mut body, r.gas_wanted as u64 as u128);
        put_varint(&mut body, r.gas_used as u64 as u128);
        put_events(&mut body, &mut table, &r.events);
        put_varint(&mut body, table.index(&r.codespace));
    }
    let rest = ResponseFinalizeBlock {
        validator_updates: response.validator_updates.clone(),
        consensus_param_updates: response.consensus_param_updates.clone(),
        ..Default::default()
    }
    .encode_to_vec();
    put_bytes(&mut body, &rest);
    let mut out = Vec::with_capacity(
        table
            .bytes
            .len()
            .saturating_add(body.len())
            .saturating_add(16),
    );
    out.push(COMPACT);
    out.push(VERSION);
    put_varint(&mut out, table.index.len() as u128);
    out.extend_from_slice(&table.bytes);
    out.extend_from_slice(&body);
    out
}

/// Compact results (without the app hash) for `response`, with `app_hash` appended: what a record stores.
pub fn encode_results(response: &ResponseFinalizeBlock) -> Vec<u8> {
    let mut out = encode_results_body(response);
    put_bytes(&mut out, &response.app_hash);
    out
}

/// The strings of a block, each kept once, in order of first use: a string's index is the number of
/// strings before it.
#[derive(Default)]
struct Table<'a> {
    index: HashMap<&'a str, usize>,
    bytes: Vec<u8>,
}

impl<'a> Table<'a> {
    fn index(&mut self, s: &'a str) -> u128 {
        if let Some(&i) = self.index.get(s) {
            return i as u128;
        }
        if let Some(a) = Address::parse_canonical(s.as_bytes()) {
            self.bytes.push(TAG_ADDRESS);
            self.bytes.extend_from_slice(a.as_bytes());
        } else if let Some(n) = canonical_decimal(s) {
            self.bytes.push(TAG_DECIMAL);
            put_varint(&mut self.bytes, n);
        } else {
            self.bytes.push(TAG_STRING);
            put_bytes(&mut self.bytes, s.as_bytes());
        }
        let i = self.index.len();
        self.index.insert(s, i);
        i as u128
    }
}

/// The value of a canonical decimal string: digits only, no leading zero (except `"0"`), fits in u128.
fn canonical_decimal(s: &str) -> Option<u128> {
    let b = s.as_bytes();
    if b.is_empty()
        || b.len() > 39
        || !b.iter().all(u8::is_ascii_digit)
        || matches!(b, [b'0', _, ..])
    {
        return None;
    }
    s.parse().ok()
}

fn put_events<'a>(out: &mut Vec<u8>, table: &mut Table<'a>, events: &'a [Event]) {
    put_varint(out, events.len() as u128);
    for e in events {
        put_varint(out, table.index(&e.r#type));
        put_varint(out, e.attributes.len() as u128);
        for a in &e.attributes {
            put_varint(out, (table.index(&a.key) << 1) | a.index as u128);
            put_varint(out, table.index(&a.value));
        }
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u128) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_varint(out, b.len() as u128);
    out.extend_from_slice(b);
}

/// A block record's results as the ABCI response, from either stored form.
pub fn decode_results(results: &[u8]) -> Result<ResponseFinalizeBlock, String> {
    match results.first() {
        Some(&COMPACT) => decode_compact(results),
        _ => ResponseFinalizeBlock::decode(results).map_err(|e| format!("protobuf: {e}")),
    }
}

/// A stored record's value as a [`BlockRecord`] with protobuf results.
pub fn decode_record(bytes: &[u8]) -> Result<BlockRecord, String> {
    let mut record = BlockRecord::try_from_slice(bytes).map_err(|e| e.to_string())?;
    if record.results.first() == Some(&COMPACT) {
        record.results = decode_compact(&record.results)?.encode_to_vec();
    }
    Ok(record)
}

/// Most elements reserved ahead from a count read off the disk: a count is bounded only by the bytes left,
/// and one byte of count can stand for a ~150-byte `ExecTxResult`; past this the vectors grow as read.
const PREALLOCATE: usize = 1024;

fn decode_compact(bytes: &[u8]) -> Result<ResponseFinalizeBlock, String> {
    let mut r = Reader { bytes, pos: 0 };
    if r.byte()? != COMPACT {
        return Err("not compact results".into());
    }
    let version = r.byte()?;
    if version != VERSION {
        return Err(format!("unknown compact results version {version}"));
    }
    let n = r.count()?;
    let mut table = Vec::with_capacity(n.min(PREALLOCATE));
    for _ in 0..n {
        let s = match r.byte()? {
            TAG_STRING => String::from_utf8(r.bytes()?.to_vec())
                .map_err(|_| format!("string at byte {} is not UTF-8", r.pos))?,
            TAG_ADDRESS => Address(r.array()?).to_string(),
            TAG_DECIMAL => r.varint()?.to_string(),
            tag => {
                let at = r.pos.saturating_sub(1);
                return Err(format!("unknown table tag {tag} at byte {at}"));
            }
        };
        table.push(s);
    }
    let events = r.events(&table)?;
    let n = r.count()?;
    let mut tx_results = Vec::with_capacity(n.min(PREALLOCATE));
    for _ in 0..n {
        let code = u32::try_from(r.varint()?).map_err(|_| "code over u32".to_string())?;
        let data = Bytes::copy_from_slice(r.bytes()?);
        let log = r.string(&table)?;
        let info = r.string(&table)?;
        let gas_wanted = r.u64()? as i64;
        let gas_used = r.u64()? as i64;
        let events = r.events(&table)?;
        let codespace = r.string(&table)?;
        tx_results.push(ExecTxResult {
            code,
            data,
            log,
            info,
            gas_wanted,
            gas_used,
            events,
            codespace,
        });
    }
    let rest =
        ResponseFinalizeBlock::decode(r.bytes()?).map_err(|e| format!("protobuf rest: {e}"))?;
    let app_hash = Bytes::copy_from_slice(r.bytes()?);
    if r.pos != bytes.len() {
        let after = bytes.len().saturating_sub(r.pos);
        return Err(format!("{after} bytes after the results"));
    }
    Ok(ResponseFinalizeBlock {
        events,
        tx_results,
        validator_updates: rest.validator_updates,
        consensus_param_updates: rest.consensus_param_updates,
        app_hash,
    })
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let (out, end) = self
            .pos
            .checked_add(n)
            .and_then(|end| Some((self.bytes.get(self.pos..end)?, end)))
            .ok_or_else(|| format!("truncated at byte {}", self.pos))?;
        self.pos = end;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let at = self.pos;
        self.take(N)?
            .try_into()
            .map_err(|_| format!("truncated at byte {at}"))
    }

    fn byte(&mut self) -> Result<u8, String> {
        let [b] = self.array()?;
        Ok(b)
    }

    fn varint(&mut self) -> Result<u128, String> {
        let start = self.pos;
        let mut v = 0u128;
        for shift in (0..128).step_by(7) {
            let b = self.byte()?;
            let part = (b & 0x7f) as u128;
            if shift == 126 && part > 0b11 {
                break;
            }
            v |= part << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(format!("varint over 128 bits at byte {start}"))
    }

    fn u64(&mut self) -> Result<u64, String> {
        u64::try_from(self.varint()?)
            .map_err(|_| format!("varint over u64 before byte {}", self.pos))
    }

    /// A count of items that each take at least one byte, so never more than the bytes left.
    fn count(&mut self) -> Result<usize, String> {
        let n = self.varint()?;
        usize::try_from(n)
            .ok()
            .filter(|&n| n <= self.bytes.len().saturating_sub(self.pos))
            .ok_or_else(|| format!("count {n} over the bytes left at byte {}", self.pos))
    }

    fn bytes(&mut self) -> Result<&'a [u8], String> {
        let n = self.count()?;
        self.take(n)
    }

    fn entry<'t>(&self, v: u128, table: &'t [String]) -> Result<&'t String, String> {
        usize::try_from(v)
            .ok()
            .and_then(|i| table.get(i))
            .ok_or_else(|| format!("table index {v} out of range before byte {}", self.pos))
    }

    fn string(&mut self, table: &[String]) -> Result<String, String> {
        let v = self.varint()?;
        self.entry(v, table).cloned()
    }

    fn events(&mut self, table: &[String]) -> Result<Vec<Event>, String> {
        let n = self.count()?;
        let mut events = Vec::with_capacity(n.min(PREALLOCATE));
        for _ in 0..n {
            let r#type = self.string(table)?;
            let m = self.count()?;
            let mut attributes = Vec::with_capacity(m.min(PREALLOCATE));
            for _ in 0..m {
                let k = self.varint()?;
                attributes.push(EventAttribute {
                    key: self.entry(k >> 1, table)?.clone(),
                    index: k & 1 == 1,
                    value: self.string(table)?,
                });
            }
            events.push(Event { r#type, attributes });
        }
        Ok(events)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use tendermint_proto::v0_38::{
        abci::ValidatorUpdate,
        crypto::{public_key::Sum, PublicKey},
        types::{BlockParams, ConsensusParams},
    };

    /// Strings that exercise each table form and the edges between them.
    fn string() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<[u8; 20]>().prop_map(|a| Address(a).to_string()),
            any::<u128>().prop_map(|n| n.to_string()),
            prop_oneof![
                Just(String::new()),
                Just("0".to_string()),
                Just("00".to_string()),
                Just("01".to_string()),
                Just("+1".to_string()),
                Just("340282366920938463463374607431768211456".to_string()),
                Just("LODE1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq".to_string()),
                Just("transfer".to_string()),
            ],
            any::<String>(),
            "[a-z0-9]{0,45}",
        ]
    }

    fn event() -> impl Strategy<Value = Event> {
        (
            string(),
            prop::collection::vec((string(), string(), any::<bool>()), 0..5),
        )
            .prop_map(|(r#type, attrs)| Event {
                r#type,
                attributes: attrs
                    .into_iter()
                    .map(|(key, value, index)| EventAttribute { key, value, index })
                    .collect(),
            })
    }

    fn tx_result() -> impl Strategy<Value = ExecTxResult> {
        (
            any::<u32>(),
            prop::collection::vec(any::<u8>(), 0..8),
            string(),
            string(),
            any::<i64>(),
            any::<i64>(),
            prop::collection::vec(event(), 0..4),
            string(),
        )
            .prop_map(
                |(code, data, log, info, gas_wanted, gas_used, events, codespace)| ExecTxResult {
                    code,
                    data: data.into(),
                    log,
                    info,
                    gas_wanted,
                    gas_used,
                    events,
                    codespace,
                },
            )
    }

    fn response() -> impl Strategy<Value = ResponseFinalizeBlock> {
        (
            prop::collection::vec(event(), 0..3),
            prop::collection::vec(tx_result(), 0..12),
            prop::collection::vec((any::<[u8; 32]>(), any::<i64>()), 0..3),
            prop::option::of(any::<i64>()),
            prop::collection::vec(any::<u8>(), 0..33),
        )
            .prop_map(|(events, tx_results, vals, params, app_hash)| {
                ResponseFinalizeBlock {
                    events,
                    tx_results,
                    validator_updates: vals
                        .into_iter()
                        .map(|(k, power)| ValidatorUpdate {
                            pub_key: Some(PublicKey {
                                sum: Some(Sum::Ed25519(k.to_vec())),
                            }),
                            power,
                        })
                        .collect(),
                    consensus_param_updates: params.map(|max_bytes| ConsensusParams {
                        block: Some(BlockParams {
                            max_bytes,
                            max_gas: -1,
                        }),
                        ..Default::default()
                    }),
                    app_hash: app_hash.into(),
                }
            })
    }

    fn record_of(txs: &[Vec<u8>], response: &ResponseFinalizeBlock) -> Vec<u8> {
        let txs: Vec<Bytes> = txs.iter().map(|t| Bytes::copy_from_slice(t)).collect();
        encode_block(&txs, response)
            .expect("encode")
            .finish(&response.app_hash)
            .expect("finish")
    }

    proptest! {
        #[test]
        fn compact_results_decode_to_the_same_response(r in response()) {
            let compact = encode_results(&r);
            prop_assert_eq!(compact[0], COMPACT);
            prop_assert_eq!(decode_results(&compact).expect("decode"), r);
        }

        #[test]
        fn a_stored_record_reads_back_as_txs_and_protobuf_results(
            txs in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..40), 0..6),
            r in response(),
        ) {
            let stored = record_of(&txs, &r);
            let read = decode_record(&stored).expect("decode");
            prop_assert_eq!(read, BlockRecord { txs, results: r.encode_to_vec() });
        }

        #[test]
        fn corrupt_records_give_errors_not_panics(
            r in response(),
            cut in any::<prop::sample::Index>(),
            flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
            junk in prop::collection::vec(any::<u8>(), 0..64),
        ) {
            let compact = encode_results(&r);
            let _ = decode_results(&compact[..cut.index(compact.len())]);
            let mut flipped = compact.clone();
            for (i, b) in flips {
                let i = i.index(flipped.len());
                flipped[i] ^= b;
            }
            let _ = decode_results(&flipped);
            let mut with_junk = vec![COMPACT, VERSION];
            with_junk.extend_from_slice(&junk);
            let _ = decode_results(&with_junk);
            let _ = decode_record(&junk);
        }
    }

    #[test]
    fn records_in_the_protobuf_form_still_read() {
        let r = ResponseFinalizeBlock {
            tx_results: vec![ExecTxResult {
                code: 5,
                log: "ERR_BAD_SIGNATURE: x".into(),
                ..Default::default()
            }],
            app_hash: vec![1; 32].into(),
            ..Default::default()
        };
        let old = BlockRecord {
            txs: vec![vec![1, 2, 3]],
            results: r.encode_to_vec(),
        };
        let stored = borsh::to_vec(&old).expect("borsh");
        assert_eq!(decode_record(&stored).expect("decode"), old);
        assert_eq!(decode_results(&old.results).expect("decode"), r);
    }

    #[test]
    fn a_transfer_result_is_small() {
        let addr = |b: u8| Address([b; 20]).to_string();
        let results: Vec<ExecTxResult> = (0..100u8)
            .map(|i| ExecTxResult {
                gas_wanted: 2000,
                gas_used: 2000,
                events: vec![
                    Event {
                        r#type: "tx".into(),
                        attributes: vec![
                            EventAttribute {
                                key: "signer".into(),
                                value: addr(i),
                                index: true,
                            },
                            EventAttribute {
                                key: "nonce".into(),
                                value: "7".into(),
                                index: true,
                            },
                            EventAttribute {
                                key: "fee".into(),
                                value: "10000".into(),
                                index: true,
                            },
                        ],
                    },
                    Event {
                        r#type: "transfer".into(),
                        attributes: vec![
                            EventAttribute {
                                key: "sender".into(),
                                value: addr(i),
                                index: true,
                            },
                            EventAttribute {
                                key: "recipient".into(),
                                value: addr(i.wrapping_mul(7)),
                                index: true,
                            },
                            EventAttribute {
                                key: "amount".into(),
                                value: "1".into(),
                                index: true,
                            },
                        ],
                    },
                ],
                ..Default::default()
            })
            .collect();
        let r = ResponseFinalizeBlock {
            tx_results: results,
            ..Default::default()
        };
        let compact = encode_results(&r);
        assert!(
            compact.len() * 4 < r.encoded_len(),
            "{} vs {}",
            compact.len(),
            r.encoded_len()
        );
    }

    #[test]
    fn canonical_decimals_are_exactly_the_printed_u128s() {
        for s in ["0", "1", "10000", &u128::MAX.to_string()] {
            assert_eq!(
                canonical_decimal(s).map(|n| n.to_string()).as_deref(),
                Some(s)
            );
        }
        for s in [
            "",
            "00",
            "01",
            "+1",
            "-1",
            " 1",
            "1 ",
            "340282366920938463463374607431768211456",
        ] {
            assert_eq!(canonical_decimal(s), None, "{s:?}");
        }
    }
}
