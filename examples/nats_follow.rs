//! Follows wsfeed's NATS JetStream stream (`[sink.nats]`, docs/NATS.md) from another process:
//! prints one line per message, `<stream sequence> <subject> <payload>`, and remembers the last
//! stream sequence it printed in a state file, so that after a restart it carries on at the next
//! one instead of the start of the stream or its end.
//!
//! ```sh
//! cargo run --example nats_follow -- --url nats://127.0.0.1:4222 --state follow.seq
//! cargo run --example nats_follow -- --url nats://127.0.0.1:4222 --from 1 --max 100
//! ```
//!
//! Options: `--url` (default `nats://127.0.0.1:4222`), `--stream` (default `WSFEED`), `--state
//! FILE` (resume after the sequence it holds, and keep it up to date), `--from SEQ` (start at
//! this stream sequence; default: after the state file's, else the first), `--max N` (exit after
//! N messages), `--idle-ms MS` (exit after MS without a message). It reads the stream through an
//! ephemeral pull consumer that starts at the sequence (`DeliverPolicy::ByStartSequence`): no
//! state is kept on the server, and no message needs an acknowledgement.
//!
//! The state file is rewritten after every batch (and at exit): killed mid-batch, the follower
//! prints that batch's messages again when restarted; stopped by `--max` or `--idle-ms`, it
//! prints each message once across restarts.

use std::io::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer};
use futures_util::StreamExt as _;

/// What to follow, and until when.
#[derive(Debug)]
struct Options {
    url: String,
    stream: String,
    state: Option<PathBuf>,
    from: Option<u64>,
    max: Option<u64>,
    idle: Option<Duration>,
}

fn usage(problem: &str) -> ! {
    eprintln!(
        "nats_follow: {problem}\nusage: nats_follow [--url nats://HOST:PORT] [--stream NAME] \
         [--state FILE] [--from SEQ] [--max N] [--idle-ms MS]"
    );
    std::process::exit(2)
}

fn options() -> Options {
    let mut o = Options {
        url: "nats://127.0.0.1:4222".into(),
        stream: "WSFEED".into(),
        state: None,
        from: None,
        max: None,
        idle: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let Some(value) = args.next() else {
            usage(&format!("{flag} needs a value"))
        };
        let number = |v: &str| {
            v.parse::<u64>()
                .unwrap_or_else(|_| usage(&format!("{flag} takes a number, not '{v}'")))
        };
        match flag.as_str() {
            "--url" => o.url = value,
            "--stream" => o.stream = value,
            "--state" => o.state = Some(PathBuf::from(value)),
            "--from" => o.from = Some(number(&value).max(1)),
            "--max" => o.max = Some(number(&value)),
            "--idle-ms" => o.idle = Some(Duration::from_millis(number(&value))),
            other => usage(&format!("unknown option '{other}'")),
        }
    }
    o
}

/// The last sequence the state file holds (0: none).
fn last_done(state: &Option<PathBuf>) -> u64 {
    let Some(path) = state else { return 0 };
    match std::fs::read_to_string(path) {
        Ok(text) => text.trim().parse().unwrap_or_else(|_| {
            usage(&format!(
                "{} does not hold a sequence number",
                path.display()
            ))
        }),
        Err(_) => 0,
    }
}

/// Writes the last printed sequence, atomically (a temporary file renamed over the old).
fn save(state: &Option<PathBuf>, seq: u64) -> std::io::Result<()> {
    let Some(path) = state else { return Ok(()) };
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, format!("{seq}\n"))?;
    std::fs::rename(&tmp, path)
}

async fn follow(o: Options) -> Result<u64, async_nats::Error> {
    let start = o.from.unwrap_or_else(|| last_done(&o.state) + 1);
    let client = async_nats::connect(&o.url).await?;
    let js = jetstream::new(client);
    let stream = js.get_stream(&o.stream).await?;
    let consumer = stream
        .create_consumer(consumer::pull::Config {
            deliver_policy: consumer::DeliverPolicy::ByStartSequence {
                start_sequence: start,
            },
            ack_policy: consumer::AckPolicy::None,
            inactive_threshold: Duration::from_secs(30),
            ..Default::default()
        })
        .await?;
    let mut printed = 0u64;
    let mut last = start - 1;
    let mut heard = Instant::now();
    let out = std::io::stdout();
    loop {
        let mut batch = consumer
            .fetch()
            .max_messages(256)
            .expires(Duration::from_millis(200))
            .messages()
            .await?;
        let mut any = false;
        let mut out = out.lock();
        while let Some(msg) = batch.next().await {
            let msg = msg?;
            let seq = msg.info()?.stream_sequence;
            out.write_all(format!("{seq} {} ", msg.subject).as_bytes())?;
            out.write_all(&msg.payload)?;
            out.write_all(b"\n")?;
            (last, printed, any) = (seq, printed + 1, true);
            if o.max.is_some_and(|m| printed >= m) {
                break;
            }
        }
        out.flush()?;
        drop(out);
        save(&o.state, last)?;
        if o.max.is_some_and(|m| printed >= m) {
            break;
        }
        if any {
            heard = Instant::now();
        } else if o.idle.is_some_and(|idle| heard.elapsed() >= idle) {
            break;
        } else {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(last)
}

fn main() {
    let o = options();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    if let Err(e) = rt.block_on(follow(o)) {
        eprintln!("nats_follow: {e}");
        std::process::exit(1);
    }
}
