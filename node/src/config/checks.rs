//! The checks every section's validation uses: a number's floor, a
//! duration (and a positive one), a path and list entries not empty; each
//! error names the file and the key.

use std::path::Path;
use std::time::Duration;

use banmesh_crdt::duration::parse_duration;

use super::{ConfigError, Validator};

impl Validator<'_> {
    pub(super) fn at_least(
        &self,
        key: &'static str,
        value: u64,
        min: u64,
        why: &'static str,
    ) -> Result<u64, ConfigError> {
        if value < min {
            return Err(ConfigError::TooSmall {
                origin: self.origin.to_owned(),
                key,
                value,
                min,
                why,
            });
        }
        Ok(value)
    }

    pub(super) fn duration(&self, key: &'static str, text: &str) -> Result<Duration, ConfigError> {
        parse_duration(text).map_err(|error| ConfigError::Duration {
            origin: self.origin.to_owned(),
            key,
            error,
        })
    }

    pub(super) fn positive(&self, key: &'static str, text: &str) -> Result<Duration, ConfigError> {
        let duration = self.duration(key, text)?;
        if duration.is_zero() {
            return Err(ConfigError::Zero { origin: self.origin.to_owned(), key });
        }
        Ok(duration)
    }

    pub(super) fn non_empty_path(&self, key: &'static str, path: &Path) -> Result<(), ConfigError> {
        if path.as_os_str().is_empty() {
            return Err(ConfigError::EmptyPath { origin: self.origin.to_owned(), key });
        }
        Ok(())
    }

    pub(super) fn non_empty_entries(
        &self,
        key: &'static str,
        entries: &[String],
    ) -> Result<(), ConfigError> {
        match entries.iter().position(|entry| entry.trim().is_empty()) {
            Some(index) => Err(ConfigError::EmptyEntry {
                origin: self.origin.to_owned(),
                key,
                position: index + 1,
            }),
            None => Ok(()),
        }
    }
}
