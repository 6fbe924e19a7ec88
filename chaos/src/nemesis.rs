//! [`Nemesis`]: a seeded schedule of faults. Quiet for a random while,
//! inject a fault chosen at random from the enabled ones, hold it for a
//! random while, heal it; repeat until the deadline. One fault at a time,
//! and always healed before the next, so every window in the report has
//! exactly one cause. The same seed picks the same faults, targets and
//! timings (the cluster's answers, e.g. who leads, can still differ).

use std::ops::Range;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::Rng;
use rand::SeedableRng;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::faults::{Fault, FaultCx};
use crate::hosts::Heal;
use crate::ChaosError;

/// A fault starting or ending, for the history.
#[derive(Debug, Clone)]
pub enum FaultEvent {
    Start {
        name: String,
        description: String,
    },
    End {
        name: String,
        description: String,
        heal: String,
    },
    /// Injecting or healing failed; the run goes on (and heals all at the end).
    Error {
        name: String,
        error: String,
    },
}

pub struct NemesisConfig {
    pub faults: Vec<Box<dyn Fault>>,
    pub seed: u64,
    /// How long the cluster is left alone between faults.
    pub quiet: Range<Duration>,
    /// How long a fault is held.
    pub hold: Range<Duration>,
}

pub struct Nemesis {
    config: NemesisConfig,
    rng: StdRng,
}

impl Nemesis {
    pub fn new(config: NemesisConfig) -> Self {
        let rng = StdRng::seed_from_u64(config.seed);
        Self { config, rng }
    }

    fn pick(&mut self, range: &Range<Duration>) -> Duration {
        if range.is_empty() {
            return range.start;
        }
        let ms = self
            .rng
            .random_range(range.start.as_millis() as u64..range.end.as_millis() as u64);
        Duration::from_millis(ms)
    }

    /// Runs faults until `deadline`, reporting each start and end on
    /// `events`; the last fault is healed before returning.
    pub async fn run(
        &mut self,
        cx: &FaultCx,
        deadline: Instant,
        events: mpsc::UnboundedSender<FaultEvent>,
    ) {
        if self.config.faults.is_empty() {
            tokio::time::sleep_until(deadline).await;
            return;
        }
        loop {
            let quiet = self.pick(&self.config.quiet.clone());
            if Instant::now() + quiet >= deadline {
                tokio::time::sleep_until(deadline).await;
                return;
            }
            tokio::time::sleep(quiet).await;
            let i = self.rng.random_range(0..self.config.faults.len());
            let hold = self.pick(&self.config.hold.clone());
            let name = self.config.faults[i].name().to_string();
            let injected = {
                let fault = &self.config.faults[i];
                fault.inject(cx, &mut self.rng).await
            };
            match injected {
                Ok(injected) => {
                    tracing::info!(fault = %name, what = %injected.description, "fault injected");
                    let _ = events.send(FaultEvent::Start {
                        name: name.clone(),
                        description: injected.description.clone(),
                    });
                    let until = (Instant::now() + hold).min(deadline);
                    tokio::time::sleep_until(until).await;
                    let healed = injected.heal.apply(cx.hosts.as_ref()).await;
                    if let Err(e) = &healed {
                        let _ = events.send(FaultEvent::Error {
                            name: name.clone(),
                            error: format!("heal failed: {e}"),
                        });
                    }
                    tracing::info!(fault = %name, heal = %injected.heal, "fault healed");
                    let _ = events.send(FaultEvent::End {
                        name,
                        description: injected.description,
                        heal: injected.heal.to_string(),
                    });
                }
                Err(e) => {
                    tracing::warn!(fault = %name, error = %e, "fault not injected");
                    let _ = events.send(FaultEvent::Error {
                        name,
                        error: e.to_string(),
                    });
                    // Whatever half-happened is undone before going on.
                    let _ = Heal::everything(cx.hosts.as_ref()).await;
                }
            }
            if Instant::now() >= deadline {
                return;
            }
        }
    }
}

/// Parses `--nemesis kill,pause,...` (`all` for every fault, `none` for none).
pub fn parse_faults(spec: &str) -> Result<Vec<Box<dyn Fault>>, ChaosError> {
    let names: Vec<&str> = match spec.trim() {
        "all" => crate::faults::NAMES.to_vec(),
        "none" | "" => Vec::new(),
        s => s.split(',').map(str::trim).collect(),
    };
    names.into_iter().map(crate::faults::by_name).collect()
}
