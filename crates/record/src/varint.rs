//! Kafka's zig-zag varints (`varint` = i32 in at most 5 bytes, `varlong` =
//! i64 in at most 10 bytes), as used inside v2 records.

/// Zig-zag maps signed to unsigned so small magnitudes encode short.
#[inline]
fn zigzag32(n: i32) -> u32 {
    ((n << 1) ^ (n >> 31)) as u32
}

#[inline]
fn zigzag64(n: i64) -> u64 {
    ((n << 1) ^ (n >> 63)) as u64
}

#[inline]
pub(crate) fn unzigzag32(n: u32) -> i32 {
    ((n >> 1) as i32) ^ -((n & 1) as i32)
}

#[inline]
pub(crate) fn unzigzag64(n: u64) -> i64 {
    ((n >> 1) as i64) ^ -((n & 1) as i64)
}

#[inline]
fn unsigned_size(mut v: u64) -> usize {
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

#[inline]
fn put_unsigned(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Encoded size of `n` as a varint.
#[inline]
pub(crate) fn varint_size(n: i32) -> usize {
    unsigned_size(u64::from(zigzag32(n)))
}

/// Encoded size of `n` as a varlong.
#[inline]
pub(crate) fn varlong_size(n: i64) -> usize {
    unsigned_size(zigzag64(n))
}

/// Appends `n` as a varint.
#[inline]
pub(crate) fn put_varint(out: &mut Vec<u8>, n: i32) {
    put_unsigned(out, u64::from(zigzag32(n)));
}

/// Appends `n` as a varlong.
#[inline]
pub(crate) fn put_varlong(out: &mut Vec<u8>, n: i64) {
    put_unsigned(out, zigzag64(n));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cursor::Cursor;

    fn enc32(n: i32) -> Vec<u8> {
        let mut v = Vec::new();
        put_varint(&mut v, n);
        assert_eq!(v.len(), varint_size(n));
        v
    }

    fn enc64(n: i64) -> Vec<u8> {
        let mut v = Vec::new();
        put_varlong(&mut v, n);
        assert_eq!(v.len(), varlong_size(n));
        v
    }

    #[test]
    fn known_encodings() {
        // Values from Kafka's ByteUtilsTest / the protocol guide.
        assert_eq!(enc32(0), [0x00]);
        assert_eq!(enc32(-1), [0x01]);
        assert_eq!(enc32(1), [0x02]);
        assert_eq!(enc32(-2), [0x03]);
        assert_eq!(enc32(63), [0x7e]);
        assert_eq!(enc32(-64), [0x7f]);
        assert_eq!(enc32(64), [0x80, 0x01]);
        assert_eq!(enc32(300), [0xd8, 0x04]);
        assert_eq!(enc32(i32::MAX), [0xfe, 0xff, 0xff, 0xff, 0x0f]);
        assert_eq!(enc32(i32::MIN), [0xff, 0xff, 0xff, 0xff, 0x0f]);
        assert_eq!(enc64(i64::MIN).len(), 10);
        assert_eq!(enc64(i64::MAX).len(), 10);
        assert_eq!(enc64(-123), enc32(-123));
    }

    #[test]
    fn round_trip_edges() {
        for n in [0, 1, -1, 63, -64, 64, -65, 8191, 8192, i32::MAX, i32::MIN] {
            let b = enc32(n);
            let mut c = Cursor::new(&b);
            assert_eq!(c.varint().unwrap(), n);
            assert!(c.is_empty());
        }
        for n in [0, -1, 1 << 40, -(1 << 40), i64::MAX, i64::MIN] {
            let b = enc64(n);
            let mut c = Cursor::new(&b);
            assert_eq!(c.varlong().unwrap(), n);
            assert!(c.is_empty());
        }
    }

    proptest::proptest! {
        #[test]
        fn prop_varint_round_trip(n: i32) {
            let b = enc32(n);
            let mut c = Cursor::new(&b);
            proptest::prop_assert_eq!(c.varint().unwrap(), n);
        }

        #[test]
        fn prop_varlong_round_trip(n: i64) {
            let b = enc64(n);
            let mut c = Cursor::new(&b);
            proptest::prop_assert_eq!(c.varlong().unwrap(), n);
        }
    }
}
