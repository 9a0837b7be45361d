//! Long-running services the node exposes.

pub mod abci_socket;
pub mod blob_exchange;
pub mod block_store;
pub mod chain;
pub mod events;
pub mod evidence;
pub mod explorer;
pub mod gossip;
pub mod grpc;
pub mod in_process;
pub mod mempool;
pub mod metrics;
pub mod stream;
pub mod tx_fetch;

/// `first` and whatever else is already queued behind it, until the items' `size`s add up to `max` or
/// more: what a task that checks batches takes together.
pub(crate) fn take_queued<T>(
    first: T,
    queue: &mut tokio::sync::mpsc::Receiver<T>,
    max: usize,
    size: impl Fn(&T) -> usize,
) -> Vec<T> {
    let mut total = size(&first);
    let mut group = vec![first];
    while total < max {
        match queue.try_recv() {
            Ok(item) => {
                total += size(&item);
                group.push(item);
            }
            Err(_) => break,
        }
    }
    group
}

/// What the services' unit tests share.
#[cfg(test)]
pub(crate) mod test_support {
    use ed25519_consensus::SigningKey;
    use lode_state::LodeApp;

    /// An application on `dir` after InitChain of chain `c`: one validator holding all the power, and
    /// 10^12 base units in each of `funded`'s accounts.
    pub(crate) fn initialised_app(dir: &std::path::Path, funded: &[&SigningKey]) -> LodeApp {
        LodeApp::initialised_for_tests(dir, "c", funded).expect("initialised")
    }
}
