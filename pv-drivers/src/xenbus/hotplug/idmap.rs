//! The manager's tables by device id: a vector kept sorted by id.
//!
//! A domain has a handful of devices of a kind, so a sorted vector is as
//! fast as a `BTreeMap` here, and much smaller in the image: every
//! `BTreeMap<String, V>` brings its own copy of the tree's node code for
//! each value type (the two drivers' slots, the history, the broken
//! entries: 25 KiB of the guest, issue 17), where this is a binary
//! search and a `Vec` insert or remove.

use alloc::string::String;
use alloc::vec::Vec;

pub struct IdMap<V> {
    /// Sorted by id, each id once.
    items: Vec<(String, V)>,
}

impl<V> Default for IdMap<V> {
    fn default() -> Self {
        IdMap { items: Vec::new() }
    }
}

impl<V> IdMap<V> {
    pub fn new() -> Self {
        Self::default()
    }

    fn find(&self, id: &str) -> Result<usize, usize> {
        self.items.binary_search_by(|(k, _)| k.as_str().cmp(id))
    }

    pub fn get(&self, id: &str) -> Option<&V> {
        self.find(id).ok().map(|i| &self.items[i].1)
    }

    pub fn get_mut(&mut self, id: &str) -> Option<&mut V> {
        self.find(id).ok().map(|i| &mut self.items[i].1)
    }

    /// Puts `v` under `id`; the value it replaced, if any.
    pub fn insert(&mut self, id: String, v: V) -> Option<V> {
        match self.find(&id) {
            Ok(i) => Some(core::mem::replace(&mut self.items[i].1, v)),
            Err(i) => {
                self.items.insert(i, (id, v));
                None
            }
        }
    }

    pub fn remove(&mut self, id: &str) -> Option<V> {
        self.find(id).ok().map(|i| self.items.remove(i).1)
    }

    pub fn retain(&mut self, mut keep: impl FnMut(&str, &mut V) -> bool) {
        self.items.retain_mut(|(k, v)| keep(k, v));
    }

    /// The value under `id`, made with `V::default()` if there was none.
    pub fn get_or_default(&mut self, id: &str) -> &mut V
    where
        V: Default,
    {
        let i = match self.find(id) {
            Ok(i) => i,
            Err(i) => {
                self.items.insert(i, (id.into(), V::default()));
                i
            }
        };
        &mut self.items[i].1
    }

    /// In id order, as a `BTreeMap` would give them.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &V)> {
        self.items.iter().map(|(k, v)| (k, v))
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&String, &mut V)> {
        self.items.iter_mut().map(|(k, v)| (&*k, v))
    }

    pub fn keys(&self) -> impl Iterator<Item = &String> {
        self.items.iter().map(|(k, _)| k)
    }

    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.items.iter().map(|(_, v)| v)
    }
}

impl<V> IntoIterator for IdMap<V> {
    type Item = (String, V);
    type IntoIter = alloc::vec::IntoIter<(String, V)>;

    fn into_iter(self) -> Self::IntoIter {
        self.items.into_iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::collections::BTreeMap;

    /// Against a `BTreeMap` doing the same: contents and order agree
    /// after every operation.
    #[test]
    fn behaves_as_a_btreemap() {
        let mut m = IdMap::new();
        let mut b = BTreeMap::new();
        let mut x = 7u32;
        for step in 0..2000u32 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let id = alloc::format!("{}", x % 23);
            match step % 5 {
                0 | 1 => assert_eq!(m.insert(id.clone(), step), b.insert(id, step)),
                2 => assert_eq!(m.remove(&id), b.remove(&id)),
                3 => {
                    *m.get_or_default(&id) += 1;
                    *b.entry(id).or_default() += 1;
                }
                _ => {
                    m.retain(|k, v| !(k.len() == 1 && *v % 3 == 0));
                    b.retain(|k, v| !(k.len() == 1 && *v % 3 == 0));
                }
            }
            assert!(m.iter().eq(b.iter()), "step {step}");
            assert_eq!(m.get("5"), b.get("5"));
        }
        assert!(m.keys().eq(b.keys()));
        assert!(m.values().eq(b.values()));
        assert!(m.into_iter().eq(b.into_iter()));
    }
}
