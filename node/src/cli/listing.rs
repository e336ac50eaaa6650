//! `banmesh records`: prints the node's records as their frames arrive, so
//! the client holds one frame of them (about a MiB) and not the whole store.
//! With `--json` the output is the same pretty JSON array a gathered answer
//! would print; as text, the columns are fitted to the first frame's rows.

use std::io::{self, Write};

use super::control::{Connect, RECORD_HEADER, record_row};
use super::table::Table;
use crate::clock::now_ms;
use crate::control::{self, Command, RecordView, Response};

/// Asks the node for `request`'s records and prints them as they come.
pub(super) async fn run(connect: &Connect, request: Command) -> anyhow::Result<()> {
    let stdout = io::stdout();
    let mut printer = Printer::new(io::BufWriter::new(stdout.lock()), connect.json, now_ms());
    let idle = control::client::CALL_TIMEOUT;
    let answer =
        control::client::call_records(&connect.socket, request, idle, |rs| printer.push(rs)).await;
    match answer? {
        Response::Error { message } => {
            // What was printed so far stays; the error says it is not all.
            printer.out.flush()?;
            anyhow::bail!("{message}")
        }
        _ => {
            printer.finish()?;
            Ok(())
        }
    }
}

/// Records in text or JSON, one frame of them at a time.
pub(super) struct Printer<W: Write> {
    out: W,
    json: bool,
    now: u64,
    table: Option<Table>,
    count: u64,
}

impl<W: Write> Printer<W> {
    /// A printer writing to `out`; times are shown relative to `now`.
    pub(super) fn new(out: W, json: bool, now: u64) -> Printer<W> {
        Printer { out, json, now, table: None, count: 0 }
    }

    /// Prints the next records.
    pub(super) fn push(&mut self, records: Vec<RecordView>) -> io::Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        if self.json {
            for record in records {
                self.json_item(&record)?;
            }
            return Ok(());
        }
        let rows: Vec<Vec<String>> = records.iter().map(|r| record_row(r, self.now)).collect();
        let table = match &self.table {
            Some(table) => table,
            None => {
                let table = Table::fit(&RECORD_HEADER, &rows);
                self.out.write_all(table.line(&RECORD_HEADER).as_bytes())?;
                self.table.insert(table)
            }
        };
        for row in &rows {
            self.out.write_all(table.line(row).as_bytes())?;
        }
        self.count += rows.len() as u64;
        Ok(())
    }

    /// One record as an element of a pretty array (indented two spaces,
    /// keys in the order a `serde_json::Value` prints them).
    fn json_item(&mut self, record: &RecordView) -> io::Result<()> {
        let value = serde_json::to_value(record).map_err(io::Error::other)?;
        let text = serde_json::to_string_pretty(&value).map_err(io::Error::other)?;
        self.out.write_all(if self.count == 0 { b"[\n" } else { b",\n" })?;
        for (n, line) in text.lines().enumerate() {
            if n > 0 {
                self.out.write_all(b"\n")?;
            }
            write!(self.out, "  {line}")?;
        }
        self.count += 1;
        Ok(())
    }

    /// Ends the output: closes the array, or says how many records.
    pub(super) fn finish(mut self) -> io::Result<W> {
        match (self.json, self.count) {
            (true, 0) => self.out.write_all(b"[]\n")?,
            (true, _) => self.out.write_all(b"\n]\n")?,
            (false, 0) => self.out.write_all(b"no records\n")?,
            (false, n) => writeln!(self.out, "{n} record(s)")?,
        }
        self.out.flush()?;
        Ok(self.out)
    }
}

/// `records` as text, all at once (for answers already gathered).
pub(super) fn text(records: &[RecordView], now: u64) -> String {
    let mut printer = Printer::new(Vec::new(), false, now);
    // Writing into a Vec cannot fail.
    let _ = printer.push(records.to_vec());
    let out = printer.finish().unwrap_or_default();
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(n: u8) -> RecordView {
        let value = serde_json::json!({
            "id": format!("{n:064x}"), "key": format!("192.0.2.{n}"), "kind": "ban",
            "origin_key": "ab".repeat(32), "origin_name": "n1",
            "issued_at_ms": 1_700_000_000_000u64, "issued_at": "2023-11-14T22:13:20Z",
            "expires_at_ms": null, "strikes": 1, "jail": "sshd", "reason": "a\nb",
            "source": "", "valid": true, "arrived_at_ms": null, "arrived_from": null,
        });
        serde_json::from_value(value).unwrap()
    }

    fn printed(json: bool, frames: Vec<Vec<RecordView>>) -> String {
        let mut printer = Printer::new(Vec::new(), json, 1_700_000_000_000);
        for frame in frames {
            printer.push(frame).unwrap();
        }
        String::from_utf8(printer.finish().unwrap()).unwrap()
    }

    #[test]
    fn streamed_json_is_the_array_a_gathered_answer_prints() {
        let records: Vec<RecordView> = (1..=5).map(record).collect();
        let whole = serde_json::to_value(&records).unwrap();
        let expected = format!("{}\n", serde_json::to_string_pretty(&whole).unwrap());
        let frames = vec![records[..2].to_vec(), Vec::new(), records[2..].to_vec()];
        assert_eq!(printed(true, frames), expected);
        assert_eq!(printed(true, vec![Vec::new()]), "[]\n");
    }

    #[test]
    fn streamed_text_keeps_the_first_frames_columns_and_counts_all() {
        let frames = vec![vec![record(1)], vec![record(2), record(3)]];
        let text = printed(false, frames);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("KEY"), "{text}");
        assert_eq!(lines.len(), 5, "{text}");
        assert_eq!(lines[4], "3 record(s)");
        let column = |line: &str| line.find("ban");
        assert_eq!(column(lines[1]), column(lines[3]), "{text}");
        assert_eq!(printed(false, Vec::new()), "no records\n");
    }
}
