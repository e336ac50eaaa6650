//! Whether the mesh jail's actions can hold networks. Fail2Ban keeps a
//! ticket in the jail even when its action failed, so a network handed to
//! an action that cannot hold it (Debian's nftables actions: a set without
//! `flags interval`; an ipset of type `hash:ip`) is listed as banned while
//! nothing blocks it. The actions' commands are read from Fail2Ban
//! (`get JAIL actions`, `actionproperties`, `action NAME actionstart`) and
//! judged; an action whose commands cannot be read (a Python action) is
//! trusted. Read at the first round, then at most once a [`RECHECK`].

use std::time::Duration;

use tokio::time::Instant;

use super::Client;

/// How long a judgement of the actions stands.
const RECHECK: Duration = Duration::from_secs(60);
/// The properties holding the commands that make a set and ban into it.
const COMMANDS: [&str; 2] = ["actionstart", "actionban"];

/// Whether the mesh jail's actions can hold networks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Networks {
    /// Every action takes networks, or says nothing against it.
    Held,
    /// `action` cannot hold networks, for the reason `why`.
    NotHeld {
        /// The action's name in the jail.
        action: String,
        /// Why, in a few words.
        why: &'static str,
    },
}

/// The last judgement, and when it was made.
#[derive(Default)]
pub(super) struct ActionCheck {
    last: Option<(Instant, Networks)>,
}

impl ActionCheck {
    /// Whether `jail`'s actions can hold networks, read again when the last
    /// judgement is older than [`RECHECK`] or was forgotten.
    pub(super) async fn networks(
        &mut self,
        client: &Client,
        jail: &str,
    ) -> Result<Networks, String> {
        if let Some((at, networks)) = &self.last
            && at.elapsed() < RECHECK
        {
            return Ok(networks.clone());
        }
        let networks = check(client, jail).await?;
        self.last = Some((Instant::now(), networks.clone()));
        Ok(networks)
    }

    /// Reads the actions again at the next round (Fail2Ban may have been
    /// restarted with other actions).
    pub(super) fn forget(&mut self) {
        self.last = None;
    }
}

/// Reads `jail`'s actions and their commands (three `fail2ban-client -i`
/// runs) and judges them.
async fn check(client: &Client, jail: &str) -> Result<Networks, String> {
    let answer = client.batch(&[format!("get {jail} actions")]).await?;
    let names = parse_actions(answer.first().map_or("", String::as_str));
    let asks: Vec<String> =
        names.iter().map(|n| format!("get {jail} actionproperties {n}")).collect();
    let properties = client.batch(&asks).await?;
    let mut asks = Vec::new();
    let mut owners = Vec::new();
    for (name, answer) in names.iter().zip(&properties) {
        let listed = parse_properties(answer);
        for property in COMMANDS.iter().filter(|p| listed.contains(p)) {
            asks.push(format!("get {jail} action {name} {property}"));
            owners.push(name);
        }
    }
    let commands = client.batch(&asks).await?;
    for (name, text) in owners.into_iter().zip(&commands) {
        if let Some(why) = cannot_hold(text) {
            return Ok(Networks::NotHeld { action: name.clone(), why });
        }
    }
    Ok(Networks::Held)
}

/// The names in a `get JAIL actions` answer: the lines after the first.
fn parse_actions(text: &str) -> Vec<String> {
    text.lines()
        .skip(1)
        .flat_map(|line| line.split(','))
        .map(str::trim)
        .filter(|name| !name.is_empty() && !name.contains(char::is_whitespace))
        .map(str::to_owned)
        .collect()
}

/// The properties in a `get JAIL actionproperties NAME` answer.
fn parse_properties(text: &str) -> Vec<&str> {
    text.lines().skip(1).flat_map(|line| line.split(',')).map(str::trim).collect()
}

/// Why an action whose commands are `text` cannot hold networks, if it
/// plainly cannot: it makes an nftables set without `flags interval`, or
/// an ipset of type `hash:ip`.
pub fn cannot_hold(text: &str) -> Option<&'static str> {
    text.lines().find_map(|line| {
        let nft_set = line.contains("nft") && line.contains(" add set ");
        if nft_set && !line.contains("interval") {
            return Some("its nftables set has no `flags interval`");
        }
        let ipset = line.contains("ipset") && line.contains(" create ");
        (ipset && line.split_whitespace().any(|w| w == "hash:ip")).then_some("its ipset is hash:ip")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_read() {
        let names = parse_actions(
            "The jail banmesh has the following actions:\nnftables-multiport, banmesh-nftables\n",
        );
        assert_eq!(names, ["nftables-multiport", "banmesh-nftables"]);
        let props = parse_properties(
            "The jail banmesh action x has the following properties:\nactionban, actionstart, name",
        );
        assert!(props.contains(&"actionstart") && props.contains(&"actionban"), "{props:?}");
    }

    #[test]
    fn sets_without_interval_and_hash_ip_cannot_hold_networks() {
        let debian = "nft add table inet f2b-table\n\
             nft add set inet f2b-table <addr_set> \\{ type <addr_type>\\; \\}\n";
        assert_eq!(cannot_hold(debian), Some("its nftables set has no `flags interval`"));
        let ours =
            "nft add set inet f2b-table <addr_set> \\{ type <addr_type>\\; flags interval\\; \\}";
        assert_eq!(cannot_hold(ours), None);
        let ipset = "ipset create <ipmset> hash:ip timeout 0 maxelem 65536";
        assert_eq!(cannot_hold(ipset), Some("its ipset is hash:ip"));
        assert_eq!(cannot_hold("ipset create <ipmset> hash:net timeout 0"), None);
        assert_eq!(cannot_hold("iptables -w -I f2b-<name> 1 -s <ip> -j REJECT"), None);
        assert_eq!(cannot_hold(""), None);
    }
}
