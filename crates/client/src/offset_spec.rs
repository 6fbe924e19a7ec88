//! [`OffsetSpec`]: which offset `ListOffsets` should look up.

use cairn_proto::v1::list_offsets_request::Spec;

/// The offset to look up with [`crate::Client::list_offsets`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetSpec {
    /// The first retained offset (log start).
    Earliest,
    /// The high watermark: the offset the next committed record will get.
    Latest,
    /// The first offset whose record timestamp is at or after this many
    /// milliseconds since the epoch.
    Timestamp(i64),
}

impl From<OffsetSpec> for Spec {
    fn from(spec: OffsetSpec) -> Self {
        match spec {
            OffsetSpec::Earliest => Spec::Earliest(true),
            OffsetSpec::Latest => Spec::Latest(true),
            OffsetSpec::Timestamp(ts) => Spec::TimestampMs(ts),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_to_proto() {
        assert_eq!(Spec::from(OffsetSpec::Earliest), Spec::Earliest(true));
        assert_eq!(Spec::from(OffsetSpec::Latest), Spec::Latest(true));
        assert_eq!(Spec::from(OffsetSpec::Timestamp(7)), Spec::TimestampMs(7));
    }
}
