//! STUB with the agreed API; replaced by the real keys-file loader at merge.
use crate::wire::codes::{Environment, Scopes};

pub struct Secret([u8; 32]);
impl Secret {
    pub fn from_bytes(b: [u8; 32]) -> Secret {
        Secret(b)
    }
    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }
}

pub struct KeyEntry {
    pub id: u64,
    pub secret: Secret,
    pub scopes: Scopes,
    pub environment: Environment,
    pub msgs_per_sec: u32,
    pub burst: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyIndex(pub u32);

pub struct KeyTable {
    entries: Vec<KeyEntry>,
}

impl KeyTable {
    pub fn from_entries(mut entries: Vec<KeyEntry>) -> Result<KeyTable, String> {
        entries.sort_by_key(|e| e.id);
        Ok(KeyTable { entries })
    }
    pub fn get(&self, id: u64) -> Option<(KeyIndex, &KeyEntry)> {
        let i = self.entries.binary_search_by_key(&id, |e| e.id).ok()?;
        Some((KeyIndex(i as u32), &self.entries[i]))
    }
    pub fn iter(&self) -> impl Iterator<Item = (KeyIndex, &KeyEntry)> {
        self.entries
            .iter()
            .enumerate()
            .map(|(i, e)| (KeyIndex(i as u32), e))
    }
}
