//! Catching up: a node that connects asks its peer (and every agent asks
//! one peer in turn every 15 s) for the ids of actions that are still
//! valid, fetches the ones it has not seen, and validates them exactly as
//! if they had come by gossip. So an agent that was offline (or cut off)
//! when an action was published still runs it if it comes back in time;
//! gossipsub alone forgets messages within seconds. The same protocol
//! answers `Peers`, how agents find links. The messages are in
//! `mig_proto::messages`.

pub use mig_proto::messages::{
    MAX_SYNC_FETCH as MAX_FETCH, MAX_SYNC_IDS as MAX_IDS, SyncRequest, SyncResponse,
};
