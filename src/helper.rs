//! Threads that do blocking work for the feed threads, so that no feed thread ever blocks past
//! its next deadline: host-name resolution (`getaddrinfo` has no non-blocking form) and REST
//! depth snapshots. A feed thread hands a job over and goes on; the job sends its answer back on
//! the feed thread's channel and wakes its poll.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{unbounded, Receiver, RecvTimeoutError, Sender};
use log::warn;

use crate::rest::RestClient;
use crate::tick::DisconnectReason;

/// Pins the calling thread to `core`, when one is configured; `who` names the thread in the
/// warning a failure gives (the thread then runs unpinned).
pub(crate) fn pin_current_thread(core: Option<usize>, who: &str) {
    if let Some(id) = core {
        if !core_affinity::set_for_current(core_affinity::CoreId { id }) {
            warn!("{who}: could not pin to core {id}; running unpinned");
        }
    }
}

/// A job: runs once on the helper thread.
pub type Job = Box<dyn FnOnce() + Send>;

/// How long [`Helper::finish`] waits for the thread's last job before leaving it behind (a hung
/// resolver must not hold the engine's shutdown).
const FINISH_WAIT: Duration = Duration::from_secs(1);

/// A thread that runs jobs one at a time, in order.
pub struct Helper {
    name: String,
    tx: Sender<Job>,
    done: Receiver<()>,
    handle: JoinHandle<()>,
}

impl fmt::Debug for Helper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Helper").field("name", &self.name).finish()
    }
}

/// Where jobs for a helper go; cheap to clone, one per feed thread.
#[derive(Clone)]
pub struct HelperHandle(Sender<Job>);

impl fmt::Debug for HelperHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HelperHandle")
    }
}

impl HelperHandle {
    /// Hands `job` over. False when the helper is gone (the engine is stopping).
    pub fn run(&self, job: impl FnOnce() + Send + 'static) -> bool {
        self.0.send(Box::new(job)).is_ok()
    }
}

impl Helper {
    /// Starts the thread `name`.
    pub fn start(name: &str) -> io::Result<Helper> {
        let (tx, rx) = unbounded::<Job>();
        let (done_tx, done) = crossbeam_channel::bounded(1);
        let handle = std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || {
                for job in rx {
                    job();
                }
                let _ = done_tx.send(());
            })?;
        Ok(Helper {
            name: name.to_string(),
            tx,
            done,
            handle,
        })
    }

    /// A handle for a feed thread.
    pub fn handle(&self) -> HelperHandle {
        HelperHandle(self.tx.clone())
    }

    /// Stops taking jobs and waits for the thread, after every feed thread (every handle) is
    /// gone. A job that does not finish within a second (a resolver that hangs) is left behind.
    pub fn finish(self) {
        drop(self.tx);
        match self.done.recv_timeout(FINISH_WAIT) {
            Ok(()) | Err(RecvTimeoutError::Disconnected) => {
                let _ = self.handle.join();
            }
            Err(RecvTimeoutError::Timeout) => warn!(
                "the {} thread is still busy with a blocking call; leaving it behind",
                self.name
            ),
        }
    }
}

/// Looks a host name up (blocking): run on the resolver thread.
pub type ResolveFn = Arc<dyn Fn(&str, u16) -> Result<SocketAddr, DisconnectReason> + Send + Sync>;

/// The helper threads a driver hands blocking work to.
#[derive(Clone)]
pub struct Helpers {
    /// Host-name resolution.
    pub resolver: Option<HelperHandle>,
    /// How the resolver looks names up: the system's `getaddrinfo` unless a test says otherwise.
    pub resolve: ResolveFn,
    /// REST depth snapshots.
    pub snapshots: Option<HelperHandle>,
    /// The REST agents and weight budgets the snapshot jobs use.
    pub rest: Arc<RestClient>,
}

impl Default for Helpers {
    fn default() -> Self {
        Helpers {
            resolver: None,
            resolve: Arc::new(crate::net::resolve),
            snapshots: None,
            rest: Arc::default(),
        }
    }
}

impl std::fmt::Debug for Helpers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Helpers")
            .field("resolver", &self.resolver.is_some())
            .field("snapshots", &self.snapshots.is_some())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Instant;

    #[test]
    fn jobs_run_in_order_and_a_hung_job_does_not_hold_finish() {
        let helper = Helper::start("test-helper").unwrap();
        let (tx, rx) = mpsc::channel();
        let h = helper.handle();
        for n in 0..3 {
            let tx = tx.clone();
            assert!(h.run(move || tx.send(n).unwrap()));
        }
        let got: Vec<i32> = (0..3)
            .map(|_| rx.recv_timeout(Duration::from_secs(5)).unwrap())
            .collect();
        assert_eq!(got, [0, 1, 2]);
        // A job that never returns (until the test ends): finish gives up on it promptly.
        let (_hold, release) = mpsc::channel::<()>();
        assert!(h.run(move || {
            let _ = release.recv();
        }));
        drop(h);
        let t = Instant::now();
        helper.finish();
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "finish waited {:?}",
            t.elapsed()
        );
    }
}
