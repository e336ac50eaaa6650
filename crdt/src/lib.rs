//! The replicated state of banmesh: the signed record, its canonical bytes,
//! the total order, the merge, decisions, expiry, GC and the clock rule.
//! Sans-IO: no clock, RNG, network or disk; `now` is always a parameter.

pub mod duration;
pub mod hlc;
pub mod key;
pub mod params;
pub mod record;
pub mod slots;
pub mod state;
pub mod wire;

pub use hlc::{Hlc, HlcClock, KeyAhead};
pub use key::{Key, KeyError, ParsedKey};
pub use params::{BanPolicy, Params};
pub use record::{Id, Kind, Metadata, Origin, Record, RecordError, Statement};
pub use slots::KeySlots;
pub use state::{Decision, KeyDecision, KeySummary, Live, Slot, State};
pub use wire::DecodeError;
