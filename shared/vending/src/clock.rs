//! The one wall clock every operation reads (injected through `Deps`). Production reads the
//! system clock; tests (feature `testing`) move it forward to cross expiries and grace periods
//! without sleeping.

use std::sync::atomic::{AtomicI64, Ordering};

use time::OffsetDateTime;

/// System time plus an offset (zero outside tests).
#[derive(Debug, Default)]
pub struct Clock {
    offset_seconds: AtomicI64,
}

impl Clock {
    /// Now, to the second.
    #[must_use]
    pub fn now(&self) -> OffsetDateTime {
        let now = OffsetDateTime::now_utc()
            + time::Duration::seconds(self.offset_seconds.load(Ordering::Relaxed));
        now.replace_nanosecond(0).unwrap_or(now)
    }

    /// Moves the clock forward by `seconds` (tests).
    #[cfg(any(test, feature = "testing"))]
    pub fn advance(&self, seconds: i64) {
        self.offset_seconds.fetch_add(seconds, Ordering::Relaxed);
    }
}
