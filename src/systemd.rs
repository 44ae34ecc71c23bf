//! systemd integration: `READY=1`, `WATCHDOG=1`, `STATUS=` and `STOPPING=1`.
//!
//! Everything here is a no-op without `NOTIFY_SOCKET`, so the daemon runs the same
//! under systemd, in a terminal and in tests. The watchdog is fed only while the
//! supervisor answers a ping: a wedged supervisor stops the pings, and systemd
//! restarts the daemon (`Restart=on-failure`), which beats a daemon that looks alive
//! while no shop's messages move.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use sd_notify::NotifyState;
use wa_actors::{SessionSnapshot, Supervisor};

/// Sends notifications to the service manager, when there is one.
#[derive(Clone, Copy, Debug)]
pub struct Notifier {
    enabled: bool,
}

impl Notifier {
    pub fn from_env() -> Self {
        Self {
            enabled: std::env::var_os("NOTIFY_SOCKET").is_some(),
        }
    }

    fn send(&self, state: &[NotifyState]) {
        if self.enabled
            && let Err(e) = sd_notify::notify(false, state)
        {
            tracing::warn!(error = %e, "cannot notify systemd");
        }
    }

    pub fn ready(&self) {
        self.send(&[NotifyState::Ready]);
    }

    pub fn stopping(&self) {
        self.send(&[NotifyState::Stopping]);
    }

    pub fn watchdog(&self) {
        self.send(&[NotifyState::Watchdog]);
    }

    pub fn status(&self, text: &str) {
        self.send(&[NotifyState::Status(text)]);
    }
}

/// The watchdog period systemd asked for (`WATCHDOG_USEC`), if any.
///
/// Like libsystemd, `WATCHDOG_PID` is honoured when present (it must be ours) and
/// the watchdog is taken to be ours when it is absent.
pub fn watchdog_period(env: impl Fn(&str) -> Option<String>) -> Option<Duration> {
    let usec: u64 = env("WATCHDOG_USEC")?.trim().parse().ok()?;
    if let Some(pid) = env("WATCHDOG_PID")
        && pid.trim().parse::<u32>().ok() != Some(std::process::id())
    {
        return None;
    }
    (usec > 0).then(|| Duration::from_micros(usec))
}

/// Feeds the watchdog every `interval` while `ping` answers true, and keeps the
/// `STATUS=` line current. Runs until dropped.
pub async fn keep_alive<P, F>(
    interval: Duration,
    mut ping: P,
    mut beat: impl FnMut(),
    mut status: impl FnMut(),
) where
    P: FnMut() -> F,
    F: Future<Output = bool>,
{
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        if ping().await {
            beat();
        } else {
            tracing::error!("the supervisor did not answer in time; withholding the watchdog ping");
        }
        status();
    }
}

/// Runs the watchdog (at half of `period`, the ping's deadline a quarter) and the
/// status line for a supervisor.
pub async fn supervise(notifier: Notifier, period: Option<Duration>, supervisor: Supervisor) {
    let interval = period.map_or(Duration::from_secs(5), |p| p / 2);
    let deadline = interval / 2;
    let mut last_status = String::new();
    keep_alive(
        interval,
        || {
            let supervisor = supervisor.clone();
            async move { supervisor.ping(deadline).await }
        },
        || {
            if period.is_some() {
                notifier.watchdog();
            }
        },
        || {
            let line = status_line(&supervisor.sessions());
            if line != last_status {
                notifier.status(&line);
                last_status = line;
            }
        },
    )
    .await;
}

/// "3 sessions: 2 connected, 1 qr_ready" — what `systemctl status` shows.
pub fn status_line(sessions: &[SessionSnapshot]) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for s in sessions {
        *counts.entry(s.status.as_str()).or_default() += 1;
    }
    let parts: Vec<String> = counts.iter().map(|(k, n)| format!("{n} {k}")).collect();
    if parts.is_empty() {
        "0 sessions".to_owned()
    } else {
        format!("{} sessions: {}", sessions.len(), parts.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

    use super::*;

    #[test]
    fn watchdog_period_follows_libsystemd() {
        let ours = std::process::id().to_string();
        let env = |usec: Option<&str>, pid: Option<&str>| {
            let (usec, pid) = (usec.map(str::to_owned), pid.map(str::to_owned));
            move |name: &str| match name {
                "WATCHDOG_USEC" => usec.clone(),
                "WATCHDOG_PID" => pid.clone(),
                _ => None,
            }
        };
        assert_eq!(watchdog_period(env(None, None)), None);
        assert_eq!(
            watchdog_period(env(Some("30000000"), None)),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            watchdog_period(env(Some("2000000"), Some(&ours))),
            Some(Duration::from_secs(2))
        );
        assert_eq!(watchdog_period(env(Some("2000000"), Some("1"))), None);
        assert_eq!(watchdog_period(env(Some("0"), None)), None);
        assert_eq!(watchdog_period(env(Some("x"), None)), None);
    }

    #[tokio::test(start_paused = true)]
    async fn pings_stop_while_the_supervisor_does_not_answer() {
        let answering = Arc::new(AtomicBool::new(true));
        let beats = Arc::new(AtomicU32::new(0));
        let task = tokio::spawn({
            let (answering, beats) = (answering.clone(), beats.clone());
            keep_alive(
                Duration::from_secs(1),
                move || {
                    let answering = answering.load(Ordering::SeqCst);
                    async move {
                        if !answering {
                            tokio::time::sleep(Duration::from_millis(400)).await;
                        }
                        answering
                    }
                },
                move || {
                    beats.fetch_add(1, Ordering::SeqCst);
                },
                || {},
            )
        });
        tokio::time::sleep(Duration::from_millis(4500)).await;
        let before = beats.load(Ordering::SeqCst);
        assert_eq!(before, 5, "a beat at 0, 1, 2, 3 and 4 s");
        answering.store(false, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(beats.load(Ordering::SeqCst), before, "no beat while wedged");
        answering.store(true, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(beats.load(Ordering::SeqCst) > before, "beats resume");
        task.abort();
    }
}
