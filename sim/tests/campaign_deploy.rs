//! The checked-in ways to spread a campaign over machines, run as far as this machine allows:
//! the GitHub Actions workflow's shell steps (each shard of its matrix, then the merge) and
//! the Kubernetes Indexed Job's container command (each index), against the jetsim just built,
//! with tiny campaigns. `scripts/check-deploy.sh` adds the schema validators.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_yaml_ng::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn yaml(path: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(repo().join(path)).unwrap();
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|doc| serde::Deserialize::deserialize(doc).expect("valid YAML"))
        .collect()
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => panic!("not a scalar: {other:?}"),
    }
}

/// A `${{ … }}` expression's value: the matrix and strategy are known; anything else must be
/// in `known` (the test's overrides).
fn substitute(s: &str, shard: u64, total: u64) -> Option<String> {
    let mut out = s
        .replace("${{ matrix.shard }}", &shard.to_string())
        .replace("${{ strategy.job-total }}", &total.to_string());
    if out.contains("${{") {
        return None;
    }
    out.shrink_to_fit();
    Some(out)
}

/// Every `env:` mapping's entries, substituted; an entry with an expression the test cannot
/// evaluate must be one the test overrides.
fn env_of(
    maps: &[&Value],
    shard: u64,
    total: u64,
    overrides: &BTreeMap<&str, String>,
) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    for map in maps {
        let Some(map) = map.get("env").and_then(Value::as_mapping) else {
            continue;
        };
        for (k, v) in map {
            let (k, v) = (text(k), text(v));
            match substitute(&v, shard, total) {
                Some(v) => env.insert(k, v),
                None if overrides.contains_key(k.as_str()) => None,
                None => panic!("{k}: cannot evaluate {v:?} locally"),
            };
        }
    }
    for (k, v) in overrides {
        env.insert(k.to_string(), v.clone());
    }
    env
}

/// Runs a job's `run:` steps (but its cargo build: the test's jetsim is built) in the
/// repository; returns whether all succeeded and their output.
fn run_job(
    workflow: &Value,
    job: &str,
    shard: u64,
    total: u64,
    overrides: &BTreeMap<&str, String>,
) -> (bool, String) {
    let job_v = &workflow["jobs"][job];
    let mut output = String::new();
    for step in job_v["steps"].as_sequence().expect("steps") {
        let Some(run) = step.get("run") else { continue };
        let run = text(run);
        if run.trim_start().starts_with("cargo build") {
            continue;
        }
        let run = substitute(&run, shard, total)
            .unwrap_or_else(|| panic!("cannot evaluate a run step locally: {run}"));
        let env = env_of(&[workflow, job_v, step], shard, total, overrides);
        let out = Command::new("bash")
            .args(["-e", "-c", &run])
            .current_dir(repo())
            .env_remove("JETSIM_SHARD")
            .env_remove("JETSIM_SHARDS")
            .env_remove("JOB_COMPLETION_INDEX")
            .envs(&env)
            .output()
            .expect("bash runs");
        output += &String::from_utf8_lossy(&out.stdout);
        output += &String::from_utf8_lossy(&out.stderr);
        if !out.status.success() {
            return (false, output);
        }
    }
    (true, output)
}

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn the_workflows_shards_and_merge_run_locally() {
    let workflow = yaml(".github/workflows/campaign.yml").remove(0);
    // Nightly, by hand; every shard reports even when one fails, and the merge runs anyway.
    let on = &workflow["on"];
    assert!(on.get("schedule").is_some() && on.get("workflow_dispatch").is_some());
    let shards = &workflow["jobs"]["shards"];
    assert_eq!(shards["strategy"]["fail-fast"], Value::Bool(false));
    let matrix: Vec<u64> = shards["strategy"]["matrix"]["shard"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    let n = matrix.len() as u64;
    assert_eq!(matrix, (1..=n).collect::<Vec<_>>());
    let steps = |job: &str| {
        workflow["jobs"][job]["steps"]
            .as_sequence()
            .unwrap()
            .clone()
    };
    let upload = steps("shards")
        .into_iter()
        .find(|s| {
            s.get("uses")
                .is_some_and(|u| text(u).starts_with("actions/upload-artifact"))
        })
        .expect("the shard uploads its reports");
    assert_eq!(
        upload.get("if").map(text).as_deref(),
        Some("always()"),
        "a failed shard's reports are uploaded too"
    );
    let merge = &workflow["jobs"]["merge"];
    assert_eq!(merge.get("needs").map(text).as_deref(), Some("shards"));
    assert_eq!(
        merge.get("if").map(text).as_deref(),
        Some("${{ !cancelled() }}"),
        "the merge runs after a failed shard too, but not after a cancel"
    );
    // Re-running a failed shard uploads under the same name: v4 refuses that (409) unless
    // told to overwrite.
    let uploads: Vec<Value> = ["shards", "merge"]
        .iter()
        .flat_map(|job| steps(job))
        .filter(|s| {
            s.get("uses")
                .is_some_and(|u| text(u).starts_with("actions/upload-artifact"))
        })
        .collect();
    assert_eq!(uploads.len(), 2);
    for u in &uploads {
        assert_eq!(u["with"]["overwrite"], Value::Bool(true), "{u:?}");
    }
    // The artifact round trip: every shard's upload name matches the download pattern (and
    // the merged report's does not), merged into the one directory the merge step reads,
    // which is the directory the shard step writes its .json reports to and uploads.
    let reports_dir = text(&workflow["env"]["REPORTS"]);
    let download = steps("merge")
        .into_iter()
        .find(|s| {
            s.get("uses")
                .is_some_and(|u| text(u).starts_with("actions/download-artifact"))
        })
        .expect("the merge downloads the reports");
    let pattern = text(&download["with"]["pattern"]);
    let (prefix, suffix) = pattern.split_once('*').expect("a pattern with one *");
    let matches = |name: &str| {
        name.len() >= prefix.len() + suffix.len()
            && name.starts_with(prefix)
            && name.ends_with(suffix)
    };
    for k in &matrix {
        let name = substitute(&text(&upload["with"]["name"]), *k, n).unwrap();
        assert!(matches(&name), "{name} against {pattern}");
    }
    assert!(!matches(&text(&uploads[1]["with"]["name"])));
    assert_eq!(download["with"]["merge-multiple"], Value::Bool(true));
    assert_eq!(text(&download["with"]["path"]), reports_dir);
    assert_eq!(
        text(&upload["with"]["path"]).trim_end_matches('/'),
        reports_dir
    );
    let shard_script = std::fs::read_to_string(repo().join("scripts/campaign-shard.sh")).unwrap();
    assert!(shard_script.contains(r#"--json "$reports/$name.json""#));
    assert!(shard_script.contains(r#"reports="${REPORTS:-reports}""#));
    let merge_script = std::fs::read_to_string(repo().join("scripts/campaign-merge.sh")).unwrap();
    assert!(merge_script.contains(r#"reports="${REPORTS:-reports}""#));
    assert!(merge_script.contains(r#"files=("$reports"/shard-*.json)"#));
    let junit = steps("merge")
        .into_iter()
        .find(|s| s.get("uses").is_some_and(|u| text(u).contains("junit")))
        .expect("the merge publishes the JUnit");
    assert_eq!(text(&junit["with"]["report_paths"]), "reports/all.xml");

    let dir = tempfile::tempdir().unwrap();
    let overrides = BTreeMap::from([
        ("JETSIM", env!("CARGO_BIN_EXE_jetsim").to_owned()),
        ("REPORTS", dir.path().to_str().unwrap().to_owned()),
        ("JETSIM_SEEDS", "16".to_owned()),
        ("JETSIM_DURATION", String::new()),
        // At night there are no inputs: the start comes from the run number.
        ("JETSIM_START", String::new()),
        ("GITHUB_RUN_NUMBER", "7".to_owned()),
    ]);
    for k in 1..=n {
        let (ok, out) = run_job(&workflow, "shards", k, n, &overrides);
        assert!(ok, "shard {k}: {out}");
        assert!(
            out.contains(&format!("shard {k}/{n} (from JETSIM_SHARD)")),
            "{out}"
        );
    }
    let (ok, out) = run_job(&workflow, "merge", 0, n, &overrides);
    assert!(ok, "{out}");
    let merged = read_json(&dir.path().join("all.json"));
    assert_eq!(merged["seeds"], 16);
    assert_eq!(merged["shards"], n);
    assert_eq!(merged["ok"], true);
    assert_eq!(merged["start"], 7_000_000_000u64, "run 7's seeds");
    let xml = std::fs::read_to_string(dir.path().join("all.xml")).unwrap();
    // All passed: one case per shard for its passing seeds, none per seed.
    assert_eq!(xml.matches(" seeds passed (").count() as u64, n);
    assert_eq!(xml.matches("<testcase name=\"seed ").count(), 0);
    // An input start wins over the run number.
    let mut by_hand = overrides.clone();
    by_hand.insert("JETSIM_START", "500".to_owned());
    let elsewhere = tempfile::tempdir().unwrap();
    by_hand.insert("REPORTS", elsewhere.path().to_str().unwrap().to_owned());
    let (ok, out) = run_job(&workflow, "shards", 1, n, &by_hand);
    assert!(ok && out.contains("--start 500 "), "{out}");

    // A shard that died: the merge job fails.
    std::fs::remove_file(dir.path().join(format!("shard-{n}.json"))).unwrap();
    let (ok, out) = run_job(&workflow, "merge", 0, n, &overrides);
    assert!(
        !ok && out.contains(&format!("FAILED shard {n}/{n}: no report")),
        "{out}"
    );
    // No shard reported at all: it fails too, saying so.
    let empty = tempfile::tempdir().unwrap();
    let mut none = overrides.clone();
    none.insert("REPORTS", empty.path().to_str().unwrap().to_owned());
    let (ok, out) = run_job(&workflow, "merge", 0, n, &none);
    assert!(!ok && out.contains("no shard reports"), "{out}");
}

#[test]
fn the_kubernetes_job_runs_one_shard_per_index_into_the_volume() {
    let docs = yaml("deploy/k8s/campaign-job.yaml");
    let job = docs.iter().find(|d| d["kind"] == "Job").expect("a Job");
    assert_eq!(text(&job["apiVersion"]), "batch/v1");
    let spec = &job["spec"];
    assert_eq!(text(&spec["completionMode"]), "Indexed");
    let n = spec["completions"].as_u64().unwrap();
    assert_eq!(spec["parallelism"].as_u64(), Some(n));
    assert!(spec["backoffLimitPerIndex"].as_u64().is_some());
    let pod = &spec["template"]["spec"];
    assert_eq!(text(&pod["restartPolicy"]), "Never");
    let container = &pod["containers"][0];
    let env: BTreeMap<String, String> = container["env"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter(|e| e.get("value").is_some())
        .map(|e| (text(&e["name"]), text(&e["value"])))
        .collect();
    assert_eq!(
        env["JETSIM_SHARDS"],
        n.to_string(),
        "JETSIM_SHARDS = completions"
    );
    assert!(container["resources"]["requests"]["cpu"] != Value::Null);
    // The reports go to the claim's volume, one file per index.
    let mount = text(&container["volumeMounts"][0]["mountPath"]);
    let volume = text(&container["volumeMounts"][0]["name"]);
    let claim = pod["volumes"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|v| text(&v["name"]) == volume)
        .map(|v| text(&v["persistentVolumeClaim"]["claimName"]))
        .expect("the mount's volume");
    assert!(
        docs.iter()
            .any(|d| d["kind"] == "PersistentVolumeClaim" && text(&d["metadata"]["name"]) == claim)
    );
    let args: Vec<String> = container["args"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(text)
        .collect();
    // Each run in a directory of its own, named by the Job's uid: a stale report of an
    // earlier run cannot stand in for a shard of this one that died.
    let json = args.iter().position(|a| a == "--json").expect("--json");
    assert_eq!(
        args[json + 1],
        format!("{mount}/$(JETSIM_RUN)/shard-$(JOB_COMPLETION_INDEX).json")
    );
    let run = container["env"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|e| text(&e["name"]) == "JETSIM_RUN")
        .expect("JETSIM_RUN");
    assert_eq!(
        text(&run["valueFrom"]["fieldRef"]["fieldPath"]),
        "metadata.labels['batch.kubernetes.io/controller-uid']"
    );

    // Each index's command, as Kubernetes expands it, with the mount here and a 1 s box: a
    // first run of every index, then a second run whose last index died.
    let dir = tempfile::tempdir().unwrap();
    let runs = [("uid-1", n), ("uid-2", n - 1)];
    for (uid, index) in runs
        .iter()
        .flat_map(|(uid, n)| (0..*n).map(move |i| (uid, i)))
    {
        let args: Vec<String> = args
            .iter()
            .map(|a| {
                a.replace("$(JOB_COMPLETION_INDEX)", &index.to_string())
                    .replace("$(JETSIM_RUN)", uid)
                    .replace(&mount, dir.path().to_str().unwrap())
            })
            .map(|a| if a == "30m" { "1s".to_owned() } else { a })
            .collect();
        assert!(args.contains(&"1s".to_owned()), "the time box: {args:?}");
        let out = Command::new(env!("CARGO_BIN_EXE_jetsim"))
            .args(&args)
            .args(["--steps", "40"])
            .env_remove("JETSIM_SHARD")
            .env("JETSIM_SHARDS", &env["JETSIM_SHARDS"])
            .env("JOB_COMPLETION_INDEX", index.to_string())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{stdout}");
        assert!(stdout.starts_with(&format!(
            "shard {}/{n} (from JOB_COMPLETION_INDEX",
            index + 1
        )));
    }
    // The merge of a run's directory, as the README's merge pod globs it.
    let merge = |uid: &str| {
        let out = Command::new("bash")
            .args(["-c", r#""$0" merge "$1"/shard-*.json"#])
            .arg(env!("CARGO_BIN_EXE_jetsim"))
            .arg(dir.path().join(uid))
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, stdout) = merge("uid-1");
    assert_eq!(code, Some(0), "{stdout}");
    assert!(
        stdout.contains(&format!("over {n} of {n} shards")),
        "{stdout}"
    );
    let (code, stdout) = merge("uid-2");
    assert_eq!(code, Some(1), "{stdout}");
    assert!(
        stdout.contains(&format!("FAILED shard {n}/{n}: no report")),
        "{stdout}"
    );
}

/// `scripts/k8s-wait-job.sh` against a stand-in `kubectl` printing the Job's held
/// conditions: it returns on Failed as well as on Complete, and says which.
#[test]
fn the_job_wait_returns_on_failed_as_well_as_complete() {
    let dir = tempfile::tempdir().unwrap();
    let kubectl = dir.path().join("kubectl");
    // Prints the conditions in $CONDITIONS after a first look that finds none.
    std::fs::write(
        &kubectl,
        "#!/usr/bin/env bash\n\
         [ \"$*\" = \"get job/jetsim-campaign -o jsonpath={range .status.conditions[?(@.status==\\\"True\\\")]}{.type}{\\\"\\\\n\\\"}{end}\" ] || exit 9\n\
         if [ -e \"$0.looked\" ]; then printf '%b' \"$CONDITIONS\"; else touch \"$0.looked\"; fi\n",
    )
    .unwrap();
    std::fs::set_permissions(
        &kubectl,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    for (conditions, code, says) in [
        ("Complete\\n", Some(0), "complete"),
        ("FailureTarget\\nFailed\\n", Some(1), "failed"),
        ("", Some(2), "still running"),
    ] {
        let _ = std::fs::remove_file(dir.path().join("kubectl.looked"));
        let out = Command::new(repo().join("scripts/k8s-wait-job.sh"))
            .args(["jetsim-campaign", "1"])
            .env("KUBECTL", &kubectl)
            .env("CONDITIONS", conditions)
            .env("POLL", "0.2")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), code, "{conditions:?}: {text}");
        assert!(text.contains(says), "{conditions:?}: {text}");
    }
}
