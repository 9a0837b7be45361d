//! Loopback port blocks that no other test and no outgoing connection can take: the port allocator of the
//! whole-system tests of every crate (`node/tests/it`, `consensus/tests/it`). A dev-dependency only.
//!
//! Asking the OS for a free port (`bind :0`, read the port, close) hands out a port from the ephemeral range
//! (`/proc/sys/net/ipv4/ip_local_port_range`, 32768–60999 by default). That is fine for a node that binds it at
//! once and keeps it, and wrong for a test that kills a node and restarts it on the same port: while the node is
//! down the kernel may give that port to any outgoing connection on the machine (every gRPC status poll opens
//! one), and the restarted node then fails to bind. A port can also be handed to a second test's node between
//! "picked" and "bound".
//!
//! [`PortBlock::reserve`] avoids both: it hands out blocks of [`BLOCK`] consecutive ports below the ephemeral
//! range, and it owns a block by holding an exclusive advisory lock on a per-block file under the temp dir for
//! as long as the [`PortBlock`] lives. Every test process on the machine uses the same lock files, so two tests
//! never share a block, and the kernel drops the lock when a test process dies, so nothing goes stale.

use std::fs::{File, OpenOptions};
use std::net::TcpListener;
use std::path::PathBuf;

/// Ports per block.
pub const BLOCK: u16 = 50;
/// First port of the first block.
const FIRST: u16 = 20_000;
/// Number of blocks: 20000..32000, below Linux's default ephemeral range.
const BLOCKS: u16 = 240;

/// A reserved block of loopback ports `base .. base + BLOCK`, reserved until dropped.
#[derive(Debug)]
pub struct PortBlock {
    base: u16,
    _lock: File,
}

impl PortBlock {
    /// Reserves a free block. Panics if every block is taken (240 concurrent tests) or unusable.
    pub fn reserve() -> PortBlock {
        let dir = lock_dir();
        std::fs::create_dir_all(&dir).expect("create port lock dir");
        // Start at a per-process offset so concurrent tests rarely contend for the same lock file.
        let start = u16::try_from(std::process::id() % u32::from(BLOCKS)).expect("fits");
        for k in 0..BLOCKS {
            let index = (start + k) % BLOCKS;
            let path = dir.join(format!("block-{index}.lock"));
            let Ok(file) = OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
            else {
                continue;
            };
            if file.try_lock().is_err() {
                continue;
            }
            let base = FIRST + index * BLOCK;
            // Something outside the tests (a developer's own service) may listen in the block: skip it.
            if (base..base + BLOCK).all(bindable) {
                return PortBlock { base, _lock: file };
            }
        }
        panic!(
            "no free block of {BLOCK} loopback ports in {FIRST}..{}",
            FIRST + BLOCKS * BLOCK
        );
    }

    /// First port of the block.
    pub fn base(&self) -> u16 {
        self.base
    }

    /// The `i`-th port of the block (`i < BLOCK`).
    pub fn port(&self, i: u16) -> u16 {
        assert!(i < BLOCK, "port {i} outside a block of {BLOCK}");
        self.base + i
    }
}

fn lock_dir() -> PathBuf {
    std::env::temp_dir().join("lode-test-ports")
}

fn bindable(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_held_at_once_are_disjoint_and_outside_the_ephemeral_range() {
        let a = PortBlock::reserve();
        let b = PortBlock::reserve();
        assert_ne!(a.base(), b.base());
        let (lo, hi) = if a.base() < b.base() {
            (&a, &b)
        } else {
            (&b, &a)
        };
        assert!(lo.base() + BLOCK <= hi.base());
        for blk in [&a, &b] {
            assert!(blk.base() >= FIRST && blk.port(BLOCK - 1) < 32_768);
        }
    }
}
