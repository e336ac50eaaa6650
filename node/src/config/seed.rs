//! Reading the old Fail2BanSync server's `serverconfig.ini` as it is: a small
//! INI reader that takes the tokens from `[api_tokens]` and the ban settings
//! from `[DEFAULT]`, and ignores every other section. Unlike Python's
//! configparser, `[DEFAULT]` keys never become tokens (SEED-API.md).

use std::path::{Path, PathBuf};
use std::time::Duration;

use banmesh_crdt::duration::parse_duration;

/// What the seed file says: its tokens and the settings it sets.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Seed {
    /// `(name, token)` from `[api_tokens]`, names lower-cased as configparser does.
    pub tokens: Vec<(String, String)>,
    /// `bantime`.
    pub bantime: Option<Duration>,
    /// `bantime.increment`.
    pub increment: Option<bool>,
    /// `bantime.factor`.
    pub factor: Option<f64>,
    /// `bantime.maxtime`.
    pub maxtime: Option<Duration>,
    /// `allowed_duration`.
    pub allowed_duration: Option<Duration>,
    /// `known_duration`.
    pub known_duration: Option<Duration>,
}

/// Why the seed file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    /// The file could not be read.
    #[error("cannot read the seed config {}: {error}; check --seed-config and its permissions", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the system said.
        error: std::io::Error,
    },
    /// A line is not INI, or a value is not what its key needs.
    #[error("{}:{line}: {message}", path.display())]
    Line {
        /// The file.
        path: PathBuf,
        /// Counting from 1.
        line: usize,
        /// What is wrong and what to write instead.
        message: String,
    },
}

impl Seed {
    /// Reads and parses the file at `path`.
    pub fn load(path: &Path) -> Result<Seed, SeedError> {
        let text = std::fs::read_to_string(path)
            .map_err(|error| SeedError::Read { path: path.to_owned(), error })?;
        Seed::parse(&text).map_err(|(line, message)| SeedError::Line {
            path: path.to_owned(),
            line,
            message,
        })
    }

    /// Parses the text of a `serverconfig.ini`; an error is `(line, message)`.
    pub fn parse(text: &str) -> Result<Seed, (usize, String)> {
        let mut seed = Seed::default();
        let mut section: Option<String> = None;
        let mut seen: Vec<(String, String)> = Vec::new();
        for (index, raw) in text.lines().enumerate() {
            let line_no = index + 1;
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            let fail = |message: String| (line_no, message);
            if raw.starts_with([' ', '\t']) && section.is_some() && !seen.is_empty() {
                return Err(fail(
                    "continuation lines are not supported: write each value on one line".into(),
                ));
            }
            if let Some(rest) = line.strip_prefix('[') {
                let name = rest
                    .strip_suffix(']')
                    .ok_or_else(|| fail(format!("{line:?} is not a [section] header")))?;
                section = Some(name.trim().to_owned());
                continue;
            }
            let Some(at) = line.find(['=', ':']) else {
                return Err(fail(format!("{line:?} is not `name = value`")));
            };
            let name = line[..at].trim().to_lowercase();
            let value = line[at + 1..].trim();
            let Some(current) = &section else {
                return Err(fail("`name = value` before any [section] header".into()));
            };
            if name.is_empty() {
                return Err(fail("a value without a name".into()));
            }
            if seen.iter().any(|(s, n)| s == current && *n == name) {
                return Err(fail(format!("{name:?} appears twice in [{current}]")));
            }
            seen.push((current.clone(), name.clone()));
            match current.as_str() {
                "DEFAULT" => seed.setting(&name, value).map_err(fail)?,
                "api_tokens" => {
                    if let Some(problem) = super::gateway::client_name_problem(&name) {
                        return Err(fail(format!("[api_tokens]: {problem}")));
                    }
                    if value.is_empty() {
                        return Err(fail(format!("the token of {name:?} is empty")));
                    }
                    seed.tokens.push((name, value.to_owned()));
                }
                _ => {}
            }
        }
        Ok(seed)
    }

    fn setting(&mut self, name: &str, value: &str) -> Result<(), String> {
        match name {
            "bantime" => self.bantime = Some(duration(name, value)?),
            "bantime.maxtime" => self.maxtime = Some(duration(name, value)?),
            "allowed_duration" => self.allowed_duration = Some(duration(name, value)?),
            "known_duration" => self.known_duration = Some(duration(name, value)?),
            "bantime.increment" => self.increment = Some(boolean(name, value)?),
            "bantime.factor" => {
                let factor: f64 = value
                    .parse()
                    .map_err(|_| format!("{name} = {value:?} is not a number; write it like 24"))?;
                self.factor = Some(factor);
            }
            _ => {}
        }
        Ok(())
    }
}

/// `15m`, `2h`, `1d12h` as everywhere in banmesh, or a bare number of
/// seconds as Fail2Ban writes them.
fn duration(name: &str, value: &str) -> Result<Duration, String> {
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        return value
            .parse::<u64>()
            .ok()
            .filter(|s| s.checked_mul(1000).is_some())
            .map(Duration::from_secs)
            .ok_or_else(|| format!("{name} = {value:?} is too long"));
    }
    parse_duration(value).map_err(|e| format!("{name}: {e}"))
}

/// configparser's booleans.
fn boolean(name: &str, value: &str) -> Result<bool, String> {
    match value.to_lowercase().as_str() {
        "1" | "yes" | "true" | "on" => Ok(true),
        "0" | "no" | "false" | "off" => Ok(false),
        _ => Err(format!("{name} = {value:?} is not a boolean; write true or false")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_come_only_from_api_tokens() {
        let text = "[DEFAULT]\nbantime = 15m\nbantime.increment = false\nbantime.factor = 2\n\
                    bantime.maxtime = 1w\nallowed_duration = 90\nknown_duration = 2d\n\
                    web_user = admin\nweb_pass = admin123\n\n# comment\n; other\n\
                    [api_tokens]\nWeb1 = abc123\nweb2: def 456\n[dashboard]\nx = y\n";
        let seed = Seed::parse(text).expect("parses");
        assert_eq!(
            seed.tokens,
            [("web1".to_owned(), "abc123".to_owned()), ("web2".to_owned(), "def 456".to_owned())]
        );
        assert_eq!(seed.bantime, Some(Duration::from_secs(900)));
        assert_eq!(seed.increment, Some(false));
        assert_eq!(seed.factor, Some(2.0));
        assert_eq!(seed.maxtime, Some(Duration::from_secs(7 * 86_400)));
        assert_eq!(seed.allowed_duration, Some(Duration::from_secs(90)));
        assert_eq!(seed.known_duration, Some(Duration::from_secs(2 * 86_400)));
    }

    #[test]
    fn broken_lines_are_named() {
        for (text, line) in [
            ("x = 1\n", 1),
            ("[DEFAULT]\nbantime = soon\n", 2),
            ("[api_tokens]\na = 1\n\nb\n", 4),
            ("[api_tokens\n", 1),
            ("[api_tokens]\na = 1\na = 2\n", 3),
            ("[api_tokens]\na =\n", 2),
            ("[DEFAULT]\nbantime.factor = lots\n", 2),
            ("[DEFAULT]\nbantime.increment = maybe\n", 2),
            ("[api_tokens]\na = 1\n  more\n", 3),
            ("[api_tokens]\na = 1\nweb@1 = 2\n", 3),
            ("[api_tokens]\nweb 1 = 2\n", 2),
            ("[api_tokens]\nweb\u{7}1 = 2\n", 2),
        ] {
            let (at, message) = Seed::parse(text).expect_err(text);
            assert_eq!(at, line, "{text:?}: {message}");
        }
        let (_, message) = Seed::parse("[api_tokens]\nweb 1 = 2\n").unwrap_err();
        assert!(message.contains("client name \"web 1\""), "{message}");
    }
}
