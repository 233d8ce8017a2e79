//! `jetutil` on real directories: every command, its output, and its errors (ESE name and code,
//! non-zero exit, never a panic).

#![allow(
    clippy::disallowed_methods,
    reason = "tests damage real files on purpose"
)]

use std::path::Path;
use std::process::{Command, Output};

mod support;

fn jetutil(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_jetutil"))
        .args(args)
        .output()
        .expect("jetutil runs")
}

fn ok(args: &[&str]) -> String {
    let out = jetutil(args);
    assert!(
        out.status.success(),
        "jetutil {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs a command that must fail; returns its stderr, which must name an ESE error.
fn fails(args: &[&str], code: &str) -> String {
    let out = jetutil(args);
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(1), "jetutil {args:?}: {stderr}");
    assert!(
        stderr.starts_with("error: JET_err"),
        "jetutil {args:?}: {stderr}"
    );
    assert!(
        stderr.contains(code),
        "jetutil {args:?} should report {code}: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

#[test]
fn put_get_del_scan() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("inst");
    let d = dir.to_str().unwrap();
    ok(&["put", d, "b", "two"]);
    ok(&["put", d, "a", "one"]);
    ok(&["put", d, "c", "three", "--table", "other"]);
    assert_eq!(ok(&["get", d, "a"]), "one\n");
    assert_eq!(ok(&["get", d, "c", "--table", "other"]), "three\n");
    assert_eq!(ok(&["scan", d]), "a\tone\nb\ttwo\n");
    assert_eq!(ok(&["scan", d, "--reverse"]), "b\ttwo\na\tone\n");
    assert_eq!(ok(&["scan", d, "--from", "b"]), "b\ttwo\n");
    assert_eq!(ok(&["scan", d, "--to", "b"]), "a\tone\n");
    assert_eq!(ok(&["scan", d, "--count"]), "2\n");
    ok(&["put", d, "00ff", "5c0a", "--hex"]);
    assert_eq!(ok(&["get", d, "00ff", "--hex"]), "5c0a\n");
    // "k2" holds a backslash and a newline: printed escaped without --hex.
    ok(&["put", d, "6b32", "5c0a", "--hex"]);
    assert_eq!(ok(&["get", d, "k2"]).trim_end(), "\\\\\\x0a");
    ok(&["del", d, "a"]);
    fails(&["get", d, "a"], "JET_errRecordNotFound (-1601)");
    fails(&["del", d, "a"], "(-1601)");
    fails(
        &["get", d, "a", "--table", "nope"],
        "JET_errObjectNotFound (-1305)",
    );
    fails(
        &["get", d, "zz", "--hex"],
        "JET_errInvalidParameter (-1003)",
    );
    fails(
        &["put", d, &"k".repeat(256), "v"],
        "JET_errKeyTooBig (-408)",
    );
    fails(
        &["get", tmp.path().join("missing").to_str().unwrap(), "a"],
        "JET_errFileNotFound (-1811)",
    );
    assert!(ok(&["check", d]).contains("sound"));
}

#[test]
fn load_is_deterministic_and_adds_to_an_instance() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let out = ok(&[
        "load",
        a.to_str().unwrap(),
        "--records",
        "3000",
        "--seed",
        "9",
        "--batch",
        "500",
    ]);
    assert!(
        out.contains("loaded 3000 records of 150 bytes") && out.contains("records/s"),
        "{out}"
    );
    ok(&[
        "load",
        b.to_str().unwrap(),
        "--records",
        "3000",
        "--seed",
        "9",
        "--value-size",
        "150",
    ]);
    let scan_a = ok(&["scan", a.to_str().unwrap(), "--hex"]);
    assert_eq!(
        scan_a,
        ok(&["scan", b.to_str().unwrap(), "--hex"]),
        "same seed, same records"
    );
    let first = scan_a.lines().next().unwrap();
    let (key, value) = first.split_once('\t').unwrap();
    assert_eq!(
        (key.len(), value.len()),
        (48, 300),
        "24-byte keys, 150-byte values"
    );
    ok(&[
        "load",
        a.to_str().unwrap(),
        "--records",
        "1000",
        "--seed",
        "10",
        "--value-size",
        "5000",
    ]);
    assert_eq!(ok(&["scan", a.to_str().unwrap(), "--count"]), "4000\n");
    assert!(ok(&["check", a.to_str().unwrap()]).contains("4000 records"));
}

#[test]
fn header_and_checksum_report_damage() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("inst");
    let d = dir.to_str().unwrap();
    ok(&["load", d, "--records", "2000", "--page-size", "4096"]);
    let file = dir.join("data.edb");
    let f = file.to_str().unwrap();
    let header = ok(&["header", f]);
    for field in [
        "header copy 0 (page 0): valid",
        "header copy 1 (page 1): valid",
        "page size:               4096",
        "state:                   CleanShutdown (3)",
        "last full backup:        none",
    ] {
        assert!(header.contains(field), "missing {field:?} in\n{header}");
    }
    assert!(ok(&["checksum", f]).contains("bad pages: 0"));

    let mut bytes = std::fs::read(&file).unwrap();
    bytes[4096 + 200] ^= 1; // header copy 1
    bytes[7 * 4096 + 300] ^= 1; // a tree page
    bytes[9 * 4096..10 * 4096].fill(0);
    std::fs::write(&file, &bytes).unwrap();
    let header = ok(&["header", f]);
    assert!(
        header.contains("header copy 1 (page 1): INVALID: JET_errReadVerifyFailure (-1018)"),
        "{header}"
    );
    assert!(header.contains("in use: copy 0"), "{header}");
    let out = jetutil(&["checksum", f]);
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("bad pages: 3"), "{stdout}");
    assert!(
        stdout.contains("page 7: JET_errReadVerifyFailure (-1018)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("page 9: JET_errPageNotInitialized (-1019)"),
        "{stdout}"
    );
    // The scan stops at whichever damaged page the tree reaches first.
    let stderr = fails(&["scan", d], "(-101");
    assert!(
        (stderr.contains("JET_errReadVerifyFailure (-1018)") && stderr.contains("page 7"))
            || (stderr.contains("JET_errPageNotInitialized (-1019)") && stderr.contains("page 9")),
        "{stderr}"
    );
    fails(&["check", d], "(-10");

    // Both header copies gone: every command reports it, none panics.
    bytes[100] ^= 1;
    std::fs::write(&file, &bytes).unwrap();
    fails(&["header", f], "(-1018)");
    fails(&["checksum", f], "(-1018)");
    fails(&["get", d, "x"], "(-1018)");
    std::fs::write(&file, &bytes[..1000]).unwrap();
    fails(&["header", f], "JET_errDatabaseCorrupted (-1206)");
    fails(&["checksum", f], "(-1206)");
    assert!(Path::new(f).exists());
}

/// An instance directory left by a crash: commits on table "default", no term.
fn crashed_instance(dir: &Path, commits: u32) {
    use jetdb::{CommitMode, Instance, InstanceParams};
    let params = InstanceParams {
        create_path_if_not_exist: true,
        ..support::base_params(dir)
    };
    let instance = Instance::new(jetdb::Env::os(), params);
    instance.init().unwrap();
    let mut session = instance.begin_session().unwrap();
    let t = support::open_or_create_table(&mut session, "default");
    for i in 0..commits {
        session.begin_transaction().unwrap();
        session
            .put(t, format!("k{i:04}").as_bytes(), &[b'v'; 300])
            .unwrap();
        session.commit_transaction(CommitMode::Durable).unwrap();
    }
}

#[test]
fn logs_and_recover_report_the_log_and_what_recovery_did() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("inst");
    let d = dir.to_str().unwrap();
    crashed_instance(&dir, 100);
    let listing = ok(&["logs", d]);
    assert!(
        listing.contains("edb.chk: checkpoint (00000001,"),
        "{listing}"
    );
    assert!(
        listing.contains("edb00000001.log: generation 0x1") && listing.contains(": good\n"),
        "{listing}"
    );
    assert!(listing.contains("edb.log: generation"), "{listing}");
    assert!(listing.contains("good (open)"), "{listing}");
    // Every file's records counted as it is read: the 100 commits and the table's.
    let (mut records, mut commits) = (0u64, 0u64);
    for line in listing.lines().filter(|l| l.contains(" records (")) {
        let (before, after) = line.split_once(" records (").unwrap();
        records += before.rsplit(' ').next().unwrap().parse::<u64>().unwrap();
        commits += after.split(' ').next().unwrap().parse::<u64>().unwrap();
    }
    assert_eq!(commits, 101, "{listing}");
    assert!(
        records >= 2 * commits,
        "a put or table record before each commit: {listing}"
    );

    let report = ok(&["recover", d, "--log-file-size", "128"]);
    assert!(report.contains("database before:"), "{report}");
    let replayed: u64 = report
        .lines()
        .find_map(|l| l.trim().strip_prefix("commits replayed:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(replayed, 101, "100 commits and the table: {report}");
    assert!(report.contains("torn tail:              none"), "{report}");
    assert_eq!(ok(&["scan", d, "--count"]), "100\n");
    let again = ok(&["recover", d]);
    assert!(again.contains("commits replayed:       0"), "{again}");

    // A torn tail: reported by logs (as a tear, not damage) and by recover.
    let log = dir.join("edb.log");
    crashed_instance(&dir, 10);
    let mut bytes = std::fs::read(&log).unwrap();
    let used = (1..bytes.len() / 4096)
        .take_while(|&i| bytes[i * 4096..(i + 1) * 4096].iter().any(|&b| b != 0))
        .count();
    bytes[used * 4096 + 64] ^= 0xFF;
    std::fs::write(&log, &bytes).unwrap();
    let listing = ok(&["logs", d]);
    assert!(listing.contains("torn tail at segment"), "{listing}");
    let report = ok(&["recover", d]);
    assert!(
        report.contains("torn tail:              generation"),
        "{report}"
    );

    // Damage in an archived generation: logs exits 1, recover refuses with -501.
    crashed_instance(&dir, 60);
    // The newest archived generation: recovery needs it (the checkpoint is older).
    let archived = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("edb0"))
        .max()
        .unwrap();
    let mut bytes = std::fs::read(&archived).unwrap();
    bytes[2 * 4096 + 99] ^= 1;
    std::fs::write(&archived, &bytes).unwrap();
    let out = jetutil(&["logs", d]);
    let listing = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(1), "{listing}");
    assert!(listing.contains("DAMAGED"), "{listing}");
    fails(&["recover", d], "JET_errLogFileCorrupt (-501)");
    fails(&["scan", d], "(-501)");
}

#[test]
fn instance_flags_reach_the_instance() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("inst");
    let logs = tmp.path().join("logs");
    let d = dir.to_str().unwrap();
    let l = logs.to_str().unwrap();
    std::fs::create_dir(&logs).unwrap();
    ok(&[
        "load",
        d,
        "--records",
        "4000",
        "--batch",
        "50",
        "--log-dir",
        l,
        "--log-file-size",
        "128",
        "--circular-log",
        "--page-size",
        "4096",
    ]);
    assert!(logs.join("edb.log").is_file());
    assert!(dir.join("edb.chk").is_file());
    assert!(!dir.join("edb.log").exists());
    let archived = std::fs::read_dir(&logs).unwrap().count() - 1;
    assert!(
        archived <= 3,
        "circular logging keeps few generations: {archived}"
    );
    assert_eq!(ok(&["scan", d, "--count", "--log-dir", l]), "4000\n");
    fails(
        &["scan", d, "--log-file-size", "100"],
        "JET_errInvalidParameter (-1003)",
    );
    fails(&["put", d, "k", "v", "--base-name", "toolong"], "(-1003)");
    ok(&["put", d, "k", "v", "--log-dir", l, "--lazy"]);
    assert_eq!(ok(&["get", d, "k", "--log-dir", l]), "v\n");
    // Without logging there is no log, and the data is still there after shutdown.
    let plain = tmp.path().join("plain");
    let p = plain.to_str().unwrap();
    ok(&["put", p, "k", "v", "--no-logging"]);
    assert_eq!(ok(&["get", p, "k", "--no-logging"]), "v\n");
    assert!(!plain.join("edb.log").exists() && !plain.join("edb.chk").exists());
    assert!(ok(&["recover", p, "--no-logging"]).contains("logging is off"));
}

/// The value after `label` on the line of `out` that starts with it (after indentation).
fn field<'a>(out: &'a str, label: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.trim_start().strip_prefix(label))
        .unwrap_or_else(|| panic!("no {label:?} in\n{out}"))
        .trim()
}

/// The commit sequence at the start of a field like "commit 12, log position …".
fn commit_of(value: &str) -> u64 {
    value
        .strip_prefix("commit ")
        .and_then(|v| v.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no commit in {value:?}"))
}

/// How many archived log generations `jetutil logs` lists.
fn archived_logs(dir: &str) -> usize {
    ok(&["logs", dir])
        .lines()
        .filter(|l| l.starts_with("edb0"))
        .count()
}

#[test]
fn backup_incremental_and_restore_give_the_state_at_the_last_backup() {
    let tmp = tempfile::tempdir().unwrap();
    let (inst, bk, restored) = (
        tmp.path().join("inst"),
        tmp.path().join("bk"),
        tmp.path().join("restored"),
    );
    let (d, b, r) = (
        inst.to_str().unwrap(),
        bk.to_str().unwrap(),
        restored.to_str().unwrap(),
    );
    let small_logs = ["--log-file-size", "128"];
    ok(&[
        &["load", d, "--records", "2000", "--batch", "100"][..],
        &small_logs,
        &["--page-size", "4096"],
    ]
    .concat());
    ok(&["put", d, "marker", "full"]);
    std::fs::create_dir(&bk).unwrap();

    let full = ok(&[&["backup", d, "--to", b][..], &small_logs].concat());
    for line in [
        "full backup began at (",
        "backup: copied ",
        "full backup succeeded (commit ",
        "full backup into ",
    ] {
        assert!(full.contains(line), "missing {line:?} in\n{full}");
    }
    assert_eq!(field(&full, "kind:"), "full");
    let full_commit = commit_of(field(&full, "backup point:"));
    assert!(
        !field(&full, "bytes copied:").contains("(database 0,"),
        "a full backup copies the database:\n{full}"
    );
    let header = ok(&["header", inst.join("data.edb").to_str().unwrap()]);
    assert!(
        field(&header, "last full backup:").starts_with("generations ")
            && field(&header, "last incremental backup:") == "none",
        "{header}"
    );

    ok(&[
        &[
            "load",
            d,
            "--records",
            "500",
            "--seed",
            "2",
            "--batch",
            "50",
        ][..],
        &small_logs,
    ]
    .concat());
    ok(&["put", d, "marker", "incremental"]);
    // What the restore must give back: the instance as the incremental backup begins.
    let snapshot = ok(&["scan", d, "--hex"]);
    let incremental = ok(&["backup", d, "--to", b, "--incremental"]);
    assert!(
        incremental.contains("incremental backup succeeded (commit "),
        "{incremental}"
    );
    assert!(
        field(&incremental, "bytes copied:").contains("(database 0,"),
        "an incremental backup copies only logs:\n{incremental}"
    );
    let inc_commit = commit_of(field(&incremental, "backup point:"));
    assert!(inc_commit > full_commit, "{full_commit} then {inc_commit}");
    let header = ok(&["header", inst.join("data.edb").to_str().unwrap()]);
    assert!(
        field(&header, "last incremental backup:").contains("mark ("),
        "{header}"
    );

    // After the backup: none of this may be restored.
    ok(&[
        "load",
        d,
        "--records",
        "300",
        "--seed",
        "3",
        "--batch",
        "50",
    ]);
    ok(&["put", d, "marker", "late"]);
    let (first_key, _) = snapshot.lines().next().unwrap().split_once('\t').unwrap();
    ok(&["del", d, first_key, "--hex"]);

    let info = ok(&["backup-info", b]);
    assert_eq!(field(&info, "backups:"), "2", "{info}");
    assert!(
        info.contains(&format!("full        commit {full_commit},"))
            && info.contains(&format!("incremental commit {inc_commit},")),
        "{info}"
    );
    assert_eq!(field(&info, "restores to:"), format!("commit {inc_commit}"));
    assert!(info.contains("data.edb: ") && info.contains(".log: generation 0x"));
    assert!(
        !info.contains("DAMAGED") && !info.contains("MISSING"),
        "{info}"
    );

    let restore = ok(&["restore", b, "--to", r, "--create-path"]);
    for line in [
        "restore began from ",
        "restore: copied ",
        "restore succeeded: ",
    ] {
        assert!(restore.contains(line), "missing {line:?} in\n{restore}");
    }
    assert_eq!(
        field(&restore, "backups restored:"),
        "2 (a full backup and 1 incremental)"
    );
    assert_eq!(
        field(&restore, "landed on commit:")
            .split_whitespace()
            .next(),
        Some(inc_commit.to_string().as_str())
    );

    // Exactly the records at the incremental backup, through the default flags.
    assert_eq!(ok(&["scan", r, "--hex"]), snapshot);
    assert_eq!(ok(&["get", r, "marker"]), "incremental\n");
    assert!(ok(&["check", r]).contains("table default: 2501 records"));
    assert!(ok(&["logs", r]).contains("edb.chk: checkpoint"));
    ok(&["put", r, "after", "restore"]);
    assert_eq!(ok(&["get", r, "after"]), "restore\n");
    // The source kept its later changes.
    assert_eq!(ok(&["scan", d, "--count"]), "2800\n");
    assert_eq!(ok(&["get", d, "marker"]), "late\n");

    // A restore never overwrites an instance.
    fails(
        &["restore", b, "--to", r],
        "JET_errDatabaseDuplicate (-1201)",
    );
    assert_eq!(ok(&["get", r, "after"]), "restore\n");
}

#[test]
fn backup_without_a_destination_truncates_the_logs() {
    let tmp = tempfile::tempdir().unwrap();
    let inst = tmp.path().join("inst");
    let d = inst.to_str().unwrap();
    ok(&[
        "load",
        d,
        "--records",
        "5000",
        "--batch",
        "100",
        "--log-file-size",
        "128",
        "--page-size",
        "4096",
    ]);
    let before = archived_logs(d);
    assert!(before >= 5, "{}", ok(&["logs", d]));
    // With no backup recorded, no log is anyone's to delete: they may be needed to restore.
    let none = ok(&["backup", d]);
    assert_eq!(field(&none, "generations truncated:"), "none", "{none}");
    assert_eq!(archived_logs(d), before);
    // A full backup (into a directory removed again): the header records it, and the logs it
    // holds go with its truncation.
    let gone = tmp.path().join("gone");
    let out = ok(&["backup", d, "--to", gone.to_str().unwrap(), "--create-path"]);
    std::fs::remove_dir_all(&gone).unwrap();
    assert!(out.contains("deleted log generations 0x1 to 0x"), "{out}");
    assert!(field(&out, "generations truncated:").starts_with("0x1 to 0x"));
    // The backup's own generation stayed (the checkpoint had not passed it); the clean
    // shutdown's checkpoint has now, so a truncation takes it, and nothing after it.
    let out = ok(&["backup", d]);
    assert!(out.starts_with("truncation backup began"), "{out}");
    assert!(out.contains("log truncation succeeded"), "{out}");
    assert_eq!(field(&out, "generations copied:"), "none");
    let truncated = field(&out, "generations truncated:");
    let (low, high) = truncated.split_once(" to ").expect("a range");
    assert_eq!(low, high, "only the backup's own generation: {out}");
    assert!(field(&out, "bytes copied:").starts_with("0 "), "{out}");
    let after = archived_logs(d);
    assert!(
        after < before,
        "{before} archived generations, then {after}"
    );
    // Nothing the database needs went with them.
    assert_eq!(ok(&["scan", d, "--count"]), "5000\n");
    assert!(ok(&["check", d]).contains("sound"));
    // Again: nothing left to delete.
    let again = ok(&["backup", d]);
    assert_eq!(field(&again, "generations truncated:"), "none", "{again}");
    fails(
        &["backup", d, "--incremental"],
        "JET_errInvalidParameter (-1003)",
    );

    // After a full backup, truncation keeps what the next incremental backup copies.
    let bk = tmp.path().join("bk");
    let b = bk.to_str().unwrap();
    ok(&["backup", d, "--to", b, "--create-path"]);
    ok(&[
        "load",
        d,
        "--records",
        "1500",
        "--seed",
        "5",
        "--batch",
        "50",
        "--log-file-size",
        "128",
    ]);
    let kept = archived_logs(d);
    assert!(kept >= 2, "{}", ok(&["logs", d]));
    // Only the full backup's own generation may go: every later one, the incremental's, stays.
    let out = ok(&["backup", d]);
    let truncated = field(&out, "generations truncated:");
    let (low, high) = truncated.split_once(" to ").expect("a range");
    assert_eq!(low, high, "{out}");
    assert_eq!(archived_logs(d), kept - 1);
    let snapshot = ok(&["scan", d, "--hex"]);
    ok(&["backup", d, "--to", b, "--incremental"]);
    let r = tmp.path().join("restored");
    ok(&["restore", b, "--to", r.to_str().unwrap(), "--create-path"]);
    assert_eq!(ok(&["scan", r.to_str().unwrap(), "--hex"]), snapshot);
}

#[test]
fn backup_and_restore_errors_are_ese_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let path = |name: &str| tmp.path().join(name).to_str().unwrap().to_string();
    let (d, empty, bk) = (path("inst"), path("empty"), path("bk"));
    ok(&["load", &d, "--records", "200", "--batch", "20"]);
    std::fs::create_dir(&empty).unwrap();

    fails(
        &["backup", &d, "--to", &empty, "--incremental"],
        "JET_errMissingFullBackup (-560)",
    );
    let stderr = fails(&["backup", &d, "--to", &bk], "JET_errInvalidPath (-1023)");
    assert!(stderr.contains("--create-path"), "{stderr}");
    assert!(!Path::new(&bk).exists());
    ok(&["backup", &d, "--to", &bk, "--create-path"]);
    assert!(Path::new(&bk).join("jetbackup.manifest").is_file());
    fails(
        &["backup", &d, "--to", &bk],
        "JET_errBackupDirectoryNotEmpty (-504)",
    );
    ok(&["put", &d, "k", "v"]);
    ok(&["backup", &d, "--to", &bk, "--atomic"]);
    let info = ok(&["backup-info", &bk]);
    assert!(field(&info, "backup set:").starts_with("2 "), "{info}");
    assert!(!Path::new(&bk).join("set-00000001").exists());
    assert!(Path::new(&bk).join("set-00000002").is_dir());
    fails(
        &["backup", &d, "--to", &d],
        "JET_errInvalidParameter (-1003)",
    );
    fails(
        &["backup", &path("nope"), "--to", &empty],
        "JET_errFileNotFound (-1811)",
    );
    let circular = path("circular");
    ok(&["put", &circular, "k", "v", "--circular-log"]);
    fails(
        &[
            "backup",
            &circular,
            "--to",
            &empty,
            "--incremental",
            "--circular-log",
        ],
        "JET_errInvalidBackup (-526)",
    );
    let plain = path("plain");
    ok(&["put", &plain, "k", "v", "--no-logging"]);
    fails(
        &["backup", &plain, "--to", &empty, "--no-logging"],
        "JET_errLoggingDisabled (-516)",
    );

    // No manifest: no backup, said as a problem of the directory.
    let out = jetutil(&["backup-info", &empty]);
    assert_eq!(out.status.code(), Some(1));
    let listing = String::from_utf8(out.stdout).unwrap();
    assert!(
        listing.contains("JET_errFileNotFound (-1811)") && listing.contains("no manifest"),
        "{listing}"
    );
    fails(
        &["restore", &empty, "--to", &path("r1"), "--create-path"],
        "JET_errFileNotFound (-1811)",
    );
    fails(
        &["restore", &bk, "--to", &d],
        "JET_errDatabaseDuplicate (-1201)",
    );

    // A damaged log in the set: backup-info says which, restore refuses and leaves nothing.
    let set = Path::new(&bk).join("set-00000002");
    let log = std::fs::read_dir(&set)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .max()
        .unwrap();
    let pristine = std::fs::read(&log).unwrap();
    let mut bytes = pristine.clone();
    bytes[4096 + 100] ^= 1;
    std::fs::write(&log, &bytes).unwrap();
    let out = jetutil(&["backup-info", &bk]);
    let listing = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(1), "{listing}");
    assert!(listing.contains(".log: generation 0x"), "{listing}");
    assert!(listing.contains(": DAMAGED: damaged log: "), "{listing}");
    assert!(
        listing.contains("JET_errLogCorruptDuringHardRestore (-573)")
            && listing.contains(": modified: expected CRC32 "),
        "{listing}"
    );
    assert!(listing.contains("data.edb: ") && listing.contains(": good ("));
    let r3 = tmp.path().join("r3");
    let stderr = fails(
        &[
            "restore",
            &bk,
            "--to",
            r3.to_str().unwrap(),
            "--create-path",
        ],
        "DuringHardRestore",
    );
    assert!(stderr.contains(log.to_str().unwrap()), "{stderr}");
    let left: Vec<_> = std::fs::read_dir(&r3)
        .map(|d| d.map(|e| e.unwrap().file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "a failed restore leaves {left:?}");
    // Missing: the same, by another name.
    std::fs::remove_file(&log).unwrap();
    let out = jetutil(&["backup-info", &bk]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8(out.stdout).unwrap().contains(": MISSING"));
    fails(
        &[
            "restore",
            &bk,
            "--to",
            r3.to_str().unwrap(),
            "--create-path",
        ],
        "JET_errMissingRestoreLogFiles",
    );
    std::fs::write(&log, &pristine).unwrap();
    ok(&["restore", &bk, "--to", r3.to_str().unwrap()]);
    assert_eq!(ok(&["get", r3.to_str().unwrap(), "k"]), "v\n");
}

#[test]
fn restore_creates_its_target_and_a_path_through_a_file_is_invalid_path() {
    let tmp = tempfile::tempdir().unwrap();
    let path = |name: &str| tmp.path().join(name).to_str().unwrap().to_string();
    let (d, bk) = (path("inst"), path("bk"));
    ok(&["load", &d, "--records", "200", "--batch", "20"]);
    ok(&["backup", &d, "--to", &bk, "--create-path"]);
    let snapshot = ok(&["scan", &d, "--hex"]);
    ok(&["put", &d, "after", "the backup"]);

    // A new target is created with its missing parents, without being asked for.
    let nested = path("new/a/b");
    ok(&["restore", &bk, "--to", &nested]);
    assert_eq!(ok(&["scan", &nested, "--hex"]), snapshot);
    // --create-path is still accepted, and changes nothing.
    let flagged = path("flagged");
    ok(&["restore", &bk, "--to", &flagged, "--create-path"]);
    assert_eq!(ok(&["scan", &flagged, "--hex"]), snapshot);
    // The log directory too.
    let (split, logs) = (path("split"), path("split-logs/x"));
    ok(&["restore", &bk, "--to", &split, "--log-dir", &logs]);
    assert!(Path::new(&logs).join("edb.log").is_file());
    assert!(!Path::new(&split).join("edb.log").exists());
    assert_eq!(ok(&["scan", &split, "--log-dir", &logs, "--hex"]), snapshot);
    let help = ok(&["restore", "--help"]);
    assert!(help.contains("created if it does not exist"), "{help}");

    // A regular file in the way is a bad path, found where it may be; the flag that creates
    // missing directories is no remedy, so it is not suggested.
    let file = path("file");
    std::fs::write(&file, b"a regular file").unwrap();
    let under = format!("{file}/x");
    let (r4, r5) = (path("r4"), path("r5"));
    for args in [
        vec!["restore", &bk, "--to", &under],
        vec!["restore", &bk, "--to", &under, "--create-path"],
        vec!["restore", &bk, "--to", &file],
        vec!["restore", &bk, "--to", &r4, "--log-dir", &under],
        vec!["restore", &under, "--to", &r4],
        vec!["restore", &file, "--to", &r5],
        vec!["backup", &d, "--to", &under],
        vec!["backup", &d, "--to", &under, "--create-path"],
        vec!["backup", &d, "--to", &under, "--incremental"],
        vec!["backup", &under],
    ] {
        let stderr = fails(&args, "JET_errInvalidPath (-1023)");
        assert!(
            !stderr.contains("jetutil: --create-path"),
            "{args:?}: {stderr}"
        );
    }
    assert!(!Path::new(&r4).exists() && !Path::new(&r5).exists());
    assert_eq!(std::fs::read(&file).unwrap(), b"a regular file");
}

/// A destination on a read-only file system (EROFS) is `JET_errFileAccessDenied`: jetutil run
/// where that directory is a read-only bind mount (root ignores file modes).
#[test]
fn a_read_only_destination_is_access_denied() {
    let tmp = tempfile::tempdir().unwrap();
    let path = |name: &str| tmp.path().join(name).to_str().unwrap().to_string();
    let (d, bk, ro) = (path("inst"), path("bk"), path("ro"));
    ok(&["load", &d, "--records", "200", "--batch", "20"]);
    ok(&["backup", &d, "--to", &bk, "--create-path"]);
    std::fs::create_dir(&ro).unwrap();
    let into = format!("{ro}/x");
    for args in [
        ["backup", &d, "--to", &into, "--create-path"],
        ["restore", &bk, "--to", &into, "--create-path"],
        ["restore", &bk, "--to", &ro, "--create-path"],
    ] {
        let mut jetutil =
            match support::in_read_only_mount(Path::new(&ro), env!("CARGO_BIN_EXE_jetutil")) {
                Ok(command) => command,
                Err(why) => {
                    println!("skipped: {why}");
                    return;
                }
            };
        let out = jetutil.args(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(
            stderr.starts_with("error: JET_errFileAccessDenied (-1032): ")
                && stderr.contains("(os error 30)"),
            "{args:?}: {stderr}"
        );
    }
    // Nothing was left in the directory once it is writable again, and the instance works.
    assert_eq!(std::fs::read_dir(&ro).unwrap().count(), 0);
    ok(&["put", &d, "k", "v"]);
}

/// `backup --max-rate` takes a rate with a unit, and the rate-limited backup restores; a rate
/// that is not one is a usage error (exit 2) before anything runs.
#[test]
fn a_rate_limited_backup_restores_and_a_bad_rate_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (inst, bk, restored) = (
        tmp.path().join("inst"),
        tmp.path().join("bk"),
        tmp.path().join("restored"),
    );
    let (d, b, r) = (
        inst.to_str().unwrap(),
        bk.to_str().unwrap(),
        restored.to_str().unwrap(),
    );
    ok(&["load", d, "--records", "500"]);
    ok(&["put", d, "marker", "limited"]);
    let out = jetutil(&[
        "backup",
        d,
        "--to",
        b,
        "--create-path",
        "--max-rate",
        "fast",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--max-rate"));
    assert!(!bk.exists(), "a refused command made nothing");
    ok(&[
        "backup",
        d,
        "--to",
        b,
        "--create-path",
        "--max-rate",
        "64MiB",
    ]);
    ok(&["restore", b, "--to", r]);
    assert_eq!(ok(&["get", r, "marker"]).trim(), "limited");
    assert_eq!(ok(&["scan", r, "--count"]), ok(&["scan", d, "--count"]));
}

/// Runs `jetutil verify DIR`: its exit code and stdout.
fn verify(dir: &Path) -> (Option<i32>, String) {
    let out = jetutil(&["verify", dir.to_str().unwrap()]);
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(!stderr.contains("panicked"), "{stderr}");
    (out.status.code(), String::from_utf8(out.stdout).unwrap())
}

/// `jetutil verify` on real files: a fresh backup is whole (exit 0); a stray file, a missing
/// log and a bad page are each reported on a line of their own with their ESE error (exit 1),
/// and all at once too; no manifest is a problem, no directory an error.
#[test]
fn verify_reports_every_problem_of_a_backup_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let inst = tmp.path().join("inst");
    let bk = tmp.path().join("bk");
    let (d, b) = (inst.to_str().unwrap(), bk.to_str().unwrap());
    let small = ["--log-file-size", "128", "--page-size", "4096"];
    ok(&[
        &["load", d, "--records", "3000", "--batch", "100"][..],
        &small,
    ]
    .concat());
    ok(&[
        "backup",
        d,
        "--to",
        b,
        "--create-path",
        "--log-file-size",
        "128",
    ]);
    ok(&[
        &[
            "load",
            d,
            "--records",
            "1000",
            "--seed",
            "2",
            "--batch",
            "50",
        ][..],
        &small,
    ]
    .concat());
    ok(&[
        "backup",
        d,
        "--to",
        b,
        "--incremental",
        "--log-file-size",
        "128",
    ]);
    let (code, out) = verify(&bk);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(
        out.starts_with(&format!("{b}: the backup is whole: set 1, 2 backups")),
        "{out}"
    );
    let set = bk.join("set-00000001");
    let mut logs: Vec<_> = std::fs::read_dir(&set)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    logs.sort();
    assert!(logs.len() >= 2, "{logs:?}");

    // A stray file.
    let stray = bk.join("notes.txt");
    std::fs::write(&stray, b"mine").unwrap();
    let (code, out) = verify(&bk);
    assert_eq!(code, Some(1), "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(
        lines[0].starts_with(&format!(
            "JET_errBackupDirectoryNotEmpty (-504) {}: extra",
            stray.display()
        )),
        "{out}"
    );
    assert!(lines[1].contains(": 1 problem (1 extra)"), "{out}");
    std::fs::remove_file(&stray).unwrap();

    // A missing log.
    let log = logs[logs.len() / 2].clone();
    let pristine = std::fs::read(&log).unwrap();
    std::fs::remove_file(&log).unwrap();
    let (code, out) = verify(&bk);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.starts_with(&format!(
            "JET_errMissingRestoreLogFiles (-557) {}: missing",
            log.display()
        )),
        "{out}"
    );
    std::fs::write(&log, &pristine).unwrap();
    assert_eq!(verify(&bk).0, Some(0));

    // A bad page.
    let db = set.join("data.edb");
    let mut bytes = std::fs::read(&db).unwrap();
    let pages = bytes.len() / 4096;
    assert!(pages > 40, "{pages} pages");
    bytes[37 * 4096 + 1000] ^= 1;
    std::fs::write(&db, &bytes).unwrap();
    let (code, out) = verify(&bk);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.starts_with(&format!(
            "JET_errReadVerifyFailure (-1018) {}: bad page: expected a whole page; found page 37: checksum mismatch",
            db.display()
        )),
        "{out}"
    );

    // All three at once, and a stray set directory: every one on its own line.
    std::fs::write(&stray, b"mine").unwrap();
    std::fs::remove_file(&log).unwrap();
    std::fs::create_dir(bk.join("set-00000009")).unwrap();
    let (code, out) = verify(&bk);
    assert_eq!(code, Some(1), "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 5, "{out}");
    for code in ["(-504)", "(-557)", "(-1018)"] {
        assert!(lines.iter().any(|l| l.contains(code)), "{code}: {out}");
    }
    assert!(
        out.contains("set-00000009: extra")
            && out.contains("the next backup into this directory removes it"),
        "{out}"
    );
    assert!(lines[4].contains(": 4 problems ("), "{out}");

    // No manifest: a problem; no directory: an error.
    std::fs::remove_file(bk.join("jetbackup.manifest")).unwrap();
    let (code, out) = verify(&bk);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.starts_with("JET_errFileNotFound (-1811) "), "{out}");
    fails(
        &["verify", tmp.path().join("nowhere").to_str().unwrap()],
        "JET_errFileNotFound (-1811)",
    );
}

/// A place a restore left unfinished (its marker still there) is refused by every command
/// that opens the instance, with -544, and `restore` into it again clears it and succeeds.
#[test]
fn an_unfinished_restore_is_refused_then_restored_over() {
    let tmp = tempfile::tempdir().unwrap();
    let (inst, bk, restored) = (
        tmp.path().join("inst"),
        tmp.path().join("bk"),
        tmp.path().join("restored"),
    );
    let (d, b, r) = (
        inst.to_str().unwrap(),
        bk.to_str().unwrap(),
        restored.to_str().unwrap(),
    );
    ok(&["load", d, "--records", "300"]);
    ok(&["backup", d, "--to", b, "--create-path"]);
    ok(&["restore", b, "--to", r]);
    // As a restore killed between its last copy and removing its marker leaves the place
    // (the marker names the paths that restore wrote to).
    let marker = format!(
        "a restore from {b} began here\nlog: {r}\nsystem: {r}\ndatabase: {}\nbase: edb\n",
        restored.join("data.edb").display()
    );
    std::fs::write(restored.join("edb.restoring"), marker).unwrap();
    let err = fails(&["scan", r, "--count"], "-544");
    assert!(err.contains("JET_errSoftRecoveryOnBackupDatabase"), "{err}");
    let out = ok(&["restore", b, "--to", r]);
    assert!(out.contains("cleared first:"), "{out}");
    assert!(out.contains("data.edb"), "{out}");
    assert!(!restored.join("edb.restoring").exists());
    assert_eq!(ok(&["scan", r, "--count"]), ok(&["scan", d, "--count"]));
}

/// The position and time `logs --commits` lists for commit `sequence` in `listing`.
fn listed_commit(listing: &str, sequence: u64) -> (String, String) {
    let line = listing
        .lines()
        .find_map(|l| {
            l.trim_start()
                .strip_prefix(&format!("commit {sequence} at "))
        })
        .unwrap_or_else(|| panic!("no commit {sequence} in\n{listing}"));
    let (at, time) = line.split_once(", ").unwrap();
    (at.to_string(), time.to_string())
}

#[test]
fn restore_to_a_chosen_backup_a_position_a_time_or_rolled_forward() {
    let tmp = tempfile::tempdir().unwrap();
    let (inst, bk) = (tmp.path().join("inst"), tmp.path().join("bk"));
    let (d, b) = (inst.to_str().unwrap(), bk.to_str().unwrap());
    let to = |name: &str| tmp.path().join(name).to_str().unwrap().to_string();
    ok(&["load", d, "--records", "300"]);
    ok(&["put", d, "marker", "one"]);
    std::fs::create_dir(&bk).unwrap();
    let full = commit_of(field(&ok(&["backup", d, "--to", b]), "backup point:"));
    // Commits apart in time, so that a time names one of them.
    for value in ["two", "three"] {
        std::thread::sleep(std::time::Duration::from_millis(30));
        ok(&["put", d, "marker", value]);
    }
    std::thread::sleep(std::time::Duration::from_millis(30));
    let inc = commit_of(field(
        &ok(&["backup", d, "--to", b, "--incremental"]),
        "backup point:",
    ));
    assert_eq!(inc, full + 2);
    ok(&["put", d, "marker", "four"]);

    // Where commit "two" is and when it was made, as the set's logs list them.
    let set = bk.join("set-00000001");
    let listing = ok(&["logs", set.to_str().unwrap(), "--commits"]);
    let (at, time) = listed_commit(&listing, full + 1);

    let cases: [(&str, Vec<&str>, &str); 5] = [
        ("full", vec!["--incrementals", "0"], "one"),
        ("both", vec!["--incrementals", "1"], "three"),
        ("lgpos", vec!["--until-lgpos", &at], "two"),
        ("time", vec!["--until-time", &time], "two"),
        ("rolled", vec!["--roll-forward", d], "four"),
    ];
    for (name, flags, marker) in cases {
        let r = to(name);
        let out = ok(&[&["restore", b, "--to", &r][..], &flags].concat());
        assert_eq!(
            ok(&["get", &r, "marker"]),
            format!("{marker}\n"),
            "{name}: {out}"
        );
        assert!(ok(&["check", &r]).contains("records"), "{name}");
        if name == "lgpos" || name == "time" {
            assert_eq!(
                field(&out, "landed on commit:"),
                format!("{} at {at}, committed {time}", full + 1),
                "{name}"
            );
        }
        if name == "rolled" {
            assert!(field(&out, "rolled forward through:").starts_with("live generations"));
        }
    }

    // Points the set cannot reach, options that contradict each other, and another
    // instance's logs: ESE's errors, nothing left behind.
    fails(
        &[
            "restore",
            b,
            "--to",
            &to("early"),
            "--until-time",
            "2000-01-01T00:00:00Z",
        ],
        "JET_errStartingRestoreLogTooHigh (-554)",
    );
    fails(
        &[
            "restore",
            b,
            "--to",
            &to("late"),
            "--until-time",
            "2999-01-01T00:00:00Z",
        ],
        "JET_errEndingRestoreLogTooLow (-553)",
    );
    fails(
        &["restore", b, "--to", &to("nine"), "--incrementals", "9"],
        "JET_errInvalidParameter (-1003)",
    );
    assert_eq!(std::fs::read_dir(to("early")).unwrap().count(), 0);
    let other = to("other");
    ok(&["put", &other, "k", "v"]);
    fails(
        &[
            "restore",
            b,
            "--to",
            &to("foreign"),
            "--roll-forward",
            &other,
        ],
        "JET_errExistingLogFileHasBadSignature (-610)",
    );
    for bad in [
        vec!["--until-time", "yesterday"],
        vec!["--until-lgpos", "nowhere"],
        vec!["--until-time", &time, "--until-lgpos", &at],
        vec!["--incrementals", "0", "--roll-forward", d],
    ] {
        let out = jetutil(&[&["restore", b, "--to", &to("flags")][..], &bad].concat());
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
    }
}

/// Runs `jetutil args` with `stdin` as its standard input.
fn jetutil_with_input(args: &[&str], stdin: &[u8]) -> Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_jetutil"))
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("jetutil runs");
    let mut input = child.stdin.take().unwrap();
    // (A restore that refuses the stream early may close its stdin before all is written.)
    let _ = input.write_all(stdin);
    drop(input);
    child.wait_with_output().unwrap()
}

/// `backup --stream` writes a stream on stdout (its events and summary on stderr) that
/// `restore -` restores from stdin, to a point as well; a cut or damaged stream is refused
/// with its ESE error, leaving no staging directory.
#[test]
fn a_backup_streamed_to_stdout_restores_from_stdin() {
    let tmp = tempfile::tempdir().unwrap();
    let inst = tmp.path().join("inst");
    let d = inst.to_str().unwrap();
    let to = |name: &str| tmp.path().join(name).to_str().unwrap().to_string();
    ok(&["load", d, "--records", "500"]);
    ok(&["put", d, "marker", "one"]);
    let out = jetutil(&["backup", d, "--stream"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(&out.stdout[..8], b"JETDBSTR");
    // The generation the backup's begin finished is a 5 MiB file, nearly blank: its blank
    // blocks are not in the stream.
    assert!(out.stdout.len() < 2 << 20, "{} bytes", out.stdout.len());
    assert!(
        stderr.contains("full backup to the stream succeeded"),
        "{stderr}"
    );
    let stream = out.stdout;
    ok(&["put", d, "marker", "two"]);

    let r = to("r");
    let restored = jetutil_with_input(&["restore", "-", "--to", &r], &stream);
    let said = String::from_utf8_lossy(&restored.stdout);
    assert!(
        restored.status.success(),
        "{}",
        String::from_utf8_lossy(&restored.stderr)
    );
    assert!(said.contains("restored the stream on stdin"), "{said}");
    assert_eq!(ok(&["get", &r, "marker"]), "one\n");
    assert_eq!(ok(&["scan", &r, "--count"]), "501\n");
    assert!(!Path::new(&r).join(".jetdb-stream").exists());
    // A chosen staging directory, and a roll forward through the live logs.
    let r2 = to("r2");
    let staging = to("staging");
    let rolled = jetutil_with_input(
        &[
            "restore",
            "-",
            "--to",
            &r2,
            "--staging",
            &staging,
            "--roll-forward",
            d,
        ],
        &stream,
    );
    assert!(
        rolled.status.success(),
        "{}",
        String::from_utf8_lossy(&rolled.stderr)
    );
    assert_eq!(ok(&["get", &r2, "marker"]), "two\n");
    assert!(!Path::new(&staging).exists());

    // Cut short, and damaged.
    for (name, bytes, code) in [
        ("cut", stream[..stream.len() / 2].to_vec(), "-4001"),
        ("magic", [b"NOTASTRM", &stream[8..]].concat(), "-615"),
    ] {
        let r = to(name);
        let out = jetutil_with_input(&["restore", "-", "--to", &r], &bytes);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{name}: {stderr}");
        assert!(
            stderr.starts_with("error: JET_err") && stderr.contains(code),
            "{name}: {stderr}"
        );
        assert!(!Path::new(&r).join(".jetdb-stream").exists(), "{name}");
    }
    // --stream takes no backup directory.
    let out = jetutil(&["backup", d, "--stream", "--to", &to("bk")]);
    assert_eq!(out.status.code(), Some(2));
}
