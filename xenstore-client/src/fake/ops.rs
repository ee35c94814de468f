//! The fake's operations: request parsing and dispatch, and each operation
//! on a tree (the live one, or a transaction's private copy), with
//! xenstored's permission, quota and conflict rules.

use super::tree::{parent, Node, Tree};
use super::{Change, FakeConfig, FakeXenstored, Tx, TxLog, Watch};
use crate::errors::XsErrno;
use crate::path::check_path;
use crate::perms::{access_of, Perm};
use crate::reply::strings;
use crate::types::TxId;
use crate::wire::MsgType;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use hypercall::abi::xenstore::ABS_PATH_MAX;
use hypercall::DomId;

/// One operation's view: a tree, where its changes go, and (inside a
/// transaction) the log that commit checks.
pub(super) struct Ctx<'a> {
    tree: &'a mut Tree,
    gen: &'a mut u64,
    config: &'a FakeConfig,
    /// Where changes go outside a transaction (inside, to the log).
    live_changes: &'a mut Vec<Change>,
    log: Option<&'a mut TxLog>,
}

impl FakeXenstored {
    /// The view for transaction `tx` (or the live tree).
    pub(super) fn ctx(&mut self, tx: TxId) -> Result<Ctx<'_>, XsErrno> {
        let FakeXenstored { tree, gen, config, changes, txs, .. } = self;
        if tx == TxId::NONE {
            return Ok(Ctx { tree, gen, config, live_changes: changes, log: None });
        }
        let t = txs.get_mut(&tx.0).ok_or(XsErrno::ENOENT)?;
        Ok(Ctx { tree: &mut t.tree, gen, config, live_changes: changes, log: Some(&mut t.log) })
    }

    /// An absolute node path from what the guest sent.
    fn resolve(&self, raw: &[u8]) -> Result<String, XsErrno> {
        let s = core::str::from_utf8(raw).map_err(|_| XsErrno::EINVAL)?;
        check_path(s).map_err(|_| XsErrno::EINVAL)?;
        let abs = if s.starts_with('/') {
            String::from(s)
        } else if s.starts_with('@') {
            return Err(XsErrno::EINVAL);
        } else {
            format!("{}/{s}", self.home())
        };
        if abs.len() > ABS_PATH_MAX {
            return Err(XsErrno::EINVAL);
        }
        Ok(abs)
    }

    /// The single path argument of a request.
    fn path_arg(&self, payload: &[u8]) -> Result<String, XsErrno> {
        match strings(payload).map_err(|_| XsErrno::EINVAL)?.as_slice() {
            [p] => self.resolve(p),
            _ => Err(XsErrno::EINVAL),
        }
    }

    /// Runs one request of the guest; `Ok` holds the reply payload.
    /// Events to send after the reply (a new watch's first firing) go to
    /// `after_reply`.
    pub(super) fn dispatch(
        &mut self,
        ty: MsgType,
        tx: TxId,
        payload: &[u8],
        after_reply: &mut Vec<(String, String)>,
    ) -> Result<Vec<u8>, XsErrno> {
        const OK: &[u8] = b"OK\0";
        let dom = self.guest;
        match ty {
            MsgType::Read => {
                let p = self.path_arg(payload)?;
                self.ctx(tx)?.read(dom, &p)
            }
            MsgType::Directory => {
                let p = self.path_arg(payload)?;
                let names = self.ctx(tx)?.directory(dom, &p)?;
                let mut out = Vec::new();
                for n in names {
                    out.extend_from_slice(n.as_bytes());
                    out.push(0);
                }
                Ok(out)
            }
            MsgType::GetPerms => {
                let p = self.path_arg(payload)?;
                let perms = self.ctx(tx)?.get_perms(dom, &p)?;
                let mut out = Vec::new();
                for perm in perms {
                    out.extend_from_slice(perm.to_wire().as_bytes());
                    out.push(0);
                }
                Ok(out)
            }
            MsgType::Write => {
                let nul = payload.iter().position(|&b| b == 0).ok_or(XsErrno::EINVAL)?;
                let p = self.resolve(&payload[..nul])?;
                self.ctx(tx)?.write(dom, &p, &payload[nul + 1..])?;
                Ok(OK.into())
            }
            MsgType::Mkdir => {
                let p = self.path_arg(payload)?;
                self.ctx(tx)?.mkdir(dom, &p)?;
                Ok(OK.into())
            }
            MsgType::Rm => {
                let p = self.path_arg(payload)?;
                self.ctx(tx)?.rm(dom, &p)?;
                Ok(OK.into())
            }
            MsgType::SetPerms => {
                let parts = strings(payload).map_err(|_| XsErrno::EINVAL)?;
                let (p, perms) = parts.split_first().ok_or(XsErrno::EINVAL)?;
                let p = self.resolve(p)?;
                let perms = perms
                    .iter()
                    .map(|s| Perm::parse(s))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|_| XsErrno::EINVAL)?;
                if perms.is_empty() {
                    return Err(XsErrno::EINVAL);
                }
                self.ctx(tx)?.set_perms(dom, &p, &perms)?;
                Ok(OK.into())
            }
            MsgType::Watch => {
                let (path, abs, token) = self.watch_args(payload)?;
                if self.watches.iter().any(|w| w.abs == abs && w.token == token) {
                    return Err(XsErrno::EEXIST);
                }
                if self.watches.len() >= self.config.max_watches {
                    return Err(self.config.quota_errno);
                }
                // xenstored fires a new watch once, right after the reply.
                after_reply.push((path.clone(), token.clone()));
                self.watches.push(Watch { path, abs, token });
                Ok(OK.into())
            }
            MsgType::Unwatch => {
                let (_, abs, token) = self.watch_args(payload)?;
                let i = self
                    .watches
                    .iter()
                    .position(|w| w.abs == abs && w.token == token)
                    .ok_or(XsErrno::ENOENT)?;
                self.watches.remove(i);
                Ok(OK.into())
            }
            MsgType::ResetWatches => {
                self.watches.clear();
                Ok(OK.into())
            }
            MsgType::TransactionStart => {
                if tx != TxId::NONE {
                    return Err(XsErrno::EBUSY);
                }
                if self.txs.len() >= self.config.max_transactions {
                    return Err(self.config.quota_errno);
                }
                let id = self.next_tx;
                self.next_tx = self.next_tx.wrapping_add(1).max(1);
                self.txs.insert(id, Tx { tree: self.tree.clone(), log: TxLog::default() });
                Ok(format!("{id}\0").into_bytes())
            }
            MsgType::TransactionEnd => {
                let commit = match payload {
                    b"T\0" => true,
                    b"F\0" => false,
                    _ => return Err(XsErrno::EINVAL),
                };
                let t = self.txs.remove(&tx.0).ok_or(XsErrno::ENOENT)?;
                if commit {
                    self.commit(t)?;
                }
                Ok(OK.into())
            }
            MsgType::GetDomainPath => {
                let parts = strings(payload).map_err(|_| XsErrno::EINVAL)?;
                let [d] = parts.as_slice() else {
                    return Err(XsErrno::EINVAL);
                };
                let d = crate::perms::parse_decimal(d)
                    .and_then(|d| u16::try_from(d).ok())
                    .ok_or(XsErrno::EINVAL)?;
                Ok(format!("/local/domain/{d}\0").into_bytes())
            }
            // Toolstack-only operations: a guest is refused, as xenstored does.
            MsgType::Introduce
            | MsgType::Release
            | MsgType::IsDomainIntroduced
            | MsgType::Resume
            | MsgType::SetTarget
            | MsgType::Control => Err(XsErrno::EACCES),
            MsgType::DirectoryPart | MsgType::WatchEvent | MsgType::Error => Err(XsErrno::EINVAL),
        }
    }

    /// `(path as given, absolute path or @special, token)` of a watch request.
    fn watch_args(&self, payload: &[u8]) -> Result<(String, String, String), XsErrno> {
        let parts = strings(payload).map_err(|_| XsErrno::EINVAL)?;
        let [p, t] = parts.as_slice() else {
            return Err(XsErrno::EINVAL);
        };
        let path = String::from(core::str::from_utf8(p).map_err(|_| XsErrno::EINVAL)?);
        let token = String::from(core::str::from_utf8(t).map_err(|_| XsErrno::EINVAL)?);
        let abs = if path.starts_with('@') {
            check_path(&path).map_err(|_| XsErrno::EINVAL)?;
            path.clone()
        } else {
            self.resolve(p)?
        };
        Ok((path, abs, token))
    }

    /// Applies a transaction if nothing it touched changed since it began.
    fn commit(&mut self, t: Tx) -> Result<(), XsErrno> {
        if self.force_eagain > 0 {
            self.force_eagain -= 1;
            return Err(XsErrno::EAGAIN);
        }
        for (path, gen) in &t.log.accessed {
            if self.tree.get(path).map(|n| n.gen) != *gen {
                return Err(XsErrno::EAGAIN);
            }
        }
        for path in &t.log.modified {
            match t.tree.get(path) {
                Some(n) => self.tree.insert(path.clone(), n.clone()),
                None => {
                    self.tree.remove(path);
                }
            }
        }
        self.changes.extend(t.log.changes);
        Ok(())
    }
}

impl Ctx<'_> {
    /// A change that fires watches: now, or when the transaction commits.
    fn change(&mut self, c: Change) {
        match self.log.as_deref_mut() {
            Some(log) => log.changes.push(c),
            None => self.live_changes.push(c),
        }
    }

    /// Records that the transaction looked at `path` (its generation as of
    /// the transaction's start, since this is the first look).
    fn touch(&mut self, path: &str) {
        if let Some(log) = self.log.as_deref_mut() {
            let gen = self.tree.get(path).map(|n| n.gen);
            log.accessed.entry(path.into()).or_insert(gen);
        }
    }

    /// Records a modification of `path` and gives it a new generation.
    fn modified(&mut self, path: &str) {
        *self.gen += 1;
        let gen = *self.gen;
        if let Some(n) = self.tree.get_mut(path) {
            n.gen = gen;
        }
        if let Some(log) = self.log.as_deref_mut() {
            log.modified.insert(path.into());
        }
    }

    fn node(&mut self, dom: DomId, path: &str, write: bool) -> Result<&Node, XsErrno> {
        self.touch(path);
        let n = self.tree.get(path).ok_or(XsErrno::ENOENT)?;
        let a = access_of(&n.perms, dom);
        if (write && !a.can_write()) || (!write && !a.can_read()) {
            return Err(XsErrno::EACCES);
        }
        Ok(n)
    }

    pub(super) fn read(&mut self, dom: DomId, path: &str) -> Result<Vec<u8>, XsErrno> {
        Ok(self.node(dom, path, false)?.value.clone())
    }

    pub(super) fn directory(&mut self, dom: DomId, path: &str) -> Result<Vec<String>, XsErrno> {
        self.node(dom, path, false)?;
        Ok(self.tree.children(path))
    }

    pub(super) fn get_perms(&mut self, dom: DomId, path: &str) -> Result<Vec<Perm>, XsErrno> {
        Ok(self.node(dom, path, false)?.perms.clone())
    }

    pub(super) fn write(&mut self, dom: DomId, path: &str, value: &[u8]) -> Result<(), XsErrno> {
        if dom != DomId(0) && value.len() > self.config.max_value_len {
            return Err(self.config.quota_errno);
        }
        self.touch(path);
        if self.tree.get(path).is_some() {
            self.node(dom, path, true)?;
            if let Some(n) = self.tree.get_mut(path) {
                n.value = value.into();
            }
            self.modified(path);
        } else {
            self.create(dom, path, value)?;
        }
        self.change(Change::Write(path.into()));
        Ok(())
    }

    /// Creates `path` and any missing parents, with the permissions of the
    /// nearest existing ancestor (owned by the creator if unprivileged).
    fn create(&mut self, dom: DomId, path: &str, value: &[u8]) -> Result<(), XsErrno> {
        let mut missing = alloc::vec![String::from(path)];
        let mut anc = parent(path).ok_or(XsErrno::EINVAL)?;
        loop {
            self.touch(anc);
            if self.tree.get(anc).is_some() {
                break;
            }
            missing.push(anc.into());
            anc = parent(anc).ok_or(XsErrno::EINVAL)?;
        }
        let mut perms = self.node(dom, anc, true)?.perms.clone();
        if dom != DomId(0) {
            if self.tree.owned_by(dom) + missing.len() > self.config.max_nodes {
                return Err(self.config.quota_errno);
            }
            perms[0].dom = dom;
        }
        let anc = String::from(anc);
        self.modified(&anc);
        for p in missing.iter().rev() {
            let v = if p == path { value.into() } else { Vec::new() };
            self.tree.insert(p.clone(), Node { value: v, perms: perms.clone(), gen: 0 });
            self.modified(p);
        }
        Ok(())
    }

    pub(super) fn mkdir(&mut self, dom: DomId, path: &str) -> Result<(), XsErrno> {
        self.touch(path);
        if self.tree.get(path).is_some() {
            self.node(dom, path, true)?;
            return Ok(());
        }
        self.create(dom, path, &[])?;
        self.change(Change::Write(path.into()));
        Ok(())
    }

    pub(super) fn rm(&mut self, dom: DomId, path: &str) -> Result<(), XsErrno> {
        let par = String::from(parent(path).ok_or(XsErrno::EINVAL)?);
        self.touch(path);
        self.touch(&par);
        if self.tree.get(path).is_none() {
            // Gone already is fine, as long as the parent is there.
            return match self.tree.get(&par) {
                Some(_) => Ok(()),
                None => Err(XsErrno::ENOENT),
            };
        }
        self.node(dom, path, true)?;
        for p in self.tree.below(path) {
            self.touch(&p);
            self.tree.remove(&p);
            self.modified(&p);
        }
        self.tree.remove(path);
        self.modified(path);
        self.modified(&par);
        self.change(Change::Rm(path.into()));
        Ok(())
    }

    pub(super) fn set_perms(
        &mut self,
        dom: DomId,
        path: &str,
        perms: &[Perm],
    ) -> Result<(), XsErrno> {
        let owner = self.node(dom, path, false)?.perms.first().map(|p| p.dom);
        if dom != DomId(0) && Some(dom) != owner {
            return Err(XsErrno::EACCES);
        }
        if let Some(n) = self.tree.get_mut(path) {
            n.perms = perms.into();
        }
        self.modified(path);
        self.change(Change::Write(path.into()));
        Ok(())
    }
}
