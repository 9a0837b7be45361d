//! compute's events carry `job` (hex id) like market's (see `market::event::job`); this module adds the
//! formatting of tile lists.

/// Tile indices as a comma-separated list (`3,17,42`), the form events and history use.
pub fn tile_list(tiles: &[u64]) -> String {
    tiles
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(",")
}
