//! The C ABI's versioned options structs (`ctstack_pyramid_options`,
//! `ctstack_crop_options`, `ctstack_zarr_options`): read from a caller and
//! filled with defaults by one pair of functions.
//!
//! Such a struct starts with `size_t struct_size` and only ever grows at its
//! end. A caller compiled against an older, shorter version says so in
//! `struct_size`: the library then reads and writes only that prefix, and the
//! fields the caller does not know keep their defaults.

use super::boundary::{Failure, invalid};

/// A versioned options struct of the C ABI.
///
/// # Safety
/// Implementors are `#[repr(C)]`, their first field is `struct_size: usize`,
/// fields are only ever appended, and every field is a C integer, float or
/// raw pointer (no Rust type with invalid bit patterns), so that any prefix
/// of whole fields copied over the defaults gives a valid value.
pub(crate) unsafe trait Versioned: Sized {
    /// The C function that fills it with defaults, for messages.
    const INIT: &'static str;

    /// The defaults, `struct_size` set to this library's size.
    fn defaults() -> Self;
}

/// The caller's options at `ptr` (fields past its `struct_size` keep their
/// defaults), or `None` for NULL. `name` is the argument's name, for messages.
///
/// # Safety
/// `ptr` is NULL or points to a `T` of at least its own `struct_size` bytes.
pub(crate) unsafe fn read<T: Versioned>(ptr: *const T, name: &str) -> Result<Option<T>, Failure> {
    if ptr.is_null() {
        return Ok(None);
    }
    // SAFETY: non-NULL; `struct_size`, a usize, is the first field of every
    // version (the `Versioned` contract), so it is there whatever the version.
    let size = unsafe { ptr.cast::<usize>().read_unaligned() };
    if size < std::mem::size_of::<usize>() {
        return Err(invalid(format!(
            "{name}->struct_size is {size}: set it with {}",
            T::INIT
        )));
    }
    let mut options = T::defaults();
    let n = size.min(std::mem::size_of::<T>());
    // SAFETY: the caller's struct holds `size >= n` bytes of valid field values
    // (a C struct of the same layout, prefix-compatible), `options` is a
    // distinct local of at least `n` bytes, and any bytes of whole fields are a
    // valid `T` (the `Versioned` contract).
    unsafe {
        std::ptr::copy_nonoverlapping(ptr.cast::<u8>(), (&raw mut options).cast::<u8>(), n);
    }
    Ok(Some(options))
}

/// Fills `*out` with the defaults, as far as the caller's `size` (its
/// `sizeof`) reaches, `struct_size` set to the smaller of `size` and this
/// library's struct. NULL, or a `size` too small to hold `struct_size`, is a
/// no-op.
///
/// # Safety
/// `out` is NULL or writable for `size` bytes.
pub(crate) unsafe fn init<T: Versioned>(out: *mut T, size: usize) {
    if out.is_null() || size < std::mem::size_of::<usize>() {
        return;
    }
    let mut defaults = T::defaults();
    let n = size.min(std::mem::size_of::<T>());
    // SAFETY: `struct_size` is the first field (the `Versioned` contract), and
    // `defaults` is a local `T`.
    unsafe { (&raw mut defaults).cast::<usize>().write(n) };
    // SAFETY: `out` is writable for `size >= n` bytes per the contract,
    // `defaults` is a distinct local of at least `n` bytes, and every prefix
    // of the struct holds whole, valid fields for a C caller of that version.
    unsafe {
        std::ptr::copy_nonoverlapping((&raw const defaults).cast::<u8>(), out.cast::<u8>(), n);
    }
}
