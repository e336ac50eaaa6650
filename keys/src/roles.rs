//! What a certificate lets a node do: its [`Roles`] (`ban`, `allow`,
//! `wide-prefix`) and an optional explicit widest prefix, [`MaxPrefix`].

use std::fmt;
use std::str::FromStr;

/// Why a role list or prefix pair could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// A role name is not one of the defined roles.
    #[error("unknown role {text:?}: valid roles are ban, allow, wide-prefix (or none)")]
    Role {
        /// The name as given.
        text: String,
    },
    /// The text is not `V4,V6` with V4 ≤ 32 and V6 ≤ 128.
    #[error(
        "invalid prefix pair {text:?}: write it as V4,V6 with V4 <= 32 and V6 <= 128, e.g. 16,48"
    )]
    Prefix {
        /// The text as given.
        text: String,
    },
}

/// One thing a certificate may allow its node to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Issue Ban and Unban records.
    Ban,
    /// Issue Allow and Disallow records.
    Allow,
    /// Act on networks wider than the default /16 (IPv4) and /48 (IPv6).
    WidePrefix,
}

impl Role {
    /// Every role, in bit order.
    pub const ALL: [Role; 3] = [Role::Ban, Role::Allow, Role::WidePrefix];

    /// The role's bit in [`Roles`].
    pub const fn bit(self) -> u8 {
        match self {
            Role::Ban => 1,
            Role::Allow => 2,
            Role::WidePrefix => 4,
        }
    }

    /// The role's name as written on the command line.
    pub const fn name(self) -> &'static str {
        match self {
            Role::Ban => "ban",
            Role::Allow => "allow",
            Role::WidePrefix => "wide-prefix",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Role {
    type Err = ParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|role| role.name() == text)
            .ok_or_else(|| ParseError::Role { text: text.to_owned() })
    }
}

/// A set of [`Role`]s, stored as a bitset (`ban`=1, `allow`=2, `wide-prefix`=4).
///
/// Written `ban,allow`; the empty set is written `none`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Roles(u8);

impl Roles {
    /// No roles: the node may relay but issue nothing.
    pub const NONE: Roles = Roles(0);
    /// Every defined bit.
    const DEFINED: u8 = 1 | 2 | 4;

    /// The set with the given bits, or `None` if an undefined bit is set.
    pub const fn from_bits(bits: u8) -> Option<Roles> {
        if bits & !Self::DEFINED == 0 { Some(Roles(bits)) } else { None }
    }

    /// The set's bits.
    pub const fn bits(self) -> u8 {
        self.0
    }

    /// Whether `role` is in the set.
    pub const fn contains(self, role: Role) -> bool {
        self.0 & role.bit() != 0
    }

    /// The set with `role` added.
    pub const fn with(self, role: Role) -> Roles {
        Roles(self.0 | role.bit())
    }

    /// The roles in the set, in bit order.
    pub fn iter(self) -> impl Iterator<Item = Role> {
        Role::ALL.into_iter().filter(move |role| self.contains(*role))
    }
}

impl FromIterator<Role> for Roles {
    fn from_iter<I: IntoIterator<Item = Role>>(iter: I) -> Self {
        iter.into_iter().fold(Roles::NONE, Roles::with)
    }
}

impl fmt::Display for Roles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 == 0 {
            return f.write_str("none");
        }
        let names: Vec<&str> = self.iter().map(Role::name).collect();
        f.write_str(&names.join(","))
    }
}

impl FromStr for Roles {
    type Err = ParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.trim() == "none" {
            return Ok(Roles::NONE);
        }
        text.split(',').map(|part| part.trim().parse::<Role>()).collect()
    }
}

/// An explicit widest prefix a node may act on: a network is allowed when its
/// prefix length is at least this (smaller lengths are wider networks).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MaxPrefix {
    /// Widest IPv4 prefix length, 0..=32.
    pub v4: u8,
    /// Widest IPv6 prefix length, 0..=128.
    pub v6: u8,
}

impl MaxPrefix {
    /// Widest prefix lengths a node may use without the `wide-prefix` role.
    pub const DEFAULT: MaxPrefix = MaxPrefix { v4: 16, v6: 48 };

    /// Whether both lengths are possible prefix lengths.
    pub const fn is_in_range(self) -> bool {
        self.v4 <= 32 && self.v6 <= 128
    }

    /// Whether either length is wider than [`MaxPrefix::DEFAULT`].
    pub const fn is_wider_than_default(self) -> bool {
        self.v4 < Self::DEFAULT.v4 || self.v6 < Self::DEFAULT.v6
    }

    /// The length for one address family.
    pub const fn get(self, is_v4: bool) -> u8 {
        if is_v4 { self.v4 } else { self.v6 }
    }
}

impl fmt::Display for MaxPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{},{}", self.v4, self.v6)
    }
}

impl FromStr for MaxPrefix {
    type Err = ParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let error = || ParseError::Prefix { text: text.to_owned() };
        let (v4, v6) = text.split_once(',').ok_or_else(error)?;
        let parse = |part: &str| part.trim().trim_start_matches('/').parse::<u8>();
        let prefix =
            MaxPrefix { v4: parse(v4).map_err(|_| error())?, v6: parse(v6).map_err(|_| error())? };
        if prefix.is_in_range() { Ok(prefix) } else { Err(error()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_round_trip() {
        let roles: Roles = "ban,allow".parse().expect("parse");
        assert_eq!(roles.bits(), 3);
        assert_eq!(roles.to_string(), "ban,allow");
        assert_eq!("allow, ban".parse::<Roles>(), Ok(roles));
        let all: Roles = "wide-prefix,ban,allow".parse().expect("parse");
        assert_eq!(all.to_string(), "ban,allow,wide-prefix");
        assert_eq!("none".parse::<Roles>(), Ok(Roles::NONE));
        assert_eq!(Roles::NONE.to_string(), "none");
    }

    #[test]
    fn unknown_role_lists_the_valid_ones() {
        let error = "ban,root".parse::<Roles>().expect_err("unknown role");
        assert_eq!(error, ParseError::Role { text: "root".to_owned() });
        let text = error.to_string();
        assert!(text.contains("ban, allow, wide-prefix"), "{text}");
        assert!("".parse::<Roles>().is_err());
    }

    #[test]
    fn from_bits_refuses_undefined_bits() {
        assert_eq!(Roles::from_bits(7).map(Roles::bits), Some(7));
        assert_eq!(Roles::from_bits(8), None);
        assert_eq!(Roles::from_bits(0x83), None);
    }

    #[test]
    fn max_prefix_parses_and_checks_ranges() {
        assert_eq!("8,32".parse(), Ok(MaxPrefix { v4: 8, v6: 32 }));
        assert_eq!("/24, /64".parse(), Ok(MaxPrefix { v4: 24, v6: 64 }));
        for bad in ["8", "33,48", "16,129", "a,b", "16,48,1", ""] {
            assert!(bad.parse::<MaxPrefix>().is_err(), "{bad}");
        }
        assert!(MaxPrefix { v4: 8, v6: 48 }.is_wider_than_default());
        assert!(!MaxPrefix { v4: 24, v6: 64 }.is_wider_than_default());
    }
}
