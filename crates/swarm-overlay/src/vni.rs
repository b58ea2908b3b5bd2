//! VXLAN network identifiers: handed out from 4096 up, released when a
//! network is removed.

use std::collections::BTreeSet;
use std::ops::RangeInclusive;

/// The largest VNI (24 bits).
pub const MAX_VNI: u32 = (1 << 24) - 1;

/// A VNI refusal. Nothing was allocated when one is returned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VniError {
    /// The requested VNI belongs to another network.
    #[error("VXLAN id {0} is already in use by another network")]
    InUse(u32),
    /// The VNI is outside the allocator's range.
    #[error("VXLAN id {vni} is outside the range {first}..={last}")]
    OutOfRange {
        /// The VNI.
        vni: u32,
        /// First of the range.
        first: u32,
        /// Last of the range.
        last: u32,
    },
    /// Every VNI of the range is in use.
    #[error("no free VXLAN id left in {first}..={last}")]
    Exhausted {
        /// First of the range.
        first: u32,
        /// Last of the range.
        last: u32,
    },
    /// The range itself is unusable.
    #[error("VXLAN id range {first}..={last} is empty or beyond 24 bits")]
    BadRange {
        /// First of the range.
        first: u32,
        /// Last of the range.
        last: u32,
    },
}

/// VNIs in use, as plain data to persist.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct VniState {
    /// The VNIs in use.
    pub used: BTreeSet<u32>,
}

/// Hands out the lowest free VNI of a range (4096..=2^24-1 by default).
#[derive(Debug, Clone)]
pub struct VniAllocator {
    range: RangeInclusive<u32>,
    used: BTreeSet<u32>,
}

impl Default for VniAllocator {
    fn default() -> Self {
        VniAllocator {
            range: swarm_api::defaults::VXLAN_FIRST_VNI..=MAX_VNI,
            used: BTreeSet::new(),
        }
    }
}

impl VniAllocator {
    /// An allocator over `first..=last` (at least 1, at most 2^24-1).
    pub fn new(first: u32, last: u32) -> Result<VniAllocator, VniError> {
        if first == 0 || first > last || last > MAX_VNI {
            return Err(VniError::BadRange { first, last });
        }
        Ok(VniAllocator {
            range: first..=last,
            used: BTreeSet::new(),
        })
    }

    /// An allocator resuming from a persisted state; every VNI must be in
    /// range.
    pub fn restore(mut self, state: &VniState) -> Result<VniAllocator, VniError> {
        for vni in &state.used {
            self.mark(*vni)?;
        }
        Ok(self)
    }

    /// The state to persist.
    pub fn state(&self) -> VniState {
        VniState {
            used: self.used.clone(),
        }
    }

    fn check_range(&self, vni: u32) -> Result<(), VniError> {
        if self.range.contains(&vni) {
            Ok(())
        } else {
            Err(VniError::OutOfRange {
                vni,
                first: *self.range.start(),
                last: *self.range.end(),
            })
        }
    }

    /// Allocates `requested`, or the lowest free VNI.
    pub fn allocate(&mut self, requested: Option<u32>) -> Result<u32, VniError> {
        if let Some(vni) = requested {
            self.check_range(vni)?;
            if !self.used.insert(vni) {
                return Err(VniError::InUse(vni));
            }
            return Ok(vni);
        }
        // The lowest gap: walk the used set in order from the range start.
        let mut cand = *self.range.start();
        for &u in self.used.range(self.range.clone()) {
            if u != cand {
                break;
            }
            if cand == *self.range.end() {
                return Err(VniError::Exhausted {
                    first: *self.range.start(),
                    last: *self.range.end(),
                });
            }
            cand += 1;
        }
        self.used.insert(cand);
        Ok(cand)
    }

    /// Records a VNI allocated before (restoring from the store). Marking a
    /// VNI twice is refused as [`VniError::InUse`].
    pub fn mark(&mut self, vni: u32) -> Result<(), VniError> {
        self.allocate(Some(vni)).map(|_| ())
    }

    /// Releases a VNI; false if it was not in use.
    pub fn release(&mut self, vni: u32) -> bool {
        self.used.remove(&vni)
    }

    /// True when the VNI is in use.
    pub fn is_used(&self, vni: u32) -> bool {
        self.used.contains(&vni)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lowest_free_from_4096() {
        let mut a = VniAllocator::default();
        assert_eq!(a.allocate(None).unwrap(), 4096);
        assert_eq!(a.allocate(None).unwrap(), 4097);
        assert_eq!(a.allocate(Some(5000)).unwrap(), 5000);
        assert_eq!(a.allocate(Some(5000)), Err(VniError::InUse(5000)));
        assert!(a.release(4096));
        assert_eq!(a.allocate(None).unwrap(), 4096);
        assert_eq!(a.allocate(None).unwrap(), 4098);
        assert!(matches!(
            a.allocate(Some(1)),
            Err(VniError::OutOfRange { .. })
        ));
        assert!(matches!(
            a.allocate(Some(MAX_VNI + 1)),
            Err(VniError::OutOfRange { .. })
        ));
    }

    #[test]
    fn exhaustion_and_restore() {
        let mut a = VniAllocator::new(10, 12).unwrap();
        for want in 10..=12 {
            assert_eq!(a.allocate(None).unwrap(), want);
        }
        assert_eq!(
            a.allocate(None),
            Err(VniError::Exhausted {
                first: 10,
                last: 12
            })
        );
        a.release(11);
        let b = VniAllocator::new(10, 12)
            .unwrap()
            .restore(&a.state())
            .unwrap();
        assert!(b.is_used(10) && !b.is_used(11) && b.is_used(12));
        assert!(VniAllocator::new(0, 5).is_err());
        assert!(VniAllocator::new(5, 4).is_err());
        assert!(VniAllocator::new(5, MAX_VNI + 1).is_err());
        let bad = VniState { used: [3].into() };
        assert!(VniAllocator::new(10, 12).unwrap().restore(&bad).is_err());
    }
}
