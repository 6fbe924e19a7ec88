//! Kafka's default key partitioner hash.

/// Kafka's `Utils.murmur2`: 32-bit MurmurHash2 with seed `0x9747b28c`,
/// bit-for-bit as the Java client computes it (signed result).
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;

    // Java arrays are shorter than 2^31, so `length` fits an int there; the
    // truncating cast mirrors Java's int arithmetic for the same input.
    let mut h: u32 = SEED ^ (data.len() as u32);

    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }

    let tail = chunks.remainder();
    if tail.len() == 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if let Some(&b) = tail.first() {
        h ^= u32::from(b);
        h = h.wrapping_mul(M);
    }

    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// Kafka's default partition for a non-null key:
/// `toPositive(murmur2(key)) % num_partitions`, where `toPositive` masks off
/// the sign bit. Returns 0 if `num_partitions` is 0.
pub fn partition_for_key(key: &[u8], num_partitions: u32) -> u32 {
    let positive = (murmur2(key) & 0x7fff_ffff) as u32;
    positive.checked_rem(num_partitions).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Vectors from Kafka's `UtilsTest.testMurmur2`.
    #[test]
    fn kafka_vectors() {
        assert_eq!(murmur2(b"21"), -973932308);
        assert_eq!(murmur2(b"foobar"), -790332482);
        assert_eq!(murmur2(b"a-little-bit-long-string"), -985981536);
        assert_eq!(murmur2(b"a-little-bit-longer-string"), -1486304829);
        assert_eq!(
            murmur2(b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8"),
            -58897971
        );
        assert_eq!(murmur2(b"abc"), 479470107);
    }

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// Cross-checked with kafka-python 3.0.12
    /// (`kafka.partitioner.default.murmur2`, which returns the hash as an
    /// unsigned 32-bit value; converted to i32 here) on random keys covering
    /// every tail length.
    #[test]
    fn kafka_python_vectors() {
        let cases: &[(&str, u32)] = &[
            ("", 275646681),
            ("39", 415544963),
            ("0c8c", 2539767442),
            ("7d7247", 687778619),
            ("342cd810", 1198490188),
            ("0f2f6f770d", 4254274583),
            ("65d670e58e0351", 3185621673),
            ("d8ae8e4f6eac342f", 2211682488),
            ("c231b7b08716eb3fc1", 34660525),
            ("2896b96223177494287733c28e", 113651868),
            ("e8ba53bdb56b8824577d53ecc28a70a6", 703320163),
            (
                "1c7510a1cd89216ca16cffcaea4987477e86dbccb97046fc2e18384e51d820c5c3",
                1557779697,
            ),
            (
                "ef80053a88ae3996de50e801865b3698654ebf5200a5fa0939b99d7a1d7b282b\
                 f8234041f35487d86c669fccbfe0e73d7e7320ad0a757003241e752210a92479\
                 8ef86d43f27cf2d0613031dcb5d8d2ef1b321fcead377f6261e547d85d8eec7f\
                 26e23219",
                2562878168,
            ),
            // b"user-42"
            ("757365722d3432", 1459644460),
        ];
        for (hex, expected) in cases {
            assert_eq!(murmur2(&unhex(hex)), *expected as i32, "key {hex}");
        }
    }

    #[test]
    fn partitions() {
        // toPositive(-973932308) = 1173551340
        assert_eq!(partition_for_key(b"21", 1), 0);
        assert_eq!(partition_for_key(b"21", 7), 1173551340 % 7);
        // 0x7fffffff & -790332482 = 1357151166
        assert_eq!(partition_for_key(b"foobar", 12), 1357151166 % 12);
        assert_eq!(partition_for_key(b"abc", 1000), 479470107 % 1000);
        assert_eq!(partition_for_key(b"abc", 0), 0);
        for n in 1..50 {
            assert!(partition_for_key(b"some key", n) < n);
        }
    }
}
