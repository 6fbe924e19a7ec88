//! [`PartitionOutcome`]: the per-partition result of
//! [`crate::Client::produce_records`].

use cairn_proto::v1::ProduceResponse;

use crate::ClientError;

/// What happened to the records sent to one partition.
#[derive(Debug)]
pub struct PartitionOutcome {
    /// The partition the records went to.
    pub partition: u32,
    /// Indices into the `records` slice given to `produce_records`, in the
    /// order they were written (so the i-th gets `base_offset + i`).
    pub record_indices: Vec<usize>,
    /// The produce result for this partition's batch.
    pub result: Result<ProduceResponse, ClientError>,
}

impl PartitionOutcome {
    /// The offset assigned to the `position`-th record of this partition's
    /// batch, if the produce succeeded with an offset (only acks=all reports
    /// offsets).
    pub fn offset_of(&self, position: usize) -> Option<i64> {
        let base = self.result.as_ref().ok()?.base_offset;
        if base < 0 || position >= self.record_indices.len() {
            return None;
        }
        base.checked_add(i64::try_from(position).ok()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets() {
        let ok = PartitionOutcome {
            partition: 0,
            record_indices: vec![3, 5],
            result: Ok(ProduceResponse {
                base_offset: 100,
                high_watermark: 102,
                duplicate: false,
            }),
        };
        assert_eq!(ok.offset_of(0), Some(100));
        assert_eq!(ok.offset_of(1), Some(101));
        assert_eq!(ok.offset_of(2), None);
        let unacked = PartitionOutcome {
            result: Ok(ProduceResponse {
                base_offset: -1,
                high_watermark: 0,
                duplicate: false,
            }),
            ..ok
        };
        assert_eq!(unacked.offset_of(0), None);
    }
}
