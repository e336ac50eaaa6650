//! `fail2ban-client`, run as a child process with a time limit, and its
//! answers parsed: jails, bans (with their times), `ignoreip` (read in one
//! `fail2ban-client -i` per round), batched `set JAIL banip|unbanip`. Entries Fail2Ban holds that are not addresses
//! (a hand-edited jail) are left out, never an error.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncWriteExt as _;

use banmesh_crdt::Key;

use crate::config::Fail2BanConfig;

/// How long one `fail2ban-client` call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// How much longer a `set` call may take per address it carries: Fail2Ban
/// runs the jail's action once per address before it answers.
const PER_ADDRESS: Duration = Duration::from_millis(20);

/// One ban a jail holds, as `get JAIL banip --with-time` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket {
    /// The address or network.
    pub key: Key,
    /// When Fail2Ban banned it (Unix ms).
    pub start_ms: u64,
    /// When the ban ends (Unix ms); `None` for a ban without end (-1).
    pub end_ms: Option<u64>,
}

/// `fail2ban-client`, with its config dir.
#[derive(Debug, Clone)]
pub struct Client {
    program: String,
    config_dir: Option<PathBuf>,
}

impl Client {
    /// The client configured in `[fail2ban]`.
    pub fn new(config: &Fail2BanConfig) -> Client {
        Client { program: config.client.clone(), config_dir: config.config_dir.clone() }
    }

    fn command(&self) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(&self.program);
        if let Some(dir) = &self.config_dir {
            command.arg("-c").arg(dir);
        }
        command.kill_on_drop(true);
        command
    }

    async fn run(&self, args: &[String], limit: Duration) -> Result<String, String> {
        let mut command = self.command();
        command.args(args);
        let output = tokio::time::timeout(limit, command.output())
            .await
            .map_err(|_| format!("{} did not answer within {limit:?}", self.program))?
            .map_err(|e| format!("cannot run {}: {e}; is fail2ban installed?", self.program))?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let stdout = String::from_utf8_lossy(&output.stdout);
            let text = format!("{}{}", stderr.trim(), stdout.trim());
            let hint = hint(&text);
            return Err(format!("{} {} failed: {text}{hint}", self.program, args.join(" ")));
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Runs `commands` (each like `get sshd ignoreip`) in one
    /// `fail2ban-client -i` process, which costs one Python start instead of
    /// one per command; returns each command's answer in order. An answer
    /// saying a jail does not exist is an error.
    pub async fn batch(&self, commands: &[String]) -> Result<Vec<String>, String> {
        if commands.is_empty() {
            return Ok(Vec::new());
        }
        let mut command = self.command();
        command.arg("-i").stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = command
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}; is fail2ban installed?", self.program))?;
        let input = commands.join("\n") + "\n";
        let talk = async {
            if let Some(mut stdin) = child.stdin.take() {
                stdin.write_all(input.as_bytes()).await?;
            }
            child.wait_with_output().await
        };
        let output = tokio::time::timeout(CALL_TIMEOUT, talk)
            .await
            .map_err(|_| format!("{} -i did not answer within {CALL_TIMEOUT:?}", self.program))?
            .map_err(|e| format!("cannot talk to {} -i: {e}", self.program))?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        // `-i` always exits 255 (it ends on EOF), so failures are read from
        // its log lines on stderr: every ERROR but that EOF is one.
        let stderr = String::from_utf8_lossy(&output.stderr);
        let errors: Vec<&str> = stderr
            .lines()
            .filter(|l| l.contains("ERROR") && !l.contains("EOF when reading a line"))
            .map(|l| l.split_once("ERROR").map_or(l, |(_, e)| e).trim())
            .collect();
        if !errors.is_empty() {
            let text = errors.join("; ");
            return Err(format!("{} -i failed: {text}{}", self.program, hint(&text)));
        }
        let parts: Vec<&str> = stdout.split(PROMPT).collect();
        if parts.len() != commands.len() + 2 {
            let text = format!("{}{}", stderr.trim(), stdout.trim());
            return Err(format!(
                "{} -i gave {} answers to {} commands: {text}{}",
                self.program,
                parts.len().saturating_sub(2),
                commands.len(),
                hint(&text)
            ));
        }
        let mut answers = Vec::with_capacity(commands.len());
        for (command, answer) in commands.iter().zip(&parts[1..=commands.len()]) {
            if answer.trim_start().starts_with("Sorry but") {
                let text = answer.trim();
                return Err(format!("{} {command} failed: {text}{}", self.program, hint(text)));
            }
            answers.push((*answer).to_owned());
        }
        Ok(answers)
    }

    /// Every jail's name (`status`).
    pub async fn jails(&self) -> Result<Vec<String>, String> {
        let out = self.run(&["status".into()], CALL_TIMEOUT).await?;
        Ok(out
            .lines()
            .find_map(|line| line.split_once("Jail list:").map(|(_, list)| list))
            .map(|list| {
                list.split(',').map(|j| j.trim().to_owned()).filter(|j| !j.is_empty()).collect()
            })
            .unwrap_or_default())
    }

    /// `set JAIL banip|unbanip` for `keys`, in batches of `batch`.
    pub async fn set(
        &self,
        jail: &str,
        verb: &str,
        keys: &[Key],
        batch: usize,
    ) -> Result<(), String> {
        for chunk in keys.chunks(batch.max(1)) {
            let mut args = vec!["set".to_owned(), jail.to_owned(), verb.to_owned()];
            args.extend(chunk.iter().map(ToString::to_string));
            let per = u32::try_from(chunk.len()).unwrap_or(u32::MAX);
            self.run(&args, CALL_TIMEOUT + PER_ADDRESS * per).await?;
        }
        Ok(())
    }
}

/// What `fail2ban-client -i` prints before reading each command.
const PROMPT: &str = "fail2ban> ";

/// A hint for a failure Fail2Ban described in `text`.
fn hint(text: &str) -> &'static str {
    if text.contains("does not exist") {
        "; is the jail configured (systemd/fail2ban/jail.d/banmesh.conf) and fail2ban reloaded?"
    } else if text.contains("Failed to access socket") || text.contains("running?") {
        "; is fail2ban-server running?"
    } else {
        ""
    }
}

/// The addresses and networks in a `get JAIL ignoreip` answer; entries
/// that are not addresses (host names) are left out.
pub fn parse_ignoreip(text: &str) -> Vec<Key> {
    text.lines()
        .filter_map(|line| {
            line.trim_start().strip_prefix("|-").or_else(|| line.trim_start().strip_prefix("`-"))
        })
        .filter_map(|entry| entry.trim().parse::<Key>().ok())
        .collect()
}

/// The addresses and networks in a `get JAIL banip --with-time` answer,
/// whether or not their times can be read.
pub fn parse_keys(text: &str) -> BTreeSet<Key> {
    text.lines().filter_map(|l| l.split_whitespace().next()?.parse::<Key>().ok()).collect()
}

/// The bans in a `get JAIL banip --with-time` answer; lines that are not
/// an address and times (a hand-edited jail) are left out.
pub fn parse_tickets(text: &str, offset_s: i64) -> Vec<Ticket> {
    text.lines().filter_map(|line| parse_ticket(line, offset_s)).collect()
}

/// The local time zone's offset from UTC in seconds (`date +%z`), which
/// Fail2Ban's printed times carry.
pub async fn local_offset_s() -> Result<i64, String> {
    let out = tokio::time::timeout(
        CALL_TIMEOUT,
        tokio::process::Command::new("date").arg("+%z").kill_on_drop(true).output(),
    )
    .await
    .map_err(|_| "date +%z did not answer".to_owned())?
    .map_err(|e| format!("cannot run date +%z: {e}"))?;
    parse_offset(String::from_utf8_lossy(&out.stdout).trim())
        .ok_or_else(|| "date +%z printed no offset".to_owned())
}

/// `+0130` → 5400, `-0500` → -18000.
fn parse_offset(text: &str) -> Option<i64> {
    let (sign, digits) = match text.as_bytes().first()? {
        b'+' => (1, &text[1..]),
        b'-' => (-1, &text[1..]),
        _ => return None,
    };
    if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let hours: i64 = digits[..2].parse().ok()?;
    let minutes: i64 = digits[2..].parse().ok()?;
    Some(sign * (hours * 3600 + minutes * 60))
}

/// One line of `--with-time`: `192.0.2.1 \t2026-11-25 15:55:11 + 600 = 2026-11-25 16:05:11`.
fn parse_ticket(line: &str, offset_s: i64) -> Option<Ticket> {
    let mut words = line.split_whitespace();
    let key = words.next()?.parse::<Key>().ok()?;
    let (date, time, plus, bantime) = (words.next()?, words.next()?, words.next()?, words.next()?);
    if plus != "+" {
        return None;
    }
    let start_s = local_to_unix(date, time)?.checked_sub(offset_s)?;
    let start_ms = u64::try_from(start_s).ok()?.checked_mul(1000)?;
    let bantime: i64 = bantime.parse().ok()?;
    let end_ms = match u64::try_from(bantime) {
        Ok(s) => Some(start_ms.checked_add(s.checked_mul(1000)?)?),
        Err(_) => None,
    };
    Some(Ticket { key, start_ms, end_ms })
}

/// `2026-11-25` `15:55:11` as seconds since the epoch, read as UTC.
fn local_to_unix(date: &str, time: &str) -> Option<i64> {
    let mut d = date.splitn(3, '-').map(str::parse::<i64>);
    let (y, m, day) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    let mut t = time.splitn(3, ':').map(str::parse::<i64>);
    let (h, min, s) = (t.next()?.ok()?, t.next()?.ok()?, t.next()?.ok()?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) || h > 23 || min > 59 || s > 60 {
        return None;
    }
    Some(days_from_civil(y, m, day) * 86_400 + h * 3600 + min * 60 + s)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn with_time_lines_are_read_and_junk_is_skipped() {
        let t = parse_ticket("192.0.2.1 \t2026-11-25 15:55:11 + 600 = 2026-11-25 16:05:11", 0)
            .expect("a ticket");
        assert_eq!(t.key, "192.0.2.1".parse().unwrap());
        assert_eq!(t.start_ms, 1_795_622_111_000);
        assert_eq!(t.end_ms, Some(1_795_622_711_000));
        let net = parse_ticket("10.0.0.0/30 \t2026-11-25 15:55:11 + 600 = x", 3600).unwrap();
        assert_eq!(net.start_ms, 1_795_622_111_000 - 3_600_000, "local time one hour ahead");
        let forever =
            parse_ticket("192.0.2.9 \t2026-11-25 15:55:11 + -1 = 9999-12-31 23:59:59", 0).unwrap();
        assert_eq!(forever.end_ms, None);
        let keys = parse_keys("192.0.2.1 \tsome other date format\nbogus \t2026\n10.0.0.0/30");
        assert_eq!(keys, ["192.0.2.1", "10.0.0.0/30"].iter().map(|k| k.parse().unwrap()).collect());
        for junk in ["", "bogus \t2026-11-25 15:55:11 + 600", "192.0.2.1", "192.0.2.1 x y + 6"] {
            assert_eq!(parse_ticket(junk, 0), None, "{junk:?}");
        }
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
    }

    #[test]
    fn offsets_are_read() {
        assert_eq!(parse_offset("+0000"), Some(0));
        assert_eq!(parse_offset("+0130"), Some(5400));
        assert_eq!(parse_offset("-0500"), Some(-18_000));
        assert_eq!(parse_offset("0500"), None);
        assert_eq!(parse_offset("+05"), None);
    }

    #[tokio::test]
    async fn a_missing_client_says_to_install_fail2ban() {
        let config = Fail2BanConfig {
            client: "/nonexistent/fail2ban-client".into(),
            ..crate::config::Config::from_toml("", "t", &Default::default()).unwrap().fail2ban
        };
        let err = Client::new(&config).jails().await.unwrap_err();
        assert!(err.contains("is fail2ban installed?"), "{err}");
    }
}
