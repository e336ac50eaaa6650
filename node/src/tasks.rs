//! The node's long-running tasks, each under a name: a `JoinSet` that says
//! which task ended and how, so the daemon's supervisor can log it by name
//! and stop the node (see `daemon::run`).
//!
//! Debug builds only: `BANMESH_FAULT_INJECT=NAME` makes task NAME panic, and
//! `BANMESH_FAULT_INJECT=NAME:return` makes it return, and
//! `BANMESH_FAULT_INJECT=NAME:hang` makes it stop answering (never polled
//! again, never ending), when the process gets SIGUSR1, so tests can watch
//! the supervisor and the systemd watchdog at work. Release builds never
//! read the variable.

use std::collections::HashMap;
use std::future::Future;

use tokio::task::{AbortHandle, Id, JoinError, JoinSet};

/// How a task ended.
#[derive(Debug)]
pub enum Ended {
    /// It returned.
    Returned,
    /// It panicked, with this message.
    Panicked(String),
    /// It was aborted (only after the grace period of a shutdown).
    Aborted,
}

impl std::fmt::Display for Ended {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Ended::Returned => f.write_str("returned"),
            Ended::Panicked(message) => write!(f, "panicked: {message}"),
            Ended::Aborted => f.write_str("was aborted"),
        }
    }
}

/// Named tasks in one `JoinSet`.
#[derive(Default)]
pub struct Tasks {
    set: JoinSet<()>,
    names: HashMap<Id, &'static str>,
}

impl Tasks {
    /// An empty set.
    pub fn new() -> Tasks {
        Tasks::default()
    }

    /// Spawns `task` under `name` (short, kebab-case: it appears in logs
    /// and in `BANMESH_FAULT_INJECT`).
    pub fn spawn<F>(&mut self, name: &'static str, task: F) -> AbortHandle
    where
        F: Future<Output = ()> + Send + 'static,
    {
        #[cfg(debug_assertions)]
        let handle = match fault::wanted(name) {
            Some(fault) => self.set.spawn(fault::inject(name, fault, task)),
            None => self.set.spawn(task),
        };
        #[cfg(not(debug_assertions))]
        let handle = self.set.spawn(task);
        self.names.insert(handle.id(), name);
        handle
    }

    /// Waits for the next task to end; `None` when none is left.
    pub async fn join_next(&mut self) -> Option<(&'static str, Ended)> {
        let joined = self.set.join_next_with_id().await?;
        let (id, ended) = match joined {
            Ok((id, ())) => (id, Ended::Returned),
            Err(error) => (error.id(), ended_by(error)),
        };
        Some((self.names.remove(&id).unwrap_or("unnamed"), ended))
    }

    /// The names of the tasks still running, sorted.
    pub fn running(&self) -> Vec<&'static str> {
        let mut names: Vec<_> = self.names.values().copied().collect();
        names.sort_unstable();
        names
    }

    /// Aborts every task still running (they end at their next `.await`).
    pub fn abort_all(&mut self) {
        self.set.abort_all();
    }
}

/// How a task that did not return ended.
pub fn ended_by(error: JoinError) -> Ended {
    if error.is_cancelled() {
        return Ended::Aborted;
    }
    let payload = error.into_panic();
    let message = payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied())
        .unwrap_or("(no message)");
    Ended::Panicked(message.to_owned())
}

/// The test-only fault hook (debug builds).
#[cfg(debug_assertions)]
mod fault {
    use std::future::Future;

    use tokio::signal::unix::{SignalKind, signal};

    /// The environment variable naming the task to fail.
    pub const VAR: &str = "BANMESH_FAULT_INJECT";

    /// What the named task does on SIGUSR1.
    #[derive(Debug, Clone, Copy)]
    pub enum Fault {
        Panic,
        Return,
        Hang,
    }

    /// The fault asked for task `name`, if any.
    pub fn wanted(name: &str) -> Option<Fault> {
        let value = std::env::var(VAR).ok()?;
        match value.split_once(':') {
            None if value == name => Some(Fault::Panic),
            Some((task, "return")) if task == name => Some(Fault::Return),
            Some((task, "panic")) if task == name => Some(Fault::Panic),
            Some((task, "hang")) if task == name => Some(Fault::Hang),
            _ => None,
        }
    }

    /// `task`, failing as `fault` says on SIGUSR1. The handler is installed
    /// now, so a signal sent once the node answers is never lost.
    pub fn inject<F>(name: &'static str, fault: Fault, task: F) -> impl Future<Output = ()>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let usr1 = signal(SignalKind::user_defined1());
        async move {
            let Ok(mut usr1) = usr1 else {
                tracing::warn!("{VAR}: cannot watch SIGUSR1; no fault injected");
                return task.await;
            };
            tracing::warn!(task = name, ?fault, "{VAR}: this task fails on SIGUSR1");
            tokio::select! {
                () = task => {}
                _ = usr1.recv() => match fault {
                    Fault::Panic => panic!("fault injected into task {name}"),
                    Fault::Return => tracing::warn!(task = name, "fault injected: returning"),
                    Fault::Hang => {
                        tracing::warn!(task = name, "fault injected: hanging");
                        std::future::pending::<()>().await;
                    }
                },
            }
        }
    }
}
