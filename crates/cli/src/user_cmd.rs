//! `cairn user create | set-password | delete | list`.

use std::io::BufRead;

use anyhow::{bail, Context, Result};
use cairn_broker::scram::ScramMechanism;
use cairn_client::proto::{ScramDeletion, ScramUpsertion};
use cairn_client::Client;
use serde_json::json;

use crate::cli::{Format, PasswordArgs, UserArgs, UserCommand};
use crate::connect::connect;
use crate::output::render_table;

/// Runs a user command.
pub async fn run(args: UserArgs) -> Result<()> {
    let client = connect(&args.conn).await?;
    match args.command {
        UserCommand::Create { name, password } | UserCommand::SetPassword { name, password } => {
            set(&client, &name, &password).await
        }
        UserCommand::Delete { name } => delete(&client, &name).await,
        UserCommand::List { format } => list(&client, format).await,
    }
}

fn read_password(p: &PasswordArgs) -> Result<String> {
    if let Some(pw) = &p.password {
        return Ok(pw.clone());
    }
    if !p.password_stdin {
        bail!("give the password with --password-stdin (or --password)");
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("cannot read the password from stdin")?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

async fn set(client: &Client, name: &str, p: &PasswordArgs) -> Result<()> {
    let password = read_password(p)?;
    if password.is_empty() {
        bail!("the password is empty");
    }
    let mut upsertions = Vec::new();
    for m in &p.mechanisms {
        let Some(mechanism) = ScramMechanism::parse(m) else {
            bail!("unknown mechanism {m:?} (SCRAM-SHA-256, SCRAM-SHA-512)");
        };
        let salt: [u8; 24] = rand::random();
        upsertions.push(ScramUpsertion {
            user: name.to_string(),
            mechanism: mechanism.name().to_string(),
            iterations: p.iterations,
            salt: salt.to_vec().into(),
            salted_password: mechanism
                .salted_password(password.as_bytes(), &salt, p.iterations)
                .into(),
        });
    }
    client
        .alter_users(vec![], upsertions)
        .await
        .context("cannot set the user's credentials")?;
    eprintln!("user {name} set ({})", p.mechanisms.join(", "));
    Ok(())
}

async fn delete(client: &Client, name: &str) -> Result<()> {
    let found = client
        .describe_users(vec![name.to_string()])
        .await
        .context("cannot look the user up")?;
    let Some(user) = found.into_iter().find(|u| u.user == name) else {
        bail!("no user {name}");
    };
    let deletions = user
        .credentials
        .into_iter()
        .map(|c| ScramDeletion {
            user: name.to_string(),
            mechanism: c.mechanism,
        })
        .collect();
    client
        .alter_users(deletions, vec![])
        .await
        .context("cannot delete the user")?;
    eprintln!("user {name} deleted");
    Ok(())
}

async fn list(client: &Client, format: Format) -> Result<()> {
    let users = client
        .describe_users(vec![])
        .await
        .context("cannot list users")?;
    match format {
        Format::Json => println!(
            "{}",
            json!({
                "users": users.iter().map(|u| json!({
                    "user": u.user,
                    "credentials": u.credentials.iter().map(|c| json!({
                        "mechanism": c.mechanism,
                        "iterations": c.iterations,
                    })).collect::<Vec<_>>(),
                })).collect::<Vec<_>>()
            })
        ),
        Format::Text => {
            let rows: Vec<Vec<String>> = users
                .iter()
                .map(|u| {
                    vec![
                        u.user.clone(),
                        u.credentials
                            .iter()
                            .map(|c| format!("{} ({})", c.mechanism, c.iterations))
                            .collect::<Vec<_>>()
                            .join(", "),
                    ]
                })
                .collect();
            print!("{}", render_table(&["USER", "MECHANISMS"], &rows));
        }
    }
    Ok(())
}
