//! Integration tests of cairn-group (one binary): properties every assignor
//! must have, and the stickiness of `cooperative-sticky` across membership
//! changes.

mod assignors;
mod invariants;
mod sticky;
mod strategies;
