//! A line reader whose memory does not grow with the input: a line longer
//! than [`MAX_LINE`] bytes keeps its first [`MAX_LINE`] bytes and the rest
//! of it is skipped as it is read, so a 2 GB line or a file of binary junk
//! costs no more than a short line.

use std::io::{self, BufRead};

/// Longest line kept, in bytes; public lists' lines are under 100.
pub const MAX_LINE: usize = 4096;

/// What [`LineReader::next_line`] read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Line {
    /// The line's number, from 1.
    pub number: u64,
    /// The line was longer than [`MAX_LINE`]; only its start is kept.
    pub too_long: bool,
}

/// Reads lines (`\n` or `\r\n`) from `R`, at most [`MAX_LINE`] bytes each.
#[derive(Debug)]
pub struct LineReader<R> {
    inner: R,
    number: u64,
    /// Bytes consumed so far, for progress.
    consumed: u64,
}

impl<R: BufRead> LineReader<R> {
    /// A reader over `inner`.
    pub fn new(inner: R) -> LineReader<R> {
        LineReader { inner, number: 0, consumed: 0 }
    }

    /// Bytes read so far.
    pub fn consumed(&self) -> u64 {
        self.consumed
    }

    /// The next line into `buf` (cleared first, without its end of line);
    /// `None` at the end of the input.
    pub fn next_line(&mut self, buf: &mut Vec<u8>) -> io::Result<Option<Line>> {
        buf.clear();
        let (mut too_long, mut any) = (false, false);
        loop {
            let chunk = match self.inner.fill_buf() {
                Ok(chunk) => chunk,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if chunk.is_empty() {
                break;
            }
            any = true;
            let (piece, used, done) = match chunk.iter().position(|&b| b == b'\n') {
                Some(at) => (&chunk[..at], at + 1, true),
                None => (chunk, chunk.len(), false),
            };
            let room = MAX_LINE.saturating_sub(buf.len());
            if piece.len() > room {
                too_long = true;
            }
            buf.extend_from_slice(&piece[..piece.len().min(room)]);
            self.inner.consume(used);
            self.consumed += used as u64;
            if done {
                break;
            }
        }
        if !any {
            return Ok(None);
        }
        if buf.last() == Some(&b'\r') {
            buf.pop();
        }
        self.number += 1;
        Ok(Some(Line { number: self.number, too_long }))
    }
}
