//! The checkpoint written in pieces after commits keeps up with the log: it trails the log by
//! at most about one checkpoint depth, however the running batch (round) is finished — by its
//! pace, by a backup's begin, by a backup's header record — so the log a crash replays stays
//! bounded and circular logging goes on deleting.

use std::path::Path;

use jetdb::{BackupFlags, CommitMode, Instance, InstanceParams, Lgpos, MemVfs, Session, Table};

mod support;

use support::{base_params, env};

const LOG_FILE: u64 = 128 * 1024;
const DEPTH: u64 = 256 * 1024;
/// A durable commit of one small put writes one log segment; a round is frozen a commit
/// past half the depth and finished a commit past another half; a log roll (a backup's
/// begin) skips what is left of a log file, which counts as growth.
const SLACK: u64 = 4 * 4096 + LOG_FILE;

fn params() -> InstanceParams {
    InstanceParams {
        log_file_size: LOG_FILE,
        checkpoint_depth: DEPTH,
        // Large: no cache pressure finishes a round early.
        cache_size: 64 * 1024 * 1024,
        create_path_if_not_exist: true,
        circular_logging: true,
        ..base_params("inst")
    }
}

fn at(p: Lgpos) -> u64 {
    u64::from(p.generation) * LOG_FILE + u64::from(p.offset)
}

/// How far the checkpoint trails the log.
fn lag(instance: &Instance) -> u64 {
    let pos = instance.log_position().unwrap().unwrap();
    let chk = instance.checkpoint_position().unwrap().unwrap();
    at(pos) - at(chk)
}

fn key(i: u32) -> Vec<u8> {
    format!("k{:06}", i.wrapping_mul(2_654_435_761) % 50_000).into_bytes()
}

struct World {
    instance: Instance,
    session: Session,
    table: Table,
    next: u32,
}

impl World {
    fn new(vfs: &MemVfs) -> World {
        let instance = Instance::new(env(vfs.clone()), params());
        instance.init().unwrap();
        let mut session = instance.begin_session().unwrap();
        let table = session.create_table("t").unwrap();
        // Scattered keys over many pages, so every round has many pieces.
        session.begin_transaction().unwrap();
        for i in 0..6_000 {
            session.put(table, &key(i), &[7; 120]).unwrap();
        }
        session.commit_transaction(CommitMode::Lazy).unwrap();
        instance.checkpoint().unwrap();
        World {
            instance,
            session,
            table,
            next: 6_000,
        }
    }

    /// One durable commit of one put.
    fn commit(&mut self) {
        self.session.begin_transaction().unwrap();
        self.session
            .put(self.table, &key(self.next), &[9; 120])
            .unwrap();
        self.session
            .commit_transaction(CommitMode::Durable)
            .unwrap();
        self.next += 1;
    }

    /// Commits until a round has written some of its pieces, but not all.
    fn until_mid_round(&mut self) {
        for _ in 0..10_000 {
            let before = self.instance.stats().unwrap();
            self.commit();
            let after = self.instance.stats().unwrap();
            if after.checkpoints == before.checkpoints
                && after.database_pages_written > before.database_pages_written
            {
                return;
            }
        }
        panic!("no round ever ran");
    }

    /// Commits `bytes` of log, checking after each commit that the checkpoint keeps up.
    fn commits_keep_up(&mut self, bytes: u64, what: &str) {
        let start = at(self.instance.log_position().unwrap().unwrap());
        let checkpoints = self.instance.stats().unwrap().checkpoints;
        while at(self.instance.log_position().unwrap().unwrap()) < start + bytes {
            self.commit();
            let lag = lag(&self.instance);
            assert!(
                lag <= DEPTH + SLACK,
                "{what}: the checkpoint trails the log by {lag} bytes (depth {DEPTH}): it stopped advancing"
            );
        }
        let moved = self.instance.stats().unwrap().checkpoints - checkpoints;
        assert!(
            moved + 1 >= bytes / DEPTH,
            "{what}: {moved} checkpoints over {bytes} bytes of log"
        );
    }
}

#[test]
fn the_checkpoint_keeps_up_with_the_log() {
    let vfs = MemVfs::new();
    let mut w = World::new(&vfs);
    w.commits_keep_up(8 * DEPTH, "commits alone");
    let stats = w.instance.stats().unwrap();
    assert!(stats.logs_deleted > 0, "{stats:?}");
    drop(w.session);
    w.instance.term().unwrap();
}

#[test]
fn a_round_finished_by_a_backup_begin_still_moves_the_checkpoint() {
    let vfs = MemVfs::new();
    let mut w = World::new(&vfs);
    for i in 0..3 {
        w.until_mid_round();
        // The begin finishes the round (the file must hold one whole state).
        let dir = format!("bk{i}");
        let mut job = w
            .instance
            .begin_backup(Some(Path::new(&dir)), BackupFlags::NONE, None)
            .unwrap();
        while job.step().unwrap() {}
        job.finish().unwrap();
        w.commits_keep_up(3 * DEPTH, "after a backup begun mid-round");
    }
    drop(w.session);
    w.instance.term().unwrap();
}

#[test]
fn a_round_finished_by_a_backup_record_still_moves_the_checkpoint() {
    let vfs = MemVfs::new();
    let mut w = World::new(&vfs);
    for i in 0..3 {
        // Begun between rounds, finished mid-round: its header record finishes the round.
        w.instance.checkpoint().unwrap();
        let dir = format!("bk{i}");
        let mut job = w
            .instance
            .begin_backup(Some(Path::new(&dir)), BackupFlags::NONE, None)
            .unwrap();
        while job.step().unwrap() {}
        w.until_mid_round();
        job.finish().unwrap();
        w.commits_keep_up(3 * DEPTH, "after a backup finished mid-round");
    }
    drop(w.session);
    w.instance.term().unwrap();
}

impl World {
    /// One lazy commit of `puts` puts of 600-byte values, about 650 bytes of log each (600
    /// of them: more than the whole depth).
    fn large_commit(&mut self, round: u32, puts: u32) {
        self.session.begin_transaction().unwrap();
        for i in 0..puts {
            let k = key(100_000 + round * 1_000 + i);
            self.session
                .put(self.table, &k, &[round as u8; 600])
                .unwrap();
        }
        self.session.commit_transaction(CommitMode::Lazy).unwrap();
    }
}

#[test]
fn a_commit_past_the_whole_depth_between_rounds_writes_its_batch_at_once() {
    // No pace can be kept: the batch frozen after it goes in before the commit returns, and
    // the checkpoint moves to the log's end.
    let vfs = MemVfs::new();
    let mut w = World::new(&vfs);
    for round in 0..3u32 {
        w.instance.checkpoint().unwrap();
        w.large_commit(round, 600);
        let lag = lag(&w.instance);
        assert!(
            lag <= SLACK,
            "after a commit of more than the depth the checkpoint trails the log by {lag} bytes"
        );
        w.commits_keep_up(2 * DEPTH, "after a commit past the depth");
    }
    drop(w.session);
    w.instance.term().unwrap();
}

#[test]
fn a_commit_past_the_whole_depth_during_a_round_leaves_the_checkpoint_within_the_depth() {
    // A round is being written when a commit larger than the whole depth arrives: the round
    // is finished at once (the log outran its pace), and its checkpoint is the round's mark,
    // from before that commit. The commit's own changes must then go in too (as between
    // rounds), or the checkpoint trails the log by more than the depth until some later
    // commit — for as long as the instance stays idle.
    let vfs = MemVfs::new();
    let mut w = World::new(&vfs);
    for round in 0..3u32 {
        w.until_mid_round();
        w.large_commit(round, 600);
        let lag = lag(&w.instance);
        assert!(
            lag <= DEPTH,
            "after a commit of more than the depth, made while a round ran, the checkpoint trails the log by {lag} bytes (depth {DEPTH})"
        );
        w.commits_keep_up(2 * DEPTH, "after a commit past the depth");
    }
    drop(w.session);
    w.instance.term().unwrap();
}

#[test]
fn a_commit_past_half_the_depth_writes_the_batch_it_begins() {
    // It alone changed a batch's worth of pages: it pays for writing them, and the small
    // commits after it carry no share of a backlog they did not make.
    let vfs = MemVfs::new();
    let mut w = World::new(&vfs);
    for round in 0..3u32 {
        w.instance.checkpoint().unwrap();
        let before = at(w.instance.log_position().unwrap().unwrap());
        w.large_commit(round, 250);
        let grown = at(w.instance.log_position().unwrap().unwrap()) - before;
        assert!(
            grown > DEPTH / 2 && grown < DEPTH,
            "the commit should log between half the depth and the depth: {grown} bytes"
        );
        let lag = lag(&w.instance);
        assert!(
            lag <= SLACK,
            "after a commit of {grown} bytes of log the checkpoint trails the log by {lag} bytes"
        );
        let written = w.instance.stats().unwrap().database_pages_written;
        w.commit();
        assert_eq!(
            w.instance.stats().unwrap().database_pages_written,
            written,
            "the small commit after it wrote pages of a batch it did not make"
        );
        w.commits_keep_up(2 * DEPTH, "after a commit past half the depth");
    }
    drop(w.session);
    w.instance.term().unwrap();
}

#[test]
fn a_round_of_fresh_pages_is_paced_over_half_the_depth() {
    // Ascending keys with large values: each round is mostly pages past the file's durable
    // end, which go into place once, not through the doublewrite file. Counted as the pieces
    // they are, the round is spread over the commits of half a depth, as any round is:
    // counted twice, or not counted as done, the first commits write it all.
    let vfs = MemVfs::new();
    let instance = Instance::new(env(vfs.clone()), params());
    instance.init().unwrap();
    let mut session = instance.begin_session().unwrap();
    let table = session.create_table("t").unwrap();
    let window = DEPTH / 2;
    let mut checkpoints = instance.stats().unwrap().checkpoints;
    let mut finished = 0;
    let mut next = 0u32;
    while finished < 4 {
        assert!(next < 200_000, "no round finished");
        session.begin_transaction().unwrap();
        for _ in 0..3 {
            let k = format!("a{next:08}");
            session.put(table, k.as_bytes(), &[5; 1000]).unwrap();
            next += 1;
        }
        session.commit_transaction(CommitMode::Durable).unwrap();
        let now = instance.stats().unwrap().checkpoints;
        if now > checkpoints {
            checkpoints = now;
            // The checkpoint moved to where the round began: the log grown since is the
            // span of commits that wrote it.
            let grown = lag(&instance);
            assert!(
                grown >= window * 3 / 4,
                "a round finished {grown} bytes of log after it began (half the depth is {window}): its pieces were miscounted"
            );
            finished += 1;
        }
    }
    drop(session);
    instance.term().unwrap();
}
