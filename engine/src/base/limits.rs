//! Every fixed limit of the engine, in one place, with the compile-time checks that tie them
//! together.

/// The smallest page size a database can be created with.
pub const PAGE_SIZE_MIN: usize = 4 * 1024;
/// The largest page size a database can be created with.
pub const PAGE_SIZE_MAX: usize = 32 * 1024;
/// The page size used unless the caller chooses another.
pub const PAGE_SIZE_DEFAULT: usize = 8 * 1024;
/// The longest key, in bytes.
pub const KEY_LEN_MAX: usize = 255;
/// The longest value, in bytes (values too large for a page are stored out of line).
pub const VALUE_LEN_MAX: usize = 1024 * 1024;
/// The longest table name, in bytes (ESE's `JET_cbNameMost`).
pub const TABLE_NAME_LEN_MAX: usize = 64;
/// The most pages a database may hold (page numbers are 32-bit; 0 means "none").
pub const PAGE_COUNT_MAX: u64 = u32::MAX as u64;
/// The default page cache size, in bytes.
pub const CACHE_SIZE_DEFAULT: usize = 64 * 1024 * 1024;
/// The smallest page cache, in pages: enough for the deepest descent plus a split on each level.
pub const CACHE_PAGES_MIN: usize = 64;

/// Whether `page_size` is one a database can be created with: a power of two in range.
pub const fn page_size_valid(page_size: usize) -> bool {
    page_size.is_power_of_two() && page_size >= PAGE_SIZE_MIN && page_size <= PAGE_SIZE_MAX
}

const _: () = assert!(page_size_valid(PAGE_SIZE_DEFAULT));
const _: () = assert!(page_size_valid(PAGE_SIZE_MIN));
const _: () = assert!(page_size_valid(PAGE_SIZE_MAX));
// Key lengths are stored in one byte.
const _: () = assert!(KEY_LEN_MAX <= u8::MAX as usize);
// Page offsets within a page fit in 16 bits, and inline value lengths too.
const _: () = assert!(PAGE_SIZE_MAX <= u16::MAX as usize + 1);
// Values lengths are stored in 32 bits.
const _: () = assert!(VALUE_LEN_MAX <= u32::MAX as usize);
