//! Every scenario under `scenarios/` (checked-in plans and shrunk failures) meets its
//! expectation: it passes, or fires the oracle it names.

use std::path::{Path, PathBuf};

use jetsim::Scenario;

fn scenario_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("a directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            scenario_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "json") {
            out.push(path);
        }
    }
}

#[test]
fn every_scenario_meets_its_expectation() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let mut files = Vec::new();
    scenario_files(&root, &mut files);
    assert!(
        files.len() >= 5,
        "the regression scenarios are missing from {}",
        root.display()
    );
    let mut failures = Vec::new();
    for path in &files {
        let text = std::fs::read_to_string(path).unwrap();
        let scenario: Scenario = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{} is not a scenario: {e}", path.display()));
        assert!(
            !scenario.description.trim().is_empty(),
            "{} says nothing of what it is for",
            path.display()
        );
        if let Err(why) = scenario.check() {
            failures.push(format!("{}: {why}", path.display()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
