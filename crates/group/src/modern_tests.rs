use super::*;

fn topics(list: &[(&str, u64, u32)]) -> Topics {
    list.iter()
        .map(|(n, id, p)| {
            (
                n.to_string(),
                TopicInfo {
                    id: *id,
                    partitions: *p,
                },
            )
        })
        .collect()
}

fn join(id: &str, subs: &[&str]) -> Heartbeat {
    Heartbeat {
        member_id: id.into(),
        member_epoch: 0,
        rebalance_timeout_ms: 30_000,
        subscribed_topics: Some(subs.iter().map(|s| s.to_string()).collect()),
        owned: Some(Partitions::new()),
        ..Heartbeat::default()
    }
}

fn beat(id: &str, epoch: i32, owned: &Partitions) -> Heartbeat {
    Heartbeat {
        member_id: id.into(),
        member_epoch: epoch,
        rebalance_timeout_ms: -1,
        owned: Some(owned.clone()),
        ..Heartbeat::default()
    }
}

fn count(p: &Partitions) -> usize {
    p.values().map(BTreeSet::len).sum()
}

/// No partition is owned (assigned or pending revocation) by two members.
fn assert_exclusive(g: &ModernGroup) {
    let mut seen = BTreeSet::new();
    for m in g.members.values() {
        for tp in flatten(&m.assigned)
            .into_iter()
            .chain(flatten(&m.pending_revocation))
        {
            assert!(seen.insert(tp), "{tp:?} owned twice in {g:#?}");
        }
    }
}

/// A client: what it owns and its epoch, as the last answer told it.
#[derive(Default, Clone)]
struct Client {
    epoch: i32,
    owned: Partitions,
}

fn run(g: &mut ModernGroup, t: &Topics, c: &mut BTreeMap<String, Client>, id: &str) {
    let me = c.get(id).cloned().unwrap_or_default();
    let hb = if me.epoch == 0 {
        join(id, &["orders"])
    } else {
        beat(id, me.epoch, &me.owned)
    };
    let a = heartbeat(g, hb, t, 100).expect("a heartbeat");
    let me = c.entry(id.to_string()).or_default();
    me.epoch = a.member_epoch;
    if let Some(p) = a.assignment {
        me.owned = p;
    }
    assert_exclusive(g);
}

#[test]
fn a_second_member_gets_half_only_after_the_first_released_it() {
    let t = topics(&[("orders", 1, 4)]);
    let mut g = ModernGroup::default();
    let mut c = BTreeMap::new();
    run(&mut g, &t, &mut c, "a");
    assert_eq!(count(&c["a"].owned), 4);
    assert_eq!(c["a"].epoch, 1);
    // b joins: the target splits, but a still owns everything.
    run(&mut g, &t, &mut c, "b");
    assert_eq!(g.group_epoch, 2);
    assert_eq!(count(&c["b"].owned), 0, "nothing is free yet");
    assert_eq!(g.members["b"].state, MemberState::UnreleasedPartitions);
    assert_eq!(state_name(&g), "Reconciling");
    // a is told to keep two: it revokes the others, epoch unchanged.
    run(&mut g, &t, &mut c, "a");
    assert_eq!(c["a"].epoch, 1);
    assert_eq!(count(&c["a"].owned), 2);
    assert_eq!(g.members["a"].state, MemberState::UnrevokedPartitions);
    // a's next heartbeat says it gave them up: it moves to epoch 2.
    run(&mut g, &t, &mut c, "a");
    assert_eq!(c["a"].epoch, 2);
    // b now gets them.
    run(&mut g, &t, &mut c, "b");
    assert_eq!(count(&c["b"].owned), 2);
    assert_eq!(state_name(&g), "Stable");
}

#[test]
fn members_coming_and_going_never_share_a_partition_and_settle_balanced() {
    let t = topics(&[("orders", 1, 7), ("other", 2, 3)]);
    let mut g = ModernGroup::default();
    let mut c: BTreeMap<String, Client> = BTreeMap::new();
    // A fixed pseudo-random schedule (xorshift).
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let ids = ["a", "b", "c", "d", "e"];
    for _ in 0..2_000 {
        let id = ids[(next() % ids.len() as u64) as usize];
        if next() % 10 == 0 && c.contains_key(id) {
            remove_member(&mut g, id, &t);
            c.remove(id);
            assert_exclusive(&g);
            continue;
        }
        run(&mut g, &t, &mut c, id);
    }
    // Everyone heartbeats until nothing changes.
    for _ in 0..5 {
        let members: Vec<String> = c.keys().cloned().collect();
        for id in members {
            run(&mut g, &t, &mut c, &id);
        }
    }
    assert_eq!(state_name(&g), "Stable");
    let counts: Vec<usize> = c.values().map(|m| count(&m.owned)).collect();
    assert_eq!(counts.iter().sum::<usize>(), 7, "{counts:?}");
    let (min, max) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
    assert!(max - min <= 1, "{counts:?}");
}

#[test]
fn epochs_fence_zombies_but_forgive_a_lost_answer() {
    let t = topics(&[("orders", 1, 2)]);
    let mut g = ModernGroup::default();
    let mut c = BTreeMap::new();
    run(&mut g, &t, &mut c, "a");
    let owned = c["a"].owned.clone();
    assert!(matches!(
        heartbeat(&mut g, beat("a", 5, &owned), &t, 10),
        Err(HeartbeatError::FencedMemberEpoch(_))
    ));
    assert!(matches!(
        heartbeat(&mut g, beat("nobody", 1, &owned), &t, 10),
        Err(HeartbeatError::UnknownMember(_))
    ));
    // b joins and a moves to epoch 2 after revoking; an answer lost: a
    // sends epoch 1 again, owning a subset of what it has, and goes on.
    run(&mut g, &t, &mut c, "b");
    run(&mut g, &t, &mut c, "a");
    run(&mut g, &t, &mut c, "a");
    assert_eq!(c["a"].epoch, 2);
    let mine = g.members["a"].assigned.clone();
    let a = heartbeat(&mut g, beat("a", 1, &mine), &t, 10).unwrap();
    assert_eq!(a.member_epoch, 2);
    // Owning more than it has now is a zombie's view: fenced.
    assert!(matches!(
        heartbeat(&mut g, beat("a", 1, &owned), &t, 10),
        Err(HeartbeatError::FencedMemberEpoch(_))
    ));
}

#[test]
fn a_static_member_restarting_keeps_its_partitions_without_a_new_epoch() {
    let t = topics(&[("orders", 1, 4)]);
    let mut g = ModernGroup::default();
    let mut hb = join("a1", &["orders"]);
    hb.instance_id = Some("i-a".into());
    heartbeat(&mut g, hb.clone(), &t, 10).unwrap();
    let mut hb_b = join("b", &["orders"]);
    hb_b.instance_id = None;
    let mut c = BTreeMap::new();
    c.insert(
        "a1".to_string(),
        Client {
            epoch: 1,
            owned: g.members["a1"].assigned.clone(),
        },
    );
    heartbeat(&mut g, hb_b, &t, 10).unwrap();
    c.insert(
        "b".to_string(),
        Client {
            epoch: g.members["b"].member_epoch,
            owned: Partitions::new(),
        },
    );
    for _ in 0..3 {
        run(&mut g, &t, &mut c, "a1");
        run(&mut g, &t, &mut c, "b");
    }
    assert_eq!(state_name(&g), "Stable");
    let epoch = g.group_epoch;
    let had = g.members["a1"].assigned.clone();
    // It leaves for a restart...
    let mut leave = beat("a1", c["a1"].epoch, &had);
    leave.member_epoch = STATIC_LEAVE_EPOCH;
    leave.instance_id = Some("i-a".into());
    assert_eq!(heartbeat(&mut g, leave, &t, 10).unwrap().member_epoch, -2);
    // ...while it is away, its instance id cannot be taken by a live one...
    let mut other = join("a2", &["orders"]);
    other.instance_id = Some("i-a".into());
    let back = heartbeat(&mut g, other, &t, 10).unwrap();
    assert_eq!(back.replaced.as_deref(), Some("a1"));
    assert_eq!(back.assignment, Some(had));
    assert_eq!(g.group_epoch, epoch, "no rebalance");
    // ...and a second one with the same instance id is refused.
    let mut third = join("a3", &["orders"]);
    third.instance_id = Some("i-a".into());
    assert!(matches!(
        heartbeat(&mut g, third, &t, 10),
        Err(HeartbeatError::UnreleasedInstanceId(_))
    ));
}

#[test]
fn new_partitions_and_subscriptions_bump_the_group_epoch() {
    let mut t = topics(&[("orders", 1, 2)]);
    let mut g = ModernGroup::default();
    let mut c = BTreeMap::new();
    run(&mut g, &t, &mut c, "a");
    assert_eq!(g.group_epoch, 1);
    t.get_mut("orders").unwrap().partitions = 3;
    run(&mut g, &t, &mut c, "a");
    assert_eq!(g.group_epoch, 2);
    assert_eq!(count(&c["a"].owned), 3);
    // A regex subscription matches whole names.
    let mut hb = beat("a", c["a"].epoch, &c["a"].owned);
    hb.subscribed_topics = Some(vec![]);
    hb.subscribed_regex = Some("ord.*".into());
    t.insert(
        "ord".into(),
        TopicInfo {
            id: 2,
            partitions: 1,
        },
    );
    t.insert(
        "xorders".into(),
        TopicInfo {
            id: 3,
            partitions: 1,
        },
    );
    heartbeat(&mut g, hb, &t, 10).unwrap();
    assert_eq!(subscribed(&g.members["a"], &t), BTreeSet::from([1, 2]));
    let mut bad = beat("a", g.members["a"].member_epoch, &Partitions::new());
    bad.subscribed_regex = Some("(".into());
    assert!(matches!(
        heartbeat(&mut g, bad, &t, 10),
        Err(HeartbeatError::InvalidRegularExpression(_))
    ));
}

#[test]
fn limits_and_bad_requests_are_refused() {
    let t = topics(&[("orders", 1, 2)]);
    let mut g = ModernGroup::default();
    heartbeat(&mut g, join("a", &["orders"]), &t, 1).unwrap();
    assert!(matches!(
        heartbeat(&mut g, join("b", &["orders"]), &t, 1),
        Err(HeartbeatError::GroupMaxSizeReached(_))
    ));
    let mut hb = join("c", &["orders"]);
    hb.server_assignor = Some("sticky".into());
    assert!(matches!(
        heartbeat(&mut g, hb, &t, 10),
        Err(HeartbeatError::UnsupportedAssignor(_))
    ));
    assert!(matches!(
        heartbeat(&mut g, join("", &["orders"]), &t, 10),
        Err(HeartbeatError::InvalidRequest(_))
    ));
}

fn subs(list: &[(&str, &[u64])]) -> BTreeMap<String, (BTreeSet<TopicId>, Partitions)> {
    list.iter()
        .map(|(id, s)| {
            (
                id.to_string(),
                (s.iter().copied().collect(), Partitions::new()),
            )
        })
        .collect()
}

#[test]
fn range_gives_contiguous_ranges_in_member_order() {
    let members = subs(&[("a", &[1, 2]), ("b", &[1, 2]), ("c", &[1])]);
    let out = range(&members, &BTreeMap::from([(1, 5), (2, 2)]));
    assert_eq!(out["a"][&1], BTreeSet::from([0, 1]));
    assert_eq!(out["b"][&1], BTreeSet::from([2, 3]));
    assert_eq!(out["c"][&1], BTreeSet::from([4]));
    assert_eq!(out["a"][&2], BTreeSet::from([0]));
    assert_eq!(out["b"][&2], BTreeSet::from([1]));
}

#[test]
fn uniform_is_balanced_and_sticky() {
    let topics = BTreeMap::from([(1, 6)]);
    let mut members = subs(&[("a", &[1]), ("b", &[1])]);
    let first = uniform(&members, &topics);
    assert_eq!(count(&first["a"]), 3);
    for (id, (_, prev)) in members.iter_mut() {
        *prev = first[id].clone();
    }
    members.insert("c".into(), (BTreeSet::from([1]), Partitions::new()));
    let second = uniform(&members, &topics);
    for id in ["a", "b", "c"] {
        assert_eq!(count(&second[id]), 2, "{second:?}");
    }
    // a and b only gave up partitions; nothing moved between them.
    for id in ["a", "b"] {
        assert!(flatten(&second[id]).is_subset(&flatten(&first[id])));
    }
}
