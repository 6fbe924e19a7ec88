//! One integration-test binary for cairn-jepsen: whole histories through the public API.

mod clean;
mod model_histories;
mod retention;
