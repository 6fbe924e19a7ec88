#![allow(clippy::disallowed_methods)] // a test / benchmark: real time
//! The authorizer's cost per check with 10 and with 10,000 ACLs:
//! `cargo run --release -p cairn-acl --example authorizer_bench`.
//! Half the bindings are literal topic names, a quarter prefixes, a quarter
//! groups; the checks ask for topics that match nothing, a literal, and a
//! prefix, round-robin.

use std::hint::black_box;
use std::time::Instant;

use cairn_acl::AclBinding;
use cairn_acl::AclIndex;
use cairn_acl::AclOperation;
use cairn_acl::PatternType;
use cairn_acl::Permission;
use cairn_acl::Principal;
use cairn_acl::ResourceType;

fn bindings(n: usize) -> Vec<AclBinding> {
    (0..n)
        .map(|i| {
            let (t, name, pattern) = match i % 4 {
                0 | 1 => (
                    ResourceType::Topic,
                    format!("topic-{i}"),
                    PatternType::Literal,
                ),
                2 => (
                    ResourceType::Topic,
                    format!("pre-{i}."),
                    PatternType::Prefixed,
                ),
                _ => (
                    ResourceType::Group,
                    format!("group-{i}"),
                    PatternType::Literal,
                ),
            };
            AclBinding {
                principal: format!("User:user-{}", i % 100),
                host: "*".into(),
                resource_type: t,
                resource_name: name,
                pattern_type: pattern,
                operation: AclOperation::Read,
                permission: Permission::Allow,
            }
        })
        .collect()
}

fn main() {
    const CHECKS: usize = 2_000_000;
    println!("acls\tns/check (median of 5)");
    for n in [10usize, 1_000, 10_000] {
        let acls = bindings(n);
        let built = Instant::now();
        let index = AclIndex::new(&acls);
        let build_ms = built.elapsed().as_secs_f64() * 1e3;
        let who = Principal::user("user-4");
        let names = ["nothing-here", "topic-4", "pre-2.orders"];
        let mut runs = Vec::new();
        for _ in 0..5 {
            let start = Instant::now();
            for i in 0..CHECKS {
                black_box(index.decide(
                    &who,
                    None,
                    AclOperation::Read,
                    ResourceType::Topic,
                    names[i % names.len()],
                    false,
                ));
            }
            runs.push(start.elapsed().as_nanos() as f64 / CHECKS as f64);
        }
        runs.sort_by(|a, b| a.total_cmp(b));
        println!("{n}\t{:.0}\t(index built in {build_ms:.1} ms)", runs[2]);
    }
}
