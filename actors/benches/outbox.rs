//! The outbox's SQLite store: `cargo bench -p wa-actors --bench outbox [-- --quick]`.
//!
//! - **Enqueue**: durable enqueues per second and their latency with 1, 16 and 64
//!   producers, each awaiting its enqueue before the next, as an HTTP handler
//!   awaits it before answering `202`. Every one is committed and fsync'd; group
//!   commit lets concurrent ones share an fsync.
//! - **Restart**: a database holding 100,000 queued messages over 100 orgs is
//!   opened as at start-up, and timed until the first `next_pending` of every org is
//!   in hand (the lanes could start delivering). The goal is under 1 s. The file
//!   was just written, so the page cache is warm: a cold disk adds its read time.
//!
//! The database lives in a temporary directory on the disk `TMPDIR` points to.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use wa_actors::OrgId;
use wa_actors::outbox::{
    Enqueued, MessageBody, MessageId, NewMessage, Origin, OutboxStore, SqliteOutbox,
};

const MESSAGE: &str =
    "Recordatorio: su cita en la óptica es mañana a las 10:00. Responda SI para confirmar.";
const PRODUCERS: [usize; 3] = [1, 16, 64];
const RESTART_MESSAGES: usize = 100_000;
const RESTART_ORGS: usize = 100;

struct Plan {
    warmup: Duration,
    duration: Duration,
    restarts: usize,
}

fn main() {
    let quick = std::env::args().skip(1).any(|a| a == "--quick");
    let plan = Plan {
        warmup: Duration::from_millis(if quick { 300 } else { 1000 }),
        duration: Duration::from_millis(if quick { 1500 } else { 5000 }),
        restarts: if quick { 2 } else { 5 },
    };
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    let mut table = String::from(
        "| outbox (SQLite, durable) | enqueues/s | p50 | p90 | p99 | max |\n\
         |---|---:|---:|---:|---:|---:|\n",
    );
    for producers in PRODUCERS {
        eprintln!("== enqueue, {producers} producer(s)");
        let run = runtime.block_on(enqueue_run(producers, &plan));
        table.push_str(&format!(
            "| enqueue, {producers} producer(s) | {:.0} | {} | {} | {} | {} |\n",
            run.per_second,
            ms(percentile(&run.latencies, 0.50)),
            ms(percentile(&run.latencies, 0.90)),
            ms(percentile(&run.latencies, 0.99)),
            ms(*run.latencies.last().expect("at least one enqueue")),
        ));
    }
    eprintln!("== restart with {RESTART_MESSAGES} queued messages");
    let restart = runtime.block_on(restart_run(&plan));
    table.push_str(&format!(
        "\n| restart, {RESTART_MESSAGES} queued over {RESTART_ORGS} orgs | median | max |\n\
         |---|---:|---:|\n"
    ));
    for (step, times) in [
        ("open (schema checked)", &restart.open),
        ("`orgs_with_pending`", &restart.orgs),
        (
            "`next_pending` of each org, one after another",
            &restart.nexts,
        ),
        (
            "**open → every org's first message in hand**",
            &restart.ready,
        ),
    ] {
        table.push_str(&format!(
            "| {step} | {} | {} |\n",
            ms(percentile(times, 0.5)),
            ms(*times.last().expect("a restart")),
        ));
    }
    table.push_str(&format!(
        "\n(filling the restart database: {:.0} enqueues/s with 64 producers; {} and {} of \
         measurement per producer count)\n",
        restart.fill_per_second,
        ms(plan.warmup),
        ms(plan.duration)
    ));
    println!("\n{table}");
}

struct EnqueueRun {
    per_second: f64,
    /// Sorted.
    latencies: Vec<Duration>,
}

/// `producers` tasks enqueue back to back for the warm-up, then for the measured
/// duration; only enqueues that started inside it count.
async fn enqueue_run(producers: usize, plan: &Plan) -> EnqueueRun {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = Arc::new(open(&dir).await);
    let start = Instant::now() + plan.warmup;
    let end = start + plan.duration;
    let tasks: Vec<_> = (0..producers)
        .map(|p| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let org = org(p % 10);
                let mut latencies = Vec::new();
                loop {
                    let began = Instant::now();
                    if began >= end {
                        return latencies;
                    }
                    accept(&*store, &org).await;
                    if began >= start {
                        latencies.push(began.elapsed());
                    }
                }
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.expect("a producer"));
    }
    latencies.sort_unstable();
    Arc::into_inner(store)
        .expect("the only handle")
        .close()
        .await;
    EnqueueRun {
        per_second: latencies.len() as f64 / plan.duration.as_secs_f64(),
        latencies,
    }
}

/// Each step's times over the restarts, sorted.
struct RestartRun {
    fill_per_second: f64,
    open: Vec<Duration>,
    orgs: Vec<Duration>,
    nexts: Vec<Duration>,
    ready: Vec<Duration>,
}

async fn restart_run(plan: &Plan) -> RestartRun {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = Arc::new(open(&dir).await);
    let filling = Instant::now();
    let fillers: Vec<_> = (0..64)
        .map(|f| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                for i in (f..RESTART_MESSAGES).step_by(64) {
                    accept(&*store, &org(i % RESTART_ORGS)).await;
                }
            })
        })
        .collect();
    for filler in fillers {
        filler.await.expect("a filler");
    }
    let fill_per_second = RESTART_MESSAGES as f64 / filling.elapsed().as_secs_f64();
    Arc::into_inner(store)
        .expect("the only handle")
        .close()
        .await;

    let mut run = RestartRun {
        fill_per_second,
        open: Vec::new(),
        orgs: Vec::new(),
        nexts: Vec::new(),
        ready: Vec::new(),
    };
    for _ in 0..plan.restarts {
        let began = Instant::now();
        let store = open(&dir).await;
        let opened = Instant::now();
        let orgs = store.orgs_with_pending().await.expect("orgs_with_pending");
        let listed = Instant::now();
        assert_eq!(orgs.len(), RESTART_ORGS);
        for org in &orgs {
            let next = store.next_pending(org).await.expect("next_pending");
            assert!(next.is_some(), "{org} has queued messages");
        }
        let ready = Instant::now();
        run.open.push(opened - began);
        run.orgs.push(listed - opened);
        run.nexts.push(ready - listed);
        run.ready.push(ready - began);
        store.close().await;
    }
    for times in [&mut run.open, &mut run.orgs, &mut run.nexts, &mut run.ready] {
        times.sort_unstable();
    }
    run
}

async fn open(dir: &tempfile::TempDir) -> SqliteOutbox {
    SqliteOutbox::open(dir.path().join("outbox.db"))
        .await
        .expect("the outbox opens")
}

async fn accept(store: &dyn OutboxStore, org: &OrgId) {
    let now = Utc::now();
    let new = NewMessage {
        message_id: MessageId::generate(),
        org: org.clone(),
        phone: "573001234567".to_owned(),
        body: MessageBody::Text(MESSAGE.to_owned()),
        idempotency_key: Some(MessageId::generate().as_str().to_owned()),
        origin: Origin::Queue,
        created_at: now,
        expires_at: now + chrono::Duration::days(1),
    };
    match store.enqueue(new).await {
        Ok(Enqueued::New(_)) => {}
        other => panic!("enqueue: {other:?}"),
    }
}

fn org(n: usize) -> OrgId {
    OrgId::parse(&format!("optica-{n}")).expect("a valid org id")
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}
