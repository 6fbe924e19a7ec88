//! `cairn acl add | list | remove`.

use anyhow::{bail, Context, Result};
use cairn_client::proto::{AclBinding, AclFilter};
use cairn_client::Client;
use serde_json::json;

use crate::cli::{AclArgs, AclCommand, AclSelector, Format};
use crate::connect::connect;
use crate::output::render_table;

/// Runs an ACL command.
pub async fn run(args: AclArgs) -> Result<()> {
    let client = connect(&args.conn).await?;
    match args.command {
        AclCommand::Add { selector } => add(&client, &selector).await,
        AclCommand::List { selector, format } => list(&client, &selector, format).await,
        AclCommand::Remove { selector, format } => remove(&client, &selector, format).await,
    }
}

/// The resource the flags name: (type, name).
fn resource(s: &AclSelector) -> Option<(&'static str, String)> {
    if let Some(t) = &s.topic {
        Some(("TOPIC", t.clone()))
    } else if let Some(g) = &s.group {
        Some(("GROUP", g.clone()))
    } else if s.cluster {
        Some(("CLUSTER", "kafka-cluster".to_owned()))
    } else {
        s.transactional_id
            .as_ref()
            .map(|t| ("TRANSACTIONAL_ID", t.clone()))
    }
}

fn pattern(s: &AclSelector) -> &'static str {
    if s.prefixed {
        "PREFIXED"
    } else {
        "LITERAL"
    }
}

/// One binding per --operation on the resource the flags name, for
/// `principal` (empty for a role's bindings).
pub(crate) fn bindings_for(s: &AclSelector, principal: &str) -> Result<Vec<AclBinding>> {
    let Some((resource_type, resource_name)) = resource(s) else {
        bail!("name a resource: --topic, --group, --cluster or --transactional-id");
    };
    if s.operations.is_empty() {
        bail!("name at least one --operation (e.g. READ)");
    }
    Ok(s.operations
        .iter()
        .map(|op| AclBinding {
            principal: principal.to_owned(),
            host: s.host.clone().unwrap_or_else(|| "*".to_owned()),
            resource_type: resource_type.to_owned(),
            resource_name: resource_name.clone(),
            pattern_type: pattern(s).to_owned(),
            operation: op.to_ascii_uppercase().replace('-', "_"),
            permission: if s.deny { "DENY" } else { "ALLOW" }.to_owned(),
        })
        .collect())
}

async fn add(client: &Client, s: &AclSelector) -> Result<()> {
    let Some(principal) = &s.principal else {
        bail!("--principal is required (e.g. User:alice)");
    };
    let bindings = bindings_for(s, principal)?;
    let n = bindings.len();
    client
        .create_acls(bindings)
        .await
        .context("cannot add the ACLs")?;
    eprintln!("{n} ACL binding(s) added");
    Ok(())
}

fn filter(s: &AclSelector) -> Result<AclFilter> {
    if s.operations.len() > 1 {
        bail!("a filter names at most one --operation");
    }
    let (resource_type, resource_name) = match resource(s) {
        Some((t, n)) => (t.to_owned(), n),
        None => (String::new(), String::new()),
    };
    Ok(AclFilter {
        principal: s.principal.clone().unwrap_or_default(),
        host: s.host.clone().unwrap_or_default(),
        resource_type,
        resource_name,
        pattern_type: if s.prefixed {
            "PREFIXED".to_owned()
        } else {
            String::new()
        },
        operation: s.operations.first().cloned().unwrap_or_default(),
        permission: if s.deny {
            "DENY".to_owned()
        } else {
            String::new()
        },
    })
}

/// A binding as `--format json` shows it (a role's without a principal).
pub(crate) fn binding_json(b: &AclBinding) -> serde_json::Value {
    let mut v = json!({
        "host": b.host,
        "resource_type": b.resource_type,
        "resource_name": b.resource_name,
        "pattern_type": b.pattern_type,
        "operation": b.operation,
        "permission": b.permission,
    });
    if !b.principal.is_empty() {
        v["principal"] = json!(b.principal);
    }
    v
}

fn print(bindings: &[AclBinding], format: Format) {
    match format {
        Format::Json => println!(
            "{}",
            json!({
                "acls": bindings.iter().map(binding_json).collect::<Vec<_>>()
            })
        ),
        Format::Text => {
            let rows: Vec<Vec<String>> = bindings
                .iter()
                .map(|b| {
                    vec![
                        b.principal.clone(),
                        b.permission.clone(),
                        b.operation.clone(),
                        b.resource_type.clone(),
                        b.resource_name.clone(),
                        b.pattern_type.clone(),
                        b.host.clone(),
                    ]
                })
                .collect();
            print!(
                "{}",
                render_table(
                    &[
                        "PRINCIPAL",
                        "PERMISSION",
                        "OPERATION",
                        "RESOURCE",
                        "NAME",
                        "PATTERN",
                        "HOST"
                    ],
                    &rows
                )
            );
        }
    }
}

async fn list(client: &Client, s: &AclSelector, format: Format) -> Result<()> {
    let acls = client
        .list_acls(filter(s)?)
        .await
        .context("cannot list the ACLs")?;
    print(&acls, format);
    Ok(())
}

async fn remove(client: &Client, s: &AclSelector, format: Format) -> Result<()> {
    if s.principal.is_none() && resource(s).is_none() {
        bail!("name a --principal or a resource; removing every ACL is not done by accident");
    }
    let removed = client
        .delete_acls(filter(s)?)
        .await
        .context("cannot remove the ACLs")?;
    eprintln!("{} ACL binding(s) removed", removed.len());
    print(&removed, format);
    Ok(())
}
