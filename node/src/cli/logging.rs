//! The node's log: to stderr, filtered by `RUST_LOG`, else `[log] level`,
//! else `info`. When stderr is the journal (systemd sets `JOURNAL_STREAM`
//! to its device and inode), each line starts with its syslog priority
//! (`<3>` error, `<4>` warn, `<6>` info, `<7>` debug and trace), which
//! journald reads and strips, so `journalctl -p warning` selects; the
//! journal keeps its own timestamps, so none is written.
//!
//! Priority prefixes rather than the `tracing-journald` crate: no extra
//! dependency or socket (the unit's `RestrictAddressFamilies` stays as it
//! is), and the same stream works under any service manager that captures
//! stderr. What is lost is structured journal fields: the fields stay in
//! the text.

use std::fmt;
use std::io::IsTerminal as _;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// Starts logging: `RUST_LOG` wins over `level` (`[log] level`).
pub fn init(level: Option<&str>) {
    let filter = EnvFilter::try_from_default_env()
        .ok()
        .or_else(|| level.and_then(|l| EnvFilter::try_new(l).ok()))
        .unwrap_or_else(|| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = if stderr_is_journal() {
        let format = tracing_subscriber::fmt::format().without_time().with_ansi(false);
        builder.with_ansi(false).event_format(Prefixed(format)).try_init()
    } else {
        builder.with_ansi(std::io::stderr().is_terminal()).try_init()
    };
}

/// What starts a line of the final `Error: ...` on stderr: the error
/// priority `<3>` when stderr is the journal, else nothing.
pub fn error_prefix() -> &'static str {
    if stderr_is_journal() { "<3>" } else { "" }
}

/// Whether stderr is the stream `JOURNAL_STREAM` names (`DEVICE:INODE`).
fn stderr_is_journal() -> bool {
    use std::os::fd::AsFd as _;
    use std::os::unix::fs::MetadataExt as _;
    let Ok(stream) = std::env::var("JOURNAL_STREAM") else { return false };
    let Ok(fd) = std::io::stderr().as_fd().try_clone_to_owned() else { return false };
    let Ok(meta) = std::fs::File::from(fd).metadata() else { return false };
    names(&stream, meta.dev(), meta.ino())
}

/// Whether `JOURNAL_STREAM`'s value names the file `dev`, `ino`.
fn names(stream: &str, dev: u64, ino: u64) -> bool {
    stream.split_once(':').is_some_and(|(d, i)| d.parse() == Ok(dev) && i.parse() == Ok(ino))
}

/// The syslog priority of a level.
fn priority(level: Level) -> u8 {
    match level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        Level::DEBUG | Level::TRACE => 7,
    }
}

/// A format that writes `<N>` before each event.
struct Prefixed<F>(F);

impl<S, N, F> FormatEvent<S, N> for Prefixed<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        write!(writer, "<{}>", priority(*event.metadata().level()))?;
        self.0.format_event(ctx, writer, event)
    }
}

#[cfg(test)]
mod tests {
    use super::{names, priority};
    use tracing::Level;

    #[test]
    fn journal_stream_must_name_this_device_and_inode() {
        assert!(names("2049:1234", 2049, 1234));
        assert!(!names("2049:1235", 2049, 1234));
        assert!(!names("junk", 2049, 1234));
        assert_eq!(priority(Level::WARN), 4);
        assert_eq!(priority(Level::ERROR), 3);
    }
}
