//! Integration tests of cairn-storage (one binary).

mod common;
mod corruption;
mod durability;
mod group_commit;
mod model;
mod open;
mod rewrite;
mod state;
mod suite;
