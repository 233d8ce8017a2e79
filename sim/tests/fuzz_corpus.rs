//! Replays every checked-in fuzz input — `fuzz/corpus/<target>/` (the seed corpus and what
//! fuzzing added) and `fuzz/regressions/<target>/` (the findings, kept after their fix) —
//! through the same target functions the cargo-fuzz binaries call (`jetsim::fuzz`), on stable
//! Rust. A fuzz finding becomes a regression test by adding its file. Also: the seed corpus is
//! what its generator writes, it reaches the targets' deep paths, and a replayed input fails
//! when an engine bug is planted.

use std::collections::BTreeSet;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::Instant;

use jetdb::{ErrorKind, PlantedBug};
use jetsim::Mark;
use jetsim::fuzz::{self, damaged_backup, damaged_database, damaged_log, sim_plan};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

/// The seed inputs of `target`, from the generator (`fuzz::seeds`), by name: files fuzzing
/// added to `fuzz/corpus/` are replayed, but the tests of named outcomes don't depend on them.
fn seeds(target: &str) -> Vec<(&'static str, Vec<u8>)> {
    fuzz::seeds::seeds()
        .into_iter()
        .filter(|(t, _, _)| *t == target)
        .map(|(_, name, bytes)| (name, bytes))
        .collect()
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "a panic without a message".into())
}

/// Runs every file under `fuzz/<kind>/<target>/` through its target. Returns the failures
/// (each naming its target and file and how to reproduce it) and the number of files run.
fn replay(kind: &str) -> (Vec<String>, usize) {
    let root = fuzz_dir().join(kind);
    let mut failures = Vec::new();
    let mut runs = 0;
    let mut entries: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for entry in entries {
        let name = entry.file_name().unwrap().to_string_lossy().into_owned();
        if !entry.is_dir() {
            assert!(
                name == "README.md",
                "fuzz/{kind}/{name}: only target directories (and a README.md) belong here"
            );
            continue;
        }
        // A typo in a directory name must not silently skip its files.
        let Some(target) = fuzz::target(&name) else {
            panic!(
                "fuzz/{kind}/{name}/ names no fuzz target (the targets: {:?})",
                fuzz::TARGETS.map(|(n, _)| n)
            )
        };
        let mut files: Vec<PathBuf> = std::fs::read_dir(&entry)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        for file in files {
            let shown = file.strip_prefix(fuzz_dir()).unwrap().display().to_string();
            if file.is_dir() {
                failures.push(format!(
                    "fuzz/{shown}/ is a directory: a target's directory holds only input files"
                ));
                continue;
            }
            let data = match std::fs::read(&file) {
                Ok(data) => data,
                Err(e) => {
                    failures.push(format!("fuzz/{shown}: {e}"));
                    continue;
                }
            };
            let file = shown;
            runs += 1;
            if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(|| target(&data))) {
                failures.push(format!(
                    "target {name}, file fuzz/{file}: {}\n  reproduce: cargo test -p jetsim --test fuzz_corpus, \
                     or cargo +nightly fuzz run {name} fuzz/{file}",
                    panic_message(&*payload)
                ));
            }
        }
    }
    (failures, runs)
}

#[test]
fn every_corpus_and_regression_file_passes() {
    let start = Instant::now();
    let (mut failures, corpus) = replay("corpus");
    let (more, regressions) = replay("regressions");
    failures.extend(more);
    eprintln!(
        "replayed {corpus} corpus and {regressions} regression files in {:.1?}",
        start.elapsed()
    );
    assert!(
        failures.is_empty(),
        "{} fuzz inputs fail:\n{}",
        failures.len(),
        failures.join("\n")
    );
    for (target, _) in fuzz::TARGETS {
        for kind in ["corpus", "regressions"] {
            let dir = fuzz_dir().join(kind).join(target);
            let files = std::fs::read_dir(&dir).map(|d| d.count()).unwrap_or(0);
            assert!(files > 0, "fuzz/{kind}/{target}/ is missing or empty");
        }
    }
}

/// The checked-in seed corpus is what `cargo run -p jetsim --example fuzz-corpus` writes: a
/// change to an input format or to the generator must come with regenerated files.
#[test]
fn the_seed_corpus_is_current() {
    for (target, name, bytes) in fuzz::seeds::seeds() {
        let path = fuzz_dir().join("corpus").join(target).join(name);
        let found = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(
            found == bytes,
            "fuzz/corpus/{target}/{name} is stale: run cargo run -p jetsim --example fuzz-corpus"
        );
    }
}

/// The seed corpus of each target reaches its deep paths, each named by the outcome it shows.
/// (The seeds as generated, so a file fuzzing added to `fuzz/corpus/` can't break this.)
#[test]
fn the_seed_corpus_reaches_the_deep_paths() {
    let outcomes: Vec<_> = seeds("btree_ops")
        .iter()
        .map(|(_, data)| fuzz::btree_ops::btree_ops_with(data, None).expect("seeds decode"))
        .collect();
    assert!(
        outcomes.iter().any(|o| o.reopens > 0 && o.records >= 300),
        "splits, then a reopen"
    );
    assert!(
        outcomes.iter().any(|o| o.reopens > 0 && o.long_values > 0),
        "long values, then a reopen"
    );
    assert!(
        outcomes
            .iter()
            .any(|o| o.page_size > 4096 && o.records > 100),
        "larger pages"
    );

    let outcomes: Vec<_> = seeds("damaged_backup")
        .iter()
        .map(|(_, data)| damaged_backup::damaged_backup_with(data, None).expect("seeds decode"))
        .collect();
    assert!(
        outcomes.iter().any(|o| o.whole && o.restore.is_ok()),
        "a whole set restored"
    );
    let refusals: BTreeSet<ErrorKind> = outcomes
        .iter()
        .filter(|o| !o.resealed)
        .filter_map(|o| o.restore.err())
        .collect();
    for kind in [
        ErrorKind::ReadVerifyFailure,     // the database copy's page checksum
        ErrorKind::BadBackupDatabaseSize, // the database copy cut short
        ErrorKind::LogCorruptDuringHardRestore, // a log segment or the manifest
        ErrorKind::MissingRestoreLogFiles, // an incremental log removed
        ErrorKind::LogTornWriteDuringHardRestore,
        ErrorKind::FileNotFound, // the manifest removed
    ] {
        assert!(
            refusals.contains(&kind),
            "no seed makes restore refuse with {kind:?}: {refusals:?}"
        );
    }
    assert!(
        outcomes
            .iter()
            .any(|o| o.resealed && o.restore == Err(ErrorKind::GivenLogFileHasBadSignature)),
        "a resealed manifest passes its checksum and reaches the logs' signatures"
    );

    let outcomes: Vec<_> = seeds("damaged_log")
        .iter()
        .map(|(_, data)| damaged_log::damaged_log_with(data, None).expect("seeds decode"))
        .collect();
    let sound = outcomes
        .iter()
        .find(|o| !o.resealed && o.init.is_ok())
        .expect("a recovery")
        .records;
    assert!(
        outcomes
            .iter()
            .any(|o| o.resealed && o.init.is_ok() && o.records < sound),
        "a resealed segment passes its checksum and replay stops at it"
    );
    assert!(
        outcomes
            .iter()
            .any(|o| !o.resealed && o.init.is_ok() && o.records < sound),
        "a torn tail recovered"
    );
    for kind in [
        ErrorKind::LogFileCorrupt,
        ErrorKind::MissingLogFile,
        ErrorKind::DatabaseCorrupted,
    ] {
        assert!(
            outcomes.iter().any(|o| o.init == Err(kind)),
            "no seed makes recovery refuse with {kind:?}"
        );
    }

    let outcomes: Vec<_> = seeds("damaged_database")
        .iter()
        .map(|(_, data)| damaged_database::damaged_database_with(data, None).expect("seeds decode"))
        .collect();
    assert!(
        outcomes.iter().any(|o| o.open_refused.is_some()),
        "an image refused at open"
    );
    for kind in [
        ErrorKind::ReadLostFlushVerifyFailure,
        ErrorKind::ReadVerifyFailure,
        ErrorKind::PageNotInitialized,
    ] {
        assert!(
            outcomes
                .iter()
                .any(|o| !o.forged && o.integrity == Some(Err(kind)) && o.read_errors > 0),
            "no seed's damage is found by reads and the integrity check as {kind:?}"
        );
    }
    assert!(
        outcomes.iter().any(|o| o.forged && o.records_read > 0),
        "a forged page read past"
    );

    let mut marks = jetsim::Coverage::default();
    for (_, data) in seeds("sim_plan") {
        marks.merge(&sim_plan::sim_plan_with(&data, None).coverage);
    }
    for mark in [
        Mark::FullBackup,
        Mark::IncrementalBackup,
        Mark::CrashDuringBackup,
        Mark::BackupRestored,
        Mark::RestoreCrashRetried,
        Mark::BackupFoundCorruption,
        Mark::LogSetTamperRefused,
        Mark::RestoredAfterDamage,
        Mark::RolledForward,
        Mark::CrashDuringRecovery,
    ] {
        assert!(marks.count(mark) > 0, "no sim_plan seed reaches {mark:?}");
    }
}

/// The seed input `name` of `target`, from the generator.
fn seed(target: &str, name: &str) -> Vec<u8> {
    fuzz::seeds::seeds()
        .into_iter()
        .find(|(t, n, _)| *t == target && *n == name)
        .unwrap_or_else(|| panic!("no seed {target}/{name}"))
        .2
}

/// The seed input `name` run with `bug` planted must fail its target, and pass without it.
fn fails_with(target: &str, name: &str, run: impl Fn(&[u8], Option<PlantedBug>), bug: PlantedBug) {
    let data = seed(target, name);
    run(&data, None);
    let caught = panic::catch_unwind(AssertUnwindSafe(|| run(&data, Some(bug))));
    assert!(
        caught.is_err(),
        "fuzz/corpus/{target}/{name} passes with {bug:?} planted"
    );
}

/// The replay has teeth: seeds fail their targets with an engine bug planted.
#[test]
fn seeds_catch_planted_engine_bugs() {
    let backup = |d: &[u8], bug| {
        damaged_backup::damaged_backup_with(d, bug);
    };
    fails_with(
        "damaged_backup",
        "database-copy-rot",
        backup,
        PlantedBug::RestoreLeavesItsFiles,
    );
    let database = |d: &[u8], bug| {
        damaged_database::damaged_database_with(d, bug);
    };
    fails_with(
        "damaged_database",
        "lost-write",
        database,
        PlantedBug::FlushMapUnchecked,
    );
    // Replay keeping a key's first change instead of its last: the table recovered is one
    // that never was at a commit (59 records instead of 53).
    let log = |d: &[u8], bug| {
        damaged_log::damaged_log_with(d, bug);
    };
    fails_with(
        "damaged_log",
        "crashed",
        log,
        PlantedBug::ReplayKeepsFirstChange,
    );
    let plan = |d: &[u8], bug| {
        sim_plan::sim_plan_with(d, bug);
    };
    fails_with(
        "sim_plan",
        "rot-met-by-backup",
        plan,
        PlantedBug::BackupSkipsPageCheck,
    );
}

/// A reseal asked of the database copy recomputes no checksum, so the damage stays checked as
/// rot: the same outcome as the `database-copy-rot` seed, not a resealed one.
#[test]
fn a_reseal_that_recomputes_nothing_keeps_the_checks() {
    let db = damaged_backup::pristine()
        .0
        .keys()
        .position(|p| p.extension().is_some_and(|e| e == "edb"))
        .expect("a database copy") as u8;
    let input = fuzz::encode::damaged_backup(&[damaged_backup::Damage::Xor {
        file: db,
        at: 5000,
        mask: 0x10,
        reseal: true,
    }]);
    let outcome = damaged_backup::damaged_backup_with(&input, None).expect("decodes");
    assert!(!outcome.resealed, "{outcome:?}");
    let rot = seed("damaged_backup", "database-copy-rot");
    assert_eq!(
        Some(outcome),
        damaged_backup::damaged_backup_with(&rot, None)
    );
}

/// Files fuzzing adds to `fuzz/corpus/` (hex names) only go through the plain replay: one
/// that removes every file of the crashed instance decodes to no outcome, and its target
/// passes it.
#[test]
fn an_input_that_removes_every_file_passes() {
    let input = fuzz::encode::damaged_log(&vec![damaged_log::Damage::Remove { file: 0 }; 4]);
    assert_eq!(damaged_log::damaged_log_with(&input, None), None);
    damaged_log::damaged_log(&input);
}

/// The `[[bin]]` names in `fuzz/Cargo.toml`.
fn fuzz_bins() -> Vec<String> {
    let manifest = std::fs::read_to_string(fuzz_dir().join("Cargo.toml")).unwrap();
    let mut bins = Vec::new();
    let mut in_bin = false;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_bin = line == "[[bin]]";
        } else if in_bin && let Some(name) = line.strip_prefix("name = ") {
            bins.push(name.trim_matches('"').to_owned());
        }
    }
    bins.sort();
    bins
}

/// The names of the subdirectories of `fuzz/<kind>/`.
fn dirs(kind: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(fuzz_dir().join(kind))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// One list of targets: the cargo-fuzz binaries, `jetsim::fuzz::TARGETS`, the corpus and
/// regression directories; and each binary calls the function of its own name.
#[test]
fn the_fuzz_targets_agree_everywhere() {
    let mut targets: Vec<String> = fuzz::TARGETS.iter().map(|(n, _)| n.to_string()).collect();
    targets.sort();
    assert_eq!(fuzz_bins(), targets, "fuzz/Cargo.toml's [[bin]]s");
    assert_eq!(dirs("corpus"), targets, "fuzz/corpus/");
    assert_eq!(dirs("regressions"), targets, "fuzz/regressions/");
    for t in &targets {
        let path = fuzz_dir().join("fuzz_targets").join(format!("{t}.rs"));
        let source = std::fs::read_to_string(&path).unwrap();
        assert!(
            source.contains(&format!("jetsim::fuzz::{t}::{t}(")),
            "{} does not call jetsim::fuzz::{t}::{t}",
            path.display()
        );
    }
}

/// The versions of `crate` a Cargo.lock pins.
fn locked(lockfile: &Path, krate: &str) -> Vec<String> {
    let text = std::fs::read_to_string(lockfile).unwrap();
    let mut versions: Vec<String> = text
        .split("[[package]]")
        .filter(|p| p.lines().any(|l| l.trim() == format!("name = \"{krate}\"")))
        .filter_map(|p| {
            p.lines()
                .find_map(|l| l.trim().strip_prefix("version = "))
                .map(|v| v.trim_matches('"').to_owned())
        })
        .collect();
    versions.sort();
    versions
}

/// The fuzz workspace decodes inputs with the same `arbitrary` as the stable replay, so a file
/// means the same to both.
#[test]
fn both_lockfiles_pin_the_same_arbitrary() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for krate in ["arbitrary", "derive_arbitrary"] {
        let main = locked(&root.join("Cargo.lock"), krate);
        assert!(!main.is_empty(), "Cargo.lock has no {krate}");
        assert_eq!(
            main,
            locked(&fuzz_dir().join("Cargo.lock"), krate),
            "{krate}: Cargo.lock and fuzz/Cargo.lock differ"
        );
    }
}
