//! Catching up: a node that connects asks its peer for the ids of actions
//! that are still valid, fetches the ones it has not seen, and validates
//! them exactly as if they had come by gossip. So an agent that was
//! offline (or cut off) when an action was published still runs it if it
//! comes back in time; gossipsub alone forgets messages within seconds.

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

/// Ids offered in one answer at most.
pub const MAX_IDS: usize = 1024;
/// Actions fetched per request at most (each up to the wire limit).
pub const MAX_FETCH: usize = 4;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum SyncRequest {
    /// Which actions do you hold that are still valid?
    Ids,
    /// Send me these actions' wire messages.
    Fetch(Vec<ByteBuf>),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum SyncResponse {
    Ids(Vec<ByteBuf>),
    Actions(Vec<ByteBuf>),
}
