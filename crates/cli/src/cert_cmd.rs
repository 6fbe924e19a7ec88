//! `cairn cert`: a development CA and certificates signed by it.

use std::path::Path;

use anyhow::bail;
use anyhow::Context;
use anyhow::Result;
use cairn_tls::devca;

use crate::cli::CertArgs;
use crate::cli::CertCommand;

fn write_private(path: &Path, contents: &str) -> Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut f = options
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    f.write_all(contents.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}

fn write_pair(dir: &Path, name: &str, issued: &devca::Issued) -> Result<()> {
    let cert = dir.join(format!("{name}.crt"));
    let key = dir.join(format!("{name}.key"));
    std::fs::write(&cert, &issued.cert_pem)
        .with_context(|| format!("cannot write {}", cert.display()))?;
    write_private(&key, &issued.key_pem)?;
    println!("{}", cert.display());
    println!("{}", key.display());
    Ok(())
}

fn read_ca(dir: &Path) -> Result<devca::Issued> {
    let read = |f: &str| {
        let p = dir.join(f);
        std::fs::read_to_string(&p).with_context(|| {
            format!(
                "cannot read {} (make a CA first: cairn cert ca --dir {})",
                p.display(),
                dir.display()
            )
        })
    };
    Ok(devca::Issued {
        cert_pem: read("ca.crt")?,
        key_pem: read("ca.key")?,
    })
}

fn check_name(name: &str) -> Result<()> {
    if name.is_empty() || name == "ca" || name.contains(['/', '\\']) || name.starts_with('.') {
        bail!("--name {name:?}: a file name other than \"ca\" is needed");
    }
    Ok(())
}

pub fn run(args: CertArgs) -> Result<()> {
    match args.command {
        CertCommand::Ca {
            dir,
            name,
            days,
            force,
        } => {
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            if !force && dir.join("ca.key").exists() {
                bail!(
                    "{} exists: a CA is there already (--force replaces it, and every certificate it signed stops being trusted)",
                    dir.join("ca.key").display()
                );
            }
            let ca = devca::new_ca(&name, days)?;
            write_pair(&dir, "ca", &ca)
        }
        CertCommand::Node {
            dir,
            name,
            host,
            days,
        } => {
            check_name(&name)?;
            let ca = read_ca(&dir)?;
            let issued = devca::issue(&ca, devca::Kind::Node, &name, None, &host, days)?;
            write_pair(&dir, &name, &issued)
        }
        CertCommand::Client {
            dir,
            name,
            ou,
            days,
        } => {
            check_name(&name)?;
            let ca = read_ca(&dir)?;
            let issued = devca::issue(&ca, devca::Kind::Client, &name, ou.as_deref(), &[], days)?;
            write_pair(&dir, &name, &issued)
        }
    }
}
