//! Lode's protobuf wire types. These are the bytes clients and peers exchange; the state machine converts
//! them into its own domain types at the edge (`TryFrom`), and never stores them.

#![allow(missing_docs, missing_debug_implementations, clippy::all)]

/// `lode.tx.v1`: transactions.
pub mod tx {
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/lode.tx.v1.rs"));
    }
}

/// `lode.bank.v1`: transfers.
pub mod bank {
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/lode.bank.v1.rs"));
    }
}

/// `lode.query.v1`: query types.
pub mod query {
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/lode.query.v1.rs"));
    }
}

/// `lode.consensus.v1`: consensus wire types (votes, proposals, blocks, certificates, sync).
pub mod consensus {
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/lode.consensus.v1.rs"));
    }
}

/// `lode.staking.v1`: validators, delegations, unbonding (messages and queries).
pub mod staking {
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/lode.staking.v1.rs"));
    }
}

/// `lode.gov.v1`: proposals, deposits, votes (messages and queries).
pub mod gov {
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/lode.gov.v1.rs"));
    }
}

/// `lode.nft.v1`: collections, tokens, listings (messages and queries).
pub mod nft {
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/lode.nft.v1.rs"));
    }
}

/// `lode.market.v1`: providers, jobs, matching (messages and queries).
pub mod market {
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/lode.market.v1.rs"));
    }
}

/// `lode.compute.v1`: result commitments, reveals, availability challenges, fraud proofs.
pub mod compute {
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/lode.compute.v1.rs"));
    }
}

/// JSON forms of proto fields for the CLI: bytes as hex, enum numbers as their names.
pub mod json {
    use serde::Serializer;

    /// Bytes as lowercase hex.
    pub fn hex<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&::hex::encode(bytes))
    }

    /// A list of byte strings, each as lowercase hex.
    pub fn hex_list<S: Serializer>(list: &[Vec<u8>], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(list.iter().map(::hex::encode))
    }

    /// A `lode.market.v1.OnFailure` by name (an unknown number stays a number).
    pub fn on_failure<S: Serializer>(v: &i32, s: S) -> Result<S::Ok, S::Error> {
        match crate::market::v1::OnFailure::try_from(*v) {
            Ok(o) => s.serialize_str(o.as_str_name()),
            Err(_) => s.serialize_i32(*v),
        }
    }

    /// A `lode.gov.v1.ProposalStatus` by name (an unknown number stays a number).
    pub fn proposal_status<S: Serializer>(v: &i32, s: S) -> Result<S::Ok, S::Error> {
        match crate::gov::v1::ProposalStatus::try_from(*v) {
            Ok(status) => s.serialize_str(status.as_str_name()),
            Err(_) => s.serialize_i32(*v),
        }
    }

    /// A `lode.gov.v1.VoteOption` by name (an unknown number stays a number).
    pub fn vote_option<S: Serializer>(v: &i32, s: S) -> Result<S::Ok, S::Error> {
        match crate::gov::v1::VoteOption::try_from(*v) {
            Ok(option) => s.serialize_str(option.as_str_name()),
            Err(_) => s.serialize_i32(*v),
        }
    }
}
