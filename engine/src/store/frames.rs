//! The page cache's frames: where a cached page's bytes live, and how its number finds them.
//!
//! Every page access of every operation looks its page up, and on a cache larger than the
//! CPU's caches each lookup was a memory wait of its own before the page's. So:
//!
//! - A page number finds its frame through a two-level table of frame numbers (blocks of
//!   1,024 page numbers, each allocated when a page in it is first cached): four bytes a page,
//!   nothing hashed. For the 62,000 pages of `bench core`'s 240 MiB file the table is 250 KiB
//!   and stays in the CPU's L2 cache, where a hash table of as many frames (over 2 MiB, its
//!   control bytes apart from its entries) did not.
//! - A frame's bytes lie at a place computed from its number, in arenas of 256 KiB: no
//!   record of the frame is read to find them. Arenas are ordinary heap allocations, so a
//!   large commit's cache grows into the memory its write set gives back as it is applied.
//!   (Arenas of 4 MiB mapped apart and advised for transparent huge pages left the bulk load's
//!   peak 200 MiB higher, and gained nothing measurable over the table and the arenas: the
//!   random gets of `bench core` went from 1.42-1.70 s to 1.18-1.36 s either way.)
//!
//! A frame is bound to a page ([`Frames::bind`]) once its bytes are filled; until then (a read
//! that failed, say) it goes back unbound ([`Frames::discard`]). Frames are reused; whole arenas
//! go back when the pager trims a cache that grew past its size ([`Frames::shrink`]).

use crate::store::page::Pgno;

/// Page numbers per block of the table.
const BLOCK: usize = 1024;
/// The bytes of a full arena.
const ARENA_BYTES: usize = 256 << 10;
/// A table entry naming no frame.
const NONE: u32 = u32::MAX;

/// A frame, by number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FrameId(u32);

/// What the pager keeps of a frame besides its bytes.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Slot {
    /// The page it holds, while bound.
    pub(crate) pgno: Pgno,
    /// Changed since the last batch (and listed in `Pager::dirty`).
    pub(crate) dirty: bool,
    /// Part of the batch being written, unchanged since it began: not to be evicted, and
    /// copied aside before it is changed.
    pub(crate) frozen: bool,
    /// The pager's tick at its last use.
    pub(crate) used: u64,
    bound: bool,
}

/// The cache's frames and the table from page numbers to them.
pub(crate) struct Frames {
    page_size: usize,
    /// Frames per arena.
    per_arena: usize,
    table: Vec<Option<Box<[u32]>>>,
    slots: Vec<Slot>,
    arenas: Vec<Box<[u8]>>,
    /// Unbound frames, to reuse.
    free: Vec<u32>,
    /// Bound frames.
    len: usize,
}

impl Frames {
    /// Frames of `page_size` bytes for a cache of about `pages` pages: a small cache gets
    /// arenas of its size, a large one arenas of 256 KiB (of one page, if pages are larger).
    pub(crate) fn new(page_size: usize, pages: usize) -> Frames {
        assert!(page_size > 0);
        Frames {
            page_size,
            per_arena: pages.clamp(1, (ARENA_BYTES / page_size).max(1)),
            table: Vec::new(),
            slots: Vec::new(),
            arenas: Vec::new(),
            free: Vec::new(),
            len: 0,
        }
    }

    /// How many pages the frames hold.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The frame holding page `pgno`, if any.
    #[inline]
    pub(crate) fn find(&self, pgno: Pgno) -> Option<FrameId> {
        let pgno = pgno as usize;
        let block = self.table.get(pgno / BLOCK)?.as_deref()?;
        let frame = block[pgno % BLOCK];
        (frame != NONE).then_some(FrameId(frame))
    }

    fn place(&self, frame: FrameId) -> (usize, usize) {
        let n = frame.0 as usize;
        (n / self.per_arena, (n % self.per_arena) * self.page_size)
    }

    /// The bytes of `frame`.
    #[inline]
    pub(crate) fn bytes(&self, frame: FrameId) -> &[u8] {
        let (arena, at) = self.place(frame);
        &self.arenas[arena][at..at + self.page_size]
    }

    /// The bytes of `frame`, to change.
    #[inline]
    pub(crate) fn bytes_mut(&mut self, frame: FrameId) -> &mut [u8] {
        let (arena, at) = self.place(frame);
        let page_size = self.page_size;
        &mut self.arenas[arena][at..at + page_size]
    }

    /// What the pager keeps of `frame`.
    pub(crate) fn slot(&self, frame: FrameId) -> &Slot {
        &self.slots[frame.0 as usize]
    }

    /// What the pager keeps of `frame`, to change.
    pub(crate) fn slot_mut(&mut self, frame: FrameId) -> &mut Slot {
        &mut self.slots[frame.0 as usize]
    }

    /// An unbound frame to fill, holding whatever it held last.
    pub(crate) fn vacant(&mut self) -> FrameId {
        if let Some(n) = self.free.pop() {
            return FrameId(n);
        }
        let n = self.slots.len();
        if n == self.arenas.len() * self.per_arena {
            self.arenas
                .push(vec![0u8; self.per_arena * self.page_size].into_boxed_slice());
        }
        let n = u32::try_from(n).expect("fewer than 2^32 frames");
        assert_ne!(n, NONE, "fewer than 2^32 - 1 frames");
        self.slots.push(Slot::default());
        FrameId(n)
    }

    /// Binds unbound `frame`, whose bytes are filled, to page `pgno`, which no frame holds:
    /// changed (`dirty`) or as the file holds it, last used at tick `used`.
    pub(crate) fn bind(&mut self, frame: FrameId, pgno: Pgno, dirty: bool, used: u64) {
        assert!(
            !self.slots[frame.0 as usize].bound,
            "a frame holds one page"
        );
        let at = pgno as usize;
        if self.table.len() <= at / BLOCK {
            self.table.resize_with(at / BLOCK + 1, || None);
        }
        let block = self.table[at / BLOCK].get_or_insert_with(|| vec![NONE; BLOCK].into());
        assert_eq!(block[at % BLOCK], NONE, "a page is in one frame");
        block[at % BLOCK] = frame.0;
        self.slots[frame.0 as usize] = Slot {
            pgno,
            dirty,
            frozen: false,
            used,
            bound: true,
        };
        self.len += 1;
    }

    /// Returns unbound `frame`, unfilled or no longer wanted.
    pub(crate) fn discard(&mut self, frame: FrameId) {
        // (A frame discarded twice would be handed out twice: `bind` refuses the second.)
        debug_assert!(!self.slots[frame.0 as usize].bound);
        self.free.push(frame.0);
    }

    /// Drops page `pgno` from the cache; returns whether it was cached.
    pub(crate) fn remove(&mut self, pgno: Pgno) -> bool {
        let Some(frame) = self.find(pgno) else {
            return false;
        };
        let at = pgno as usize;
        self.table[at / BLOCK].as_mut().expect("found")[at % BLOCK] = NONE;
        self.slots[frame.0 as usize].bound = false;
        self.len -= 1;
        self.discard(frame);
        true
    }

    /// How many frames there are, bound or free: the memory the cache holds.
    pub(crate) fn allocated(&self) -> usize {
        self.slots.len()
    }

    /// Gives back the arenas past those that `keep` frames (or the pages cached, if more)
    /// need, and one more: the pages in them move to free frames below. A cache that grew
    /// past its size (changed pages waiting for a batch) is then about its size again in
    /// memory too; the arena to spare keeps a cache that sits at its size from taking and
    /// giving back an arena at every eviction. Frame numbers held across this are stale;
    /// pages are found by number again.
    pub(crate) fn shrink(&mut self, keep: usize) {
        let arenas = keep.max(self.len).div_ceil(self.per_arena) + 1;
        if arenas >= self.arenas.len() {
            return;
        }
        let end = arenas * self.per_arena;
        let mut below: Vec<u32> = self
            .free
            .iter()
            .copied()
            .filter(|&n| (n as usize) < end)
            .collect();
        for n in end..self.slots.len() {
            let slot = self.slots[n];
            if !slot.bound {
                continue;
            }
            let to = below.pop().expect("the pages cached fit the arenas kept");
            let (from_arena, from_at) = self.place(FrameId(n as u32));
            let (to_arena, to_at) = self.place(FrameId(to));
            debug_assert!(to_arena < from_arena);
            let (kept, given) = self.arenas.split_at_mut(from_arena);
            kept[to_arena][to_at..to_at + self.page_size]
                .copy_from_slice(&given[0][from_at..from_at + self.page_size]);
            self.slots[to as usize] = slot;
            let at = slot.pgno as usize;
            self.table[at / BLOCK].as_mut().expect("bound")[at % BLOCK] = to;
        }
        self.free = below;
        self.slots.truncate(end);
        self.arenas.truncate(arenas);
    }

    /// Every cached page and its slot, in frame order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (Pgno, &Slot)> {
        self.slots
            .iter()
            .filter(|slot| slot.bound)
            .map(|slot| (slot.pgno, slot))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A byte that tells the test's pages apart.
    fn mark(pgno: Pgno) -> u8 {
        (pgno % 251) as u8
    }

    fn filled(frames: &mut Frames, pgno: Pgno) -> FrameId {
        let frame = frames.vacant();
        frames.bytes_mut(frame).fill(mark(pgno));
        frames.bind(frame, pgno, false, 0);
        frame
    }

    #[test]
    fn pages_find_their_own_bytes_across_arenas_and_blocks() {
        // Three frames an arena; page numbers in three blocks of the table.
        let mut frames = Frames::new(64, 3);
        let pages = [5, 1023, 1024, 7, 5000, 2, 3071];
        for &p in &pages {
            filled(&mut frames, p);
        }
        assert_eq!(frames.len(), pages.len());
        assert_eq!(frames.arenas.len(), 3);
        for &p in &pages {
            let frame = frames.find(p).expect("cached");
            assert!(
                frames.bytes(frame).iter().all(|&b| b == mark(p)),
                "page {p}"
            );
            assert_eq!(frames.bytes(frame).len(), 64);
            assert_eq!(frames.slot(frame).pgno, p);
        }
        for p in [0, 6, 1022, 1025, 4999, 3072, 100_000] {
            assert_eq!(frames.find(p), None, "page {p}");
        }
        let mut listed: Vec<Pgno> = frames.iter().map(|(p, _)| p).collect();
        listed.sort_unstable();
        let mut expected = pages.to_vec();
        expected.sort_unstable();
        assert_eq!(listed, expected);
    }

    #[test]
    fn the_table_grows_to_the_block_of_the_highest_page_and_no_further() {
        // The first page cached lies in the third block, near its start: the table grows to
        // three blocks (one allocated), not to the page's offset within its block, nor past.
        let mut frames = Frames::new(64, 4);
        filled(&mut frames, 2 * BLOCK as Pgno + 1);
        assert_eq!(frames.table.len(), 3);
        filled(&mut frames, 5000);
        assert_eq!(frames.table.len(), 5000 / BLOCK + 1);
        filled(&mut frames, 10);
        assert_eq!(
            frames.table.len(),
            5000 / BLOCK + 1,
            "a lower page grows nothing"
        );
        assert_eq!(frames.table.iter().filter(|b| b.is_some()).count(), 3);
        for p in [2 * BLOCK as Pgno + 1, 5000, 10] {
            let frame = frames.find(p).expect("cached");
            assert!(
                frames.bytes(frame).iter().all(|&b| b == mark(p)),
                "page {p}"
            );
        }
    }

    #[test]
    fn a_removed_page_frees_its_frame_for_the_next() {
        let mut frames = Frames::new(64, 2);
        let a = filled(&mut frames, 10);
        filled(&mut frames, 11);
        assert!(frames.remove(10));
        assert!(!frames.remove(10));
        assert_eq!(frames.find(10), None);
        assert_eq!(frames.len(), 1);
        assert_eq!(frames.iter().map(|(p, _)| p).collect::<Vec<_>>(), [11]);
        // The next page takes the freed frame (no new arena), and finds its own bytes.
        assert_eq!(filled(&mut frames, 12), a);
        assert_eq!(frames.arenas.len(), 1);
        assert!(
            frames
                .bytes(frames.find(12).unwrap())
                .iter()
                .all(|&b| b == mark(12))
        );
        assert!(
            frames
                .bytes(frames.find(11).unwrap())
                .iter()
                .all(|&b| b == mark(11))
        );
        // A frame discarded unbound is reused too.
        let spare = frames.vacant();
        frames.discard(spare);
        assert_eq!(frames.vacant(), spare);
    }

    #[test]
    fn a_slot_keeps_what_the_pager_sets_until_its_page_goes() {
        let mut frames = Frames::new(64, 4);
        let frame = frames.vacant();
        frames.bind(frame, 3, true, 9);
        assert!(frames.slot(frame).dirty && frames.slot(frame).used == 9);
        frames.slot_mut(frame).frozen = true;
        assert!(frames.iter().all(|(p, s)| p == 3 && s.frozen && s.dirty));
    }

    #[test]
    fn shrinking_gives_back_whole_arenas_and_keeps_every_page() {
        // Four frames an arena, 24 pages cached (six arenas), then all but five removed.
        let mut frames = Frames::new(64, 4);
        for p in 0..24 {
            filled(&mut frames, p * 3);
        }
        let kept = [0, 21, 39, 60, 69];
        for p in 0..24 {
            if !kept.contains(&(p * 3)) {
                assert!(frames.remove(p * 3));
            }
        }
        frames.shrink(6);
        // Six frames to keep take two arenas, and one to spare; the pages of the others
        // moved into them.
        assert_eq!(frames.arenas.len(), 3);
        assert_eq!(frames.allocated(), 12);
        assert_eq!(frames.len(), kept.len());
        for &p in &kept {
            let frame = frames.find(p).expect("still cached");
            assert!((frame.0 as usize) < 12);
            assert_eq!(frames.slot(frame).pgno, p);
            assert!(
                frames.bytes(frame).iter().all(|&b| b == mark(p)),
                "page {p}"
            );
        }
        // The seven frames left free are handed out before any new arena.
        for p in 100..107 {
            filled(&mut frames, p);
        }
        assert_eq!(frames.allocated(), 12);
        filled(&mut frames, 107);
        assert_eq!(frames.arenas.len(), 4);
        // Never below the pages cached (13, in four arenas) and one to spare: nothing goes.
        frames.shrink(0);
        assert_eq!(frames.arenas.len(), 4);
    }

    #[test]
    #[should_panic(expected = "a page is in one frame")]
    fn a_page_bound_twice_is_a_broken_invariant() {
        let mut frames = Frames::new(64, 4);
        filled(&mut frames, 3);
        filled(&mut frames, 3);
    }

    #[test]
    fn arenas_are_the_cache_s_size_up_to_256_kib() {
        let mut large = Frames::new(4096, 1 << 18);
        filled(&mut large, 1);
        assert_eq!(large.arenas[0].len(), ARENA_BYTES);
        let mut small = Frames::new(4096, 16);
        filled(&mut small, 1);
        assert_eq!(small.arenas[0].len(), 16 * 4096);
        let mut huge_pages = Frames::new(1 << 20, 4);
        filled(&mut huge_pages, 1);
        assert_eq!(huge_pages.arenas[0].len(), 1 << 20);
    }
}
