//! [`StartOffset`]: the `--offset` argument of `cairn consume`.

use std::fmt;
use std::str::FromStr;

/// Where consumption starts in each partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartOffset {
    /// The first retained offset.
    Earliest,
    /// The high watermark: only records produced from now on.
    Latest,
    /// A given offset (clamped to the partition's retained range by the
    /// server's `OFFSET_OUT_OF_RANGE` handling in the consumer).
    Offset(u64),
}

impl FromStr for StartOffset {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "earliest" | "beginning" => Ok(StartOffset::Earliest),
            "latest" | "end" => Ok(StartOffset::Latest),
            other => other
                .parse::<u64>()
                .map(StartOffset::Offset)
                .map_err(|_| format!("expected earliest, latest or an offset >= 0, got {s:?}")),
        }
    }
}

impl fmt::Display for StartOffset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartOffset::Earliest => f.write_str("earliest"),
            StartOffset::Latest => f.write_str("latest"),
            StartOffset::Offset(n) => write!(f, "{n}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses() {
        assert_eq!("earliest".parse(), Ok(StartOffset::Earliest));
        assert_eq!(" Latest ".parse(), Ok(StartOffset::Latest));
        assert_eq!("beginning".parse(), Ok(StartOffset::Earliest));
        assert_eq!("0".parse(), Ok(StartOffset::Offset(0)));
        assert_eq!(
            "18446744073709551615".parse(),
            Ok(StartOffset::Offset(u64::MAX))
        );
        assert!("-1".parse::<StartOffset>().is_err());
        assert!("1.5".parse::<StartOffset>().is_err());
        assert!("".parse::<StartOffset>().is_err());
    }

    #[test]
    fn displays_round_trip() {
        for s in [
            StartOffset::Earliest,
            StartOffset::Latest,
            StartOffset::Offset(7),
        ] {
            assert_eq!(s.to_string().parse(), Ok(s));
        }
    }
}
