//! Cluster-level tests live in tests/it.
