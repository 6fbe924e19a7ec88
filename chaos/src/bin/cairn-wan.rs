//! `cairn-wan`: a userspace WAN between regions (see `cairn_chaos::wan`).
//!
//! ```text
//! cairn-wan --route 127.0.0.1:17070=10.0.1.1:7070 --route ... --rtt-ms 40 \
//!           [--jitter-ms 5] [--rate-bytes 5000000] [--control FILE]
//! ```
//!
//! With `--control FILE`, the file is read every 100 ms while it runs: lines
//! `rtt_ms=N`, `jitter_ms=N`, `rate_bytes=N`, `cut=true|false`, `reset=N`
//! (a new N closes every connection). Missing keys keep the flags' values.

use std::time::Duration;

use cairn_chaos::WanProxy;
use cairn_chaos::WanSettings;

fn usage() -> ! {
    eprintln!(
        "usage: cairn-wan --route LISTEN=UPSTREAM [--route ...] [--rtt-ms N] [--jitter-ms N] [--rate-bytes N] [--control FILE]"
    );
    std::process::exit(2)
}

fn parse_settings(text: &str, base: WanSettings, reset: &mut Option<String>) -> WanSettings {
    let mut s = base;
    for line in text.lines() {
        let Some((k, v)) = line.trim().split_once('=') else {
            continue;
        };
        let n = v.trim().parse::<u64>().ok();
        match (k.trim(), n) {
            ("rtt_ms", Some(n)) => s.delay = Duration::from_millis(n) / 2,
            ("jitter_ms", Some(n)) => s.jitter = Duration::from_millis(n),
            ("rate_bytes", Some(n)) => s.rate_bytes_per_s = n,
            ("cut", _) => s.cut = v.trim() == "true",
            ("reset", _) => *reset = Some(v.trim().to_string()),
            _ => eprintln!("cairn-wan: ignoring control line {line:?}"),
        }
    }
    s
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args = std::env::args().skip(1);
    let mut routes = Vec::new();
    let mut settings = WanSettings::rtt(Duration::from_millis(40));
    let mut control = None;
    while let Some(a) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| usage());
        match a.as_str() {
            "--route" => {
                let v = value();
                let Some((l, u)) = v.split_once('=') else {
                    usage()
                };
                routes.push((l.to_string(), u.to_string()));
            }
            "--rtt-ms" => {
                settings.delay =
                    Duration::from_millis(value().parse().unwrap_or_else(|_| usage())) / 2
            }
            "--jitter-ms" => {
                settings.jitter = Duration::from_millis(value().parse().unwrap_or_else(|_| usage()))
            }
            "--rate-bytes" => {
                settings.rate_bytes_per_s = value().parse().unwrap_or_else(|_| usage())
            }
            "--control" => control = Some(value()),
            _ => usage(),
        }
    }
    if routes.is_empty() {
        usage();
    }
    let mut proxies = Vec::new();
    for (l, u) in &routes {
        let (Ok(l), Ok(u)) = (l.parse(), u.parse()) else {
            eprintln!("cairn-wan: bad route {l}={u} (want ip:port=ip:port)");
            std::process::exit(2);
        };
        match WanProxy::start(l, u, settings).await {
            Ok(p) => {
                eprintln!("cairn-wan: {} -> {}", p.listen, p.upstream);
                proxies.push(p);
            }
            Err(e) => {
                eprintln!("cairn-wan: cannot listen on {l}: {e}");
                std::process::exit(1);
            }
        }
    }
    let Some(control) = control else {
        let _ = tokio::signal::ctrl_c().await;
        return;
    };
    let mut last_text = String::new();
    let mut last_reset: Option<String> = None;
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return,
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
        let Ok(text) = std::fs::read_to_string(&control) else {
            continue;
        };
        if text == last_text {
            continue;
        }
        last_text = text.clone();
        let mut reset = None;
        let s = parse_settings(&text, settings, &mut reset);
        for p in &proxies {
            p.control().set(s);
        }
        if reset.is_some() && reset != last_reset {
            if last_reset.is_some() {
                for p in &proxies {
                    p.control().reset();
                }
            }
            last_reset = reset;
        }
        eprintln!("cairn-wan: now {s:?}");
    }
}
