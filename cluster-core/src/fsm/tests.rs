use super::*;
use crate::node::NodeStatus as S;
use proptest::prelude::*;

/// The whole table from design.md section 2, written out independently of `step`.
const LEGAL: &[(S, Action, S)] = &[
    (S::New, Action::Discover, S::Discovered),
    (S::Discovered, Action::Commission, S::Commissioning),
    (S::Decommissioned, Action::Commission, S::Commissioning),
    (S::Failed, Action::Commission, S::Commissioning),
    (S::Commissioning, Action::Succeed, S::Commissioned),
    (S::Commissioning, Action::Fail, S::Failed),
    (S::Commissioned, Action::Upgrade, S::Upgrading),
    (S::Upgraded, Action::Upgrade, S::Upgrading),
    (S::Upgrading, Action::Succeed, S::Upgraded),
    (S::Upgrading, Action::Fail, S::Failed),
    (S::Commissioned, Action::Decommission, S::Decommissioning),
    (S::Upgraded, Action::Decommission, S::Decommissioning),
    (S::Failed, Action::Decommission, S::Decommissioning),
    (S::Decommissioning, Action::Succeed, S::Decommissioned),
    (S::Decommissioning, Action::Fail, S::Failed),
    (S::Commissioned, Action::Reprovision, S::Commissioning),
    (S::Upgraded, Action::Reprovision, S::Commissioning),
    (S::Commissioned, Action::VerifyFailed, S::Failed),
    (S::Upgraded, Action::VerifyFailed, S::Failed),
];

#[test]
fn every_pair_matches_the_table() {
    let mut legal = 0;
    for from in NodeStatus::ALL {
        for action in Action::ALL {
            let expected = LEGAL
                .iter()
                .find(|(f, a, _)| *f == from && *a == action)
                .map(|(_, _, to)| *to);
            match (next("n1", from, action), expected) {
                (Ok(to), Some(want)) => {
                    assert_eq!(to, want, "{from} --{action}-->");
                    legal += 1;
                }
                (Err(e), None) => {
                    assert_eq!(
                        e,
                        IllegalTransition {
                            node: "n1".into(),
                            from,
                            action
                        }
                    );
                    let msg = e.to_string();
                    assert!(
                        msg.contains("n1")
                            && msg.contains(from.as_str())
                            && msg.contains(action.as_str()),
                        "{msg}"
                    );
                }
                (got, want) => panic!("{from} --{action}--> got {got:?}, table says {want:?}"),
            }
        }
    }
    assert_eq!(legal, LEGAL.len());
}

#[test]
fn membership_moves_reachability_and_asks_for_verification() {
    let t0 = chrono::DateTime::from_timestamp(1_000, 0).unwrap();
    let t1 = chrono::DateTime::from_timestamp(2_000, 0).unwrap();
    let down = Reachability::Unreachable { since: t0 };

    let o = on_membership(S::New, Reachability::Unknown, MembershipKind::Joined, t1);
    assert_eq!(
        (o.status, o.reachability, o.verify),
        (S::Discovered, Reachability::Reachable, false)
    );

    let o = on_membership(
        S::Commissioned,
        Reachability::Reachable,
        MembershipKind::Failed,
        t0,
    );
    assert_eq!(
        (o.status, o.reachability, o.verify),
        (S::Commissioned, down, false)
    );

    // A second failure report keeps the original outage start.
    let o = on_membership(S::Commissioned, down, MembershipKind::Failed, t1);
    assert_eq!(o.reachability, down);

    let o = on_membership(S::Commissioned, down, MembershipKind::Joined, t1);
    assert_eq!((o.reachability, o.verify), (Reachability::Reachable, true));
    let o = on_membership(
        S::Upgraded,
        Reachability::Left { since: t0 },
        MembershipKind::Joined,
        t1,
    );
    assert!(o.verify);

    // Only nodes in service are verified; the others just become reachable.
    for s in [
        S::Discovered,
        S::Failed,
        S::Decommissioned,
        S::Commissioning,
    ] {
        let o = on_membership(s, down, MembershipKind::Joined, t1);
        assert_eq!((o.status, o.verify), (s, false), "{s}");
    }

    let o = on_membership(
        S::Discovered,
        Reachability::Reachable,
        MembershipKind::Left,
        t1,
    );
    assert_eq!(o.reachability, Reachability::Left { since: t1 });
    let o = on_membership(S::Discovered, down, MembershipKind::Reaped, t1);
    assert_eq!(o.reachability, down);
    // A failed or departed member does not discover an enrolled node.
    let o = on_membership(S::New, Reachability::Unknown, MembershipKind::Failed, t1);
    assert_eq!(o.status, S::New);
}

#[test]
fn cluster_table() {
    use ClusterAction as A;
    use ClusterState as C;
    let all_states = [C::Empty, C::Bootstrapping, C::Active, C::Degraded];
    let all_actions = [
        A::Bootstrap,
        A::Bootstrapped,
        A::BootstrapFailed,
        A::MastersLost,
        A::MasterBack,
        A::MastersGone,
    ];
    let legal = [
        (C::Empty, A::Bootstrap, C::Bootstrapping),
        (C::Bootstrapping, A::Bootstrapped, C::Active),
        (C::Bootstrapping, A::BootstrapFailed, C::Empty),
        (C::Active, A::MastersLost, C::Degraded),
        (C::Degraded, A::MasterBack, C::Active),
        (C::Active, A::MastersGone, C::Empty),
        (C::Degraded, A::MastersGone, C::Empty),
    ];
    for s in all_states {
        for a in all_actions {
            let want = legal
                .iter()
                .find(|(f, x, _)| *f == s && *x == a)
                .map(|l| l.2);
            assert_eq!(cluster_step(s, a), want, "{s:?} {a:?}");
        }
    }
}

fn any_action() -> impl Strategy<Value = Action> {
    proptest::sample::select(Action::ALL.to_vec())
}

proptest! {
    /// Random action sequences never leave the defined statuses, refused actions
    /// change nothing, and replaying the accepted actions gives the same result.
    #[test]
    fn random_sequences_stay_in_the_table(actions in proptest::collection::vec(any_action(), 0..64)) {
        let mut status = S::New;
        let mut accepted = Vec::new();
        for action in actions {
            match next("n", status, action) {
                Ok(to) => {
                    prop_assert!(NodeStatus::ALL.contains(&to));
                    prop_assert!(LEGAL.contains(&(status, action, to)));
                    accepted.push(action);
                    status = to;
                }
                Err(e) => prop_assert_eq!(e.from, status),
            }
        }
        let replayed = accepted
            .iter()
            .try_fold(S::New, |s, a| next("n", s, *a));
        prop_assert_eq!(replayed, Ok(status));
    }

    /// In-progress statuses are only left through a job outcome.
    #[test]
    fn in_progress_only_ends_with_an_outcome(action in any_action()) {
        for s in NodeStatus::ALL.into_iter().filter(|s| s.in_progress()) {
            if let Some(to) = step(s, action) {
                prop_assert!(matches!(action, Action::Succeed | Action::Fail), "{} {}", s, action);
                prop_assert!(!to.in_progress());
            }
        }
    }
}
