//! Transactions: a group of operations xenstored applies all at once, or
//! not at all when something they touched changed meanwhile (`EAGAIN` at
//! commit, sometimes earlier). [`Client::transaction`] runs a closure in
//! one and starts over on `EAGAIN`, the way every XenStore user must.

use crate::client::{Client, Store};
use crate::errors::{Error, XsErrno};
use crate::reply;
use crate::request;
use crate::transport::Transport;
use crate::types::TxId;
use crate::wire::{Message, MsgType};
use alloc::vec::Vec;

/// An open transaction. Its [`Store`] operations carry its id. End it with
/// [`Transaction::commit`] or [`Transaction::abort`]; dropping it aborts
/// (best effort: the error, if any, is lost).
pub struct Transaction<'c, T: Transport> {
    client: &'c mut Client<T>,
    id: TxId,
    open: bool,
}

impl<T: Transport> Client<T> {
    /// Starts a transaction.
    pub fn begin(&mut self) -> Result<Transaction<'_, T>, Error> {
        let m = self.request(MsgType::TransactionStart, request::empty())?;
        let id = reply::tx_id(reply::payload_for(MsgType::TransactionStart, &m)?)?;
        Ok(Transaction { client: self, id, open: true })
    }

    /// Runs `f` in a transaction and commits it, starting over (a new
    /// transaction, `f` called again) whenever xenstored answers `EAGAIN`,
    /// up to the client's attempt limit. Any other error of `f` aborts the
    /// transaction and is returned. `f` may run several times: it should
    /// only read and write the store.
    ///
    /// Watch events that arrive meanwhile are queued as usual, in order.
    pub fn transaction<R>(
        &mut self,
        mut f: impl FnMut(&mut Transaction<'_, T>) -> Result<R, Error>,
    ) -> Result<R, Error> {
        let attempts = self.tx_attempts();
        for _ in 0..attempts {
            let mut tx = self.begin()?;
            match f(&mut tx) {
                Ok(r) => match tx.commit() {
                    Ok(()) => return Ok(r),
                    Err(Error::Xs(XsErrno::EAGAIN)) => continue,
                    Err(e) => return Err(e),
                },
                Err(Error::Xs(XsErrno::EAGAIN)) => {
                    // Already doomed; end it so xenstored frees it.
                    let _ = tx.abort();
                    continue;
                }
                Err(e) => {
                    let _ = tx.abort();
                    return Err(e);
                }
            }
        }
        Err(Error::TransactionConflict { attempts })
    }
}

impl<T: Transport> Transaction<'_, T> {
    /// The id xenstored gave it.
    pub fn id(&self) -> TxId {
        self.id
    }

    fn end(&mut self, commit: bool) -> Result<(), Error> {
        // Whatever the answer, xenstored has forgotten the transaction.
        self.open = false;
        let m = self.client.request_in(
            self.id,
            MsgType::TransactionEnd,
            request::transaction_end(commit),
        )?;
        Ok(reply::ok(reply::payload_for(MsgType::TransactionEnd, &m)?)?)
    }

    /// Applies the transaction. `Err(Error::Xs(EAGAIN))`: something it
    /// touched changed meanwhile and nothing was applied; start over.
    pub fn commit(mut self) -> Result<(), Error> {
        self.end(true)
    }

    /// Discards the transaction.
    pub fn abort(mut self) -> Result<(), Error> {
        self.end(false)
    }
}

impl<T: Transport> Store for Transaction<'_, T> {
    fn request(&mut self, ty: MsgType, payload: Vec<u8>) -> Result<Message, Error> {
        self.client.request_in(self.id, ty, payload)
    }
}

impl<T: Transport> Drop for Transaction<'_, T> {
    fn drop(&mut self) {
        if self.open {
            let _ = self.end(false);
        }
    }
}
