//! Compression codec and timestamp type, as encoded in the batch attributes.

/// Compression codec of a record batch (attribute bits 0-2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compression {
    /// Codec id 0.
    None,
    /// Codec id 1.
    Gzip,
    /// Codec id 2.
    Snappy,
    /// Codec id 3.
    Lz4,
    /// Codec id 4.
    Zstd,
    /// Codec ids 5-7, which Kafka does not define. [`crate::validate_batch`]
    /// rejects such batches.
    Unknown(u8),
}

impl Compression {
    /// Mask of the compression bits in the batch attributes.
    pub const ATTRIBUTE_MASK: i16 = 0x07;

    /// The codec for a codec id; only the low 3 bits of `id` are used.
    pub fn from_id(id: u8) -> Self {
        match id & 0x07 {
            0 => Compression::None,
            1 => Compression::Gzip,
            2 => Compression::Snappy,
            3 => Compression::Lz4,
            4 => Compression::Zstd,
            other => Compression::Unknown(other),
        }
    }

    /// The codec encoded in batch `attributes`.
    pub fn from_attributes(attributes: i16) -> Self {
        // Masked to 3 bits, so the cast cannot lose information.
        Self::from_id((attributes & Self::ATTRIBUTE_MASK) as u8)
    }

    /// The codec id as written in the attributes.
    pub fn id(self) -> u8 {
        match self {
            Compression::None => 0,
            Compression::Gzip => 1,
            Compression::Snappy => 2,
            Compression::Lz4 => 3,
            Compression::Zstd => 4,
            Compression::Unknown(id) => id & 0x07,
        }
    }
}

/// Meaning of the batch timestamps (attribute bit 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimestampType {
    /// Timestamps were set by the producer (bit clear).
    CreateTime,
    /// The broker stamped `maxTimestamp` at append time (bit set); every
    /// record's timestamp is then `maxTimestamp`.
    LogAppendTime,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip() {
        for id in 0u8..8 {
            assert_eq!(Compression::from_id(id).id(), id);
        }
        assert_eq!(Compression::from_id(4), Compression::Zstd);
        assert_eq!(Compression::from_id(6), Compression::Unknown(6));
        assert_eq!(Compression::from_attributes(0x0013), Compression::Lz4);
        assert_eq!(Compression::from_attributes(-1), Compression::Unknown(7));
    }
}
