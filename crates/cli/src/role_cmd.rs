//! `cairn role create | add-acl | remove-acl | grant | revoke | delete | list`.

use anyhow::{bail, Context, Result};
use cairn_client::proto::alter_role_request::Change;
use cairn_client::proto::{AclBinding, AclList, AlterRoleRequest};
use cairn_client::Client;
use serde_json::json;

use crate::acl_cmd::{binding_json, bindings_for};
use crate::cli::{AclSelector, Format, RoleArgs, RoleCommand};
use crate::connect::connect;
use crate::output::render_table;

/// Runs a role command.
pub async fn run(args: RoleArgs) -> Result<()> {
    let client = connect(&args.conn).await?;
    let change = |role: String, change: Change| AlterRoleRequest {
        role,
        change: Some(change),
    };
    let req = match args.command {
        RoleCommand::List { format } => return list(&client, format).await,
        RoleCommand::Create { name } => change(name, Change::AddAcls(AclList { acls: vec![] })),
        RoleCommand::AddAcl { name, selector } => change(
            name,
            Change::AddAcls(AclList {
                acls: bindings(&selector)?,
            }),
        ),
        RoleCommand::RemoveAcl { name, selector } => change(
            name,
            Change::RemoveAcls(AclList {
                acls: bindings(&selector)?,
            }),
        ),
        RoleCommand::Grant { name, principal } => change(name, Change::Grant(principal)),
        RoleCommand::Revoke { name, principal } => change(name, Change::Revoke(principal)),
        RoleCommand::Delete { name } => change(name, Change::Delete(true)),
    };
    let role = req.role.clone();
    client
        .alter_role(req)
        .await
        .with_context(|| format!("cannot change role {role}"))?;
    eprintln!("role {role} changed");
    Ok(())
}

/// The bindings the flags name, without a principal.
fn bindings(s: &AclSelector) -> Result<Vec<AclBinding>> {
    if s.principal.is_some() {
        bail!("a role's bindings name no principal: grant the role instead");
    }
    bindings_for(s, "")
}

async fn list(client: &Client, format: Format) -> Result<()> {
    let roles = client.list_roles().await.context("cannot list roles")?;
    match format {
        Format::Json => println!(
            "{}",
            json!({
                "roles": roles.iter().map(|r| json!({
                    "role": r.role,
                    "members": r.members,
                    "acls": r.acls.iter().map(binding_json).collect::<Vec<_>>(),
                })).collect::<Vec<_>>()
            })
        ),
        Format::Text => {
            let rows: Vec<Vec<String>> = roles
                .iter()
                .map(|r| {
                    vec![
                        r.role.clone(),
                        r.members.join(", "),
                        r.acls
                            .iter()
                            .map(|b| {
                                format!(
                                    "{} {} {}:{}{}",
                                    b.permission,
                                    b.operation,
                                    b.resource_type,
                                    b.resource_name,
                                    if b.pattern_type == "PREFIXED" {
                                        "*"
                                    } else {
                                        ""
                                    }
                                )
                            })
                            .collect::<Vec<_>>()
                            .join("; "),
                    ]
                })
                .collect();
            print!("{}", render_table(&["ROLE", "MEMBERS", "ACLS"], &rows));
        }
    }
    Ok(())
}
