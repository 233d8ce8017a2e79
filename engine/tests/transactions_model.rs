//! Transactions against a model of snapshot isolation: three sessions interleave puts,
//! deletes, reads, range scans, durable and lazy commits, rollbacks, checkpoints and crashes.
//! Every read must match the model's snapshot plus the transaction's own writes, every write
//! conflict must be the model's, and after a crash the database must hold a prefix of the
//! commits that includes every durable one.

use std::collections::BTreeMap;
use std::ops::Bound;

use jetdb::{CommitMode, ErrorKind, Instance, MemVfs, Session, Table};
use proptest::prelude::*;

mod support;

use support::{env_with, model_params, open_or_create_table};

type State = BTreeMap<Vec<u8>, Vec<u8>>;

#[derive(Clone, Debug)]
enum Op {
    Begin(usize),
    Put(usize, u8, u16),
    Delete(usize, u8),
    Get(usize, u8),
    Range(usize, u8, u8, bool),
    Commit(usize, bool),
    Rollback(usize),
    Checkpoint,
    Crash,
}

fn op() -> impl Strategy<Value = Op> {
    let s = 0..3usize;
    prop_oneof![
        3 => s.clone().prop_map(Op::Begin),
        8 => (s.clone(), 0..40u8, any::<u16>()).prop_map(|(s, k, v)| Op::Put(s, k, v)),
        2 => (s.clone(), 0..40u8).prop_map(|(s, k)| Op::Delete(s, k)),
        3 => (s.clone(), 0..40u8).prop_map(|(s, k)| Op::Get(s, k)),
        2 => (s.clone(), 0..40u8, 0..40u8, any::<bool>())
            .prop_map(|(s, a, b, r)| Op::Range(s, a, b, r)),
        4 => (s.clone(), any::<bool>()).prop_map(|(s, d)| Op::Commit(s, d)),
        1 => s.prop_map(Op::Rollback),
        1 => Just(Op::Checkpoint),
        1 => Just(Op::Crash),
    ]
}

fn key(k: u8) -> Vec<u8> {
    format!("key{k:03}").into_bytes()
}

fn value(v: u16) -> Vec<u8> {
    // Some values large enough to go out of line.
    let len = if v.is_multiple_of(5) {
        3000
    } else {
        1 + (v as usize % 40)
    };
    let mut out = v.to_le_bytes().to_vec();
    out.resize(len, (v % 251) as u8);
    out
}

/// The model of one open transaction.
struct ModelTx {
    snapshot: usize,
    writes: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
}

struct Model {
    /// The committed state after each commit; `history[0]` is the state at the start.
    history: Vec<State>,
    /// The commit that last wrote each key.
    last_write: BTreeMap<Vec<u8>, usize>,
    /// The last commit acknowledged durable: a crash keeps at least this prefix.
    durable: usize,
    open: [Option<ModelTx>; 3],
}

impl Model {
    fn sees(&self, tx: &ModelTx, k: &[u8]) -> Option<Vec<u8>> {
        match tx.writes.get(k) {
            Some(v) => v.clone(),
            None => self.history[tx.snapshot].get(k).cloned(),
        }
    }

    fn conflicts(&self, s: usize, k: &[u8]) -> bool {
        let tx = self.open[s].as_ref().expect("open");
        let other_open = self
            .open
            .iter()
            .enumerate()
            .any(|(i, t)| i != s && t.as_ref().is_some_and(|t| t.writes.contains_key(k)));
        other_open || self.last_write.get(k).is_some_and(|&c| c > tx.snapshot)
    }
}

fn start(vfs: &MemVfs, seed: u64) -> (Instance, Vec<Session>, Table) {
    let instance = Instance::new(env_with(vfs.clone(), seed, seed), model_params());
    instance.init().unwrap();
    let mut sessions: Vec<Session> = (0..3).map(|_| instance.begin_session().unwrap()).collect();
    let t = open_or_create_table(&mut sessions[0], "t");
    (instance, sessions, t)
}

fn read_all(session: &mut Session, t: Table) -> State {
    session
        .range(t, .., false)
        .unwrap()
        .collect::<jetdb::Result<State>>()
        .unwrap()
}

fn run(ops: Vec<Op>) {
    let vfs = MemVfs::new();
    let (mut instance, mut sessions, mut t) = start(&vfs, 1);
    let mut model = Model {
        history: vec![State::new()],
        last_write: BTreeMap::new(),
        durable: 0,
        open: Default::default(),
    };
    let mut crashes = 0u64;
    for op in ops {
        match op {
            Op::Begin(s) => {
                if model.open[s].is_none() {
                    sessions[s].begin_transaction().unwrap();
                    model.open[s] = Some(ModelTx {
                        snapshot: model.history.len() - 1,
                        writes: BTreeMap::new(),
                    });
                } else {
                    let err = sessions[s].begin_transaction().unwrap_err();
                    assert_eq!(err.kind(), ErrorKind::InTransaction);
                }
            }
            Op::Put(s, k, v) => {
                if model.open[s].is_none() {
                    continue;
                }
                let (k, v) = (key(k), value(v));
                let result = sessions[s].put(t, &k, &v);
                if model.conflicts(s, &k) {
                    assert_eq!(result.unwrap_err().kind(), ErrorKind::WriteConflict);
                } else {
                    result.unwrap();
                    model.open[s].as_mut().unwrap().writes.insert(k, Some(v));
                }
            }
            Op::Delete(s, k) => {
                if model.open[s].is_none() {
                    continue;
                }
                let k = key(k);
                let result = sessions[s].delete(t, &k);
                if model.conflicts(s, &k) {
                    assert_eq!(result.unwrap_err().kind(), ErrorKind::WriteConflict);
                } else {
                    let m = model.open[s].as_ref().unwrap();
                    assert_eq!(result.unwrap(), model.sees(m, &k).is_some());
                    model.open[s].as_mut().unwrap().writes.insert(k, None);
                }
            }
            Op::Get(s, k) => {
                let k = key(k);
                let want = match &model.open[s] {
                    Some(m) => model.sees(m, &k),
                    None => model.history.last().unwrap().get(&k).cloned(),
                };
                assert_eq!(sessions[s].get(t, &k).unwrap(), want, "get {k:?}");
            }
            Op::Range(s, a, b, reverse) => {
                let Some(m) = &model.open[s] else { continue };
                let (lo, hi) = (key(a.min(b)), key(a.max(b)));
                let got: Vec<(Vec<u8>, Vec<u8>)> = sessions[s]
                    .range(
                        t,
                        (Bound::Included(&lo[..]), Bound::Excluded(&hi[..])),
                        reverse,
                    )
                    .unwrap()
                    .map(|r| r.unwrap())
                    .collect();
                let mut keys: Vec<Vec<u8>> = model.history[m.snapshot]
                    .range(lo.clone()..hi.clone())
                    .map(|(k, _)| k.clone())
                    .chain(
                        m.writes
                            .range(lo.clone()..hi.clone())
                            .map(|(k, _)| k.clone()),
                    )
                    .collect();
                keys.sort();
                keys.dedup();
                let mut want: Vec<(Vec<u8>, Vec<u8>)> = keys
                    .into_iter()
                    .filter_map(|k| model.sees(m, &k).map(|v| (k, v)))
                    .collect();
                if reverse {
                    want.reverse();
                }
                assert_eq!(got, want, "range {lo:?}..{hi:?} reverse {reverse}");
            }
            Op::Commit(s, durable) => {
                let Some(m) = model.open[s].take() else {
                    let err = sessions[s].commit_transaction(CommitMode::Durable);
                    assert_eq!(err.unwrap_err().kind(), ErrorKind::NotInTransaction);
                    continue;
                };
                let mode = if durable {
                    CommitMode::Durable
                } else {
                    CommitMode::Lazy
                };
                sessions[s].commit_transaction(mode).unwrap();
                if !m.writes.is_empty() {
                    let mut state = model.history.last().unwrap().clone();
                    let seq = model.history.len();
                    for (k, v) in m.writes {
                        model.last_write.insert(k.clone(), seq);
                        match v {
                            Some(v) => state.insert(k, v),
                            None => state.remove(&k),
                        };
                    }
                    model.history.push(state);
                }
                if durable {
                    // A durable commit makes every earlier commit durable too.
                    model.durable = model.history.len() - 1;
                }
            }
            Op::Rollback(s) => {
                if model.open[s].take().is_some() {
                    sessions[s].rollback().unwrap();
                }
            }
            Op::Checkpoint => {
                instance.checkpoint().unwrap();
                // A checkpoint flushes the log: every commit so far is durable.
                model.durable = model.history.len() - 1;
            }
            Op::Crash => {
                drop(sessions);
                drop(instance);
                model.open = Default::default();
                crashes += 1;
                let (i, s, table) = start(&vfs, 100 + crashes);
                (instance, sessions, t) = (i, s, table);
                let got = read_all(&mut sessions[0], t);
                // A prefix of the commits, at least through the last durable one.
                let n = (model.durable..model.history.len())
                    .find(|&n| model.history[n] == got)
                    .unwrap_or_else(|| {
                        panic!(
                            "after a crash the state is no prefix of the commits from {}",
                            model.durable
                        )
                    });
                model.history.truncate(n + 1);
                model.durable = n;
                model.last_write.retain(|_, c| *c <= n);
                instance.check_integrity().unwrap();
            }
        }
    }
    drop(sessions);
    let mut session = instance.begin_session().unwrap();
    assert_eq!(&read_all(&mut session, t), model.history.last().unwrap());
    instance.check_integrity().unwrap();
    drop(session);
    instance.term().unwrap();
}

proptest! {
    // PROPTEST_CASES overrides the count for longer runs.
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(96)
    ))]

    #[test]
    fn transactions_match_the_model(ops in prop::collection::vec(op(), 1..400)) {
        run(ops);
    }
}
