//! Records: the keys the instance tests write, what a database or an instance holds, and
//! what a backup restores to.

use std::collections::BTreeMap;
use std::path::Path;

use jetdb::{
    CommitMode, Database, DatabaseOptions, Env, Instance, InstanceParams, JetError, MemVfs,
    Session, Table,
};

use super::{backup_params, env, options};

/// Every record of every table, by table name and key.
pub type Contents = BTreeMap<(String, Vec<u8>), Vec<u8>>;

/// The key of record `i` in the backup and failure tests: `k00042`.
pub fn key(i: u32) -> Vec<u8> {
    format!("k{i:05}").into_bytes()
}

/// A running instance in `inst` on `vfs` ([`backup_params`]) with `n` records in table `t`,
/// committed a hundred to a lazy transaction: what the backup tests start from.
pub fn loaded(vfs: &MemVfs, n: u32) -> Instance {
    let inst = Instance::new(env(vfs.clone()), backup_params("inst"));
    inst.init().unwrap();
    let mut s = inst.begin_session().unwrap();
    let t = s.create_table("t").unwrap();
    for batch in 0..n.div_ceil(100) {
        s.begin_transaction().unwrap();
        for i in batch * 100..(batch * 100 + 100).min(n) {
            s.put(t, &key(i), &[b'a' + (i % 26) as u8; 150]).unwrap();
        }
        s.commit_transaction(CommitMode::Lazy).unwrap();
    }
    inst
}

/// Opens table `name`, creating it if there is none.
pub fn open_or_create_table(session: &mut Session, name: &str) -> Table {
    session
        .open_table(name)
        .or_else(|_| session.create_table(name))
        .unwrap()
}

/// Every record of every table, read outside any transaction.
pub fn contents(inst: &Instance) -> Contents {
    let mut s = inst.begin_session().unwrap();
    let mut out = Contents::new();
    for name in s.table_names().unwrap() {
        let t = s.open_table(&name).unwrap();
        let rows: Vec<_> = s
            .range(t, .., false)
            .unwrap()
            .collect::<jetdb::Result<Vec<_>>>()
            .unwrap();
        for (k, v) in rows {
            out.insert((name.clone(), k), v);
        }
    }
    out
}

/// Restores `backup` with a new instance of `env` and `params`, starts it, checks its
/// database whole, and returns what it holds (the instance terminated again).
pub fn restore_contents(env: Env, params: InstanceParams, backup: &str) -> jetdb::Result<Contents> {
    let inst = Instance::new(env, params);
    inst.restore(Path::new(backup), None)?;
    inst.init()?;
    let report = inst.check_integrity()?;
    assert!(report.page_count > 2);
    let out = contents(&inst);
    inst.term()?;
    Ok(out)
}

/// Opens the database at `path` on real files, read-only with no cache to speak of, and reads
/// every record of table `t` by key, then by a scan, then checks the database whole: the first
/// error, or none. Data other than `model`'s fails the test.
pub fn read_everything(path: &Path, model: &BTreeMap<Vec<u8>, Vec<u8>>) -> Result<(), JetError> {
    let options = DatabaseOptions {
        read_only: true,
        cache_size: 0,
        ..options()
    };
    let mut db = Database::open(&Env::os(), path, &options)?;
    let t = db.open_table("t")?;
    for (key, value) in model {
        assert_eq!(
            db.get(t, key)?.as_ref(),
            Some(value),
            "wrong data for {key:?}"
        );
    }
    let mut scanned = 0;
    for record in db.range(t, .., false)? {
        let (key, value) = record?;
        assert_eq!(model.get(&key), Some(&value), "a scan returned wrong data");
        scanned += 1;
    }
    assert_eq!(scanned, model.len(), "a scan lost records without an error");
    db.check_integrity()?;
    Ok(())
}
