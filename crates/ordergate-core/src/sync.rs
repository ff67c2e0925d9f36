//! The synchronisation primitives the lock-free code is written against:
//! `std` normally, [`loom`](https://docs.rs/loom)'s model-checked twins under
//! `cfg(loom)`, so [`crate::ring`] runs under loom unchanged.
//!
//! Only what the ring and the shared rate cells and nonce caches
//! ([`crate::limits`]) need is here. The one difference from `std` is
//! [`UnsafeCell`]: it is reached through `with` / `with_mut` closures (loom's
//! API), so that under loom every slot read and write is tracked and a read
//! racing a write is reported as a data race. Under `std` the closures inline
//! to a plain pointer access.
//!
//! Model tests run with (separate target dir, so the normal build is kept):
//!
//! ```text
//! CARGO_TARGET_DIR=target/loom RUSTFLAGS="--cfg loom" \
//!     cargo test --release -p ordergate-core --lib ring -- --test-threads=1
//! ```

#[cfg(loom)]
pub use loom::sync::Arc;
#[cfg(loom)]
pub use loom::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

#[cfg(not(loom))]
pub use std::sync::Arc;
#[cfg(not(loom))]
pub use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

#[cfg(loom)]
pub use loom::cell::UnsafeCell;

/// `std::cell::UnsafeCell` behind loom's closure API.
#[cfg(not(loom))]
#[derive(Debug)]
#[repr(transparent)]
pub struct UnsafeCell<T>(std::cell::UnsafeCell<T>);

#[cfg(not(loom))]
impl<T> UnsafeCell<T> {
    #[inline(always)]
    pub const fn new(value: T) -> UnsafeCell<T> {
        UnsafeCell(std::cell::UnsafeCell::new(value))
    }

    /// Calls `f` with a shared pointer to the contents. Dereferencing it is
    /// the caller's `unsafe`, with the usual aliasing obligations.
    #[inline(always)]
    pub fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
        f(self.0.get())
    }

    /// Calls `f` with a mutable pointer to the contents. Dereferencing it is
    /// the caller's `unsafe`, with the usual aliasing obligations.
    #[inline(always)]
    pub fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        f(self.0.get())
    }
}
