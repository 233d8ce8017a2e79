//! A run is a pure function of its plan: the same seed gives the same trace hash, whatever the
//! thread count of the campaign around it; a changed plan is told apart and its first
//! divergent event named.

use jetsim::campaign::{CampaignOptions, campaign, plan_for, run_checked};
use jetsim::trace::{Keep, first_divergence};
use jetsim::{RunOptions, Step, run};

#[test]
fn the_same_seed_gives_the_same_trace() {
    for seed in [0, 1, 7, 42, 1234] {
        let plan = plan_for(seed, Some(150), None);
        let a = run(&plan, RunOptions::default());
        let b = run(&plan, RunOptions::default());
        assert_eq!(a.trace_hash, b.trace_hash, "seed {seed}");
        assert_eq!(a.coverage, b.coverage, "seed {seed}");
        assert!(
            a.trace.count() > 100,
            "the trace records the disk operations"
        );
        let (_, divergence) = run_checked(&plan, true);
        assert_eq!(divergence, None, "seed {seed}");
    }
    let hashes: std::collections::BTreeSet<u64> = (0..10)
        .map(|seed| run(&plan_for(seed, Some(60), None), RunOptions::default()).trace_hash)
        .collect();
    assert_eq!(hashes.len(), 10, "different seeds, different traces");
}

#[test]
fn a_changed_plan_is_told_apart_at_its_first_divergent_event() {
    let plan = plan_for(5, Some(80), None);
    let mut changed = plan.clone();
    let at = changed
        .steps
        .iter()
        .position(|s| matches!(s, Step::Put { .. }))
        .expect("a put");
    if let Step::Put { len, .. } = &mut changed.steps[at] {
        *len += 1;
    }
    let keep = RunOptions {
        keep: Keep::Everything,
        ..RunOptions::default()
    };
    let (a, b) = (run(&plan, keep), run(&changed, keep));
    assert_ne!(a.trace_hash, b.trace_hash);
    let (index, left, right) = first_divergence(&a.trace, &b.trace).expect("they differ");
    assert!(index > 0);
    let (left, right) = (left.unwrap(), right.unwrap());
    assert!(
        left.starts_with(&format!("step {at}:")) && right.starts_with(&format!("step {at}:")),
        "the first divergence is the changed step: {left} / {right}"
    );
}

#[test]
fn a_campaign_gives_the_same_results_on_one_thread_and_on_four() {
    let options = |jobs| CampaignOptions {
        start: 300,
        seeds: 24,
        jobs,
        shard: None,
        steps: Some(100),
        sabotage: None,
        check_determinism: false,
        progress: false,
    };
    let one = campaign(&options(1));
    let four = campaign(&options(4));
    let traces = |r: &jetsim::campaign::CampaignReport| {
        r.results
            .iter()
            .map(|s| (s.seed, s.trace.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(traces(&one), traces(&four));
    assert_eq!(one.coverage, four.coverage);
    assert_eq!(one.failed(), 0);
}
