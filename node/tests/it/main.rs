//! Integration tests of the `lode` binary: real processes, loopback sockets, temp dirs.

mod abci_socket;
mod cli;
mod support;
