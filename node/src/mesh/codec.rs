//! A request-response codec wrapper that counts requests the node could not
//! read (undecodable, or over the frame limit): libp2p drops those with only
//! a debug log, and `banmesh status` must show them.

use std::io;
use std::sync::{Arc, Mutex, PoisonError};

use libp2p::futures::prelude::*;
use libp2p::request_response::Codec;

use super::swarm::MeshStats;

/// `inner`, counting failed request reads under `reason`.
#[derive(Clone)]
pub struct Counted<C> {
    inner: C,
    reason: &'static str,
    stats: Arc<Mutex<MeshStats>>,
}

impl<C> Counted<C> {
    /// Wraps `inner`; failed request reads are counted as `reason` in `stats`.
    pub fn new(inner: C, reason: &'static str, stats: Arc<Mutex<MeshStats>>) -> Counted<C> {
        Counted { inner, reason, stats }
    }
}

impl<C: Codec + Send> Codec for Counted<C> {
    type Protocol = C::Protocol;
    type Request = C::Request;
    type Response = C::Response;

    fn read_request<T>(
        &mut self,
        protocol: &Self::Protocol,
        io: &mut T,
    ) -> impl Future<Output = io::Result<Self::Request>> + Send
    where
        T: AsyncRead + Unpin + Send,
    {
        let (reason, stats) = (self.reason, self.stats.clone());
        let read = self.inner.read_request(protocol, io);
        async move {
            let request = read.await;
            if let Err(error) = &request {
                tracing::warn!(%error, reason, "unreadable request");
                let mut stats = stats.lock().unwrap_or_else(PoisonError::into_inner);
                *stats.refused.entry(reason.to_owned()).or_default() += 1;
            }
            request
        }
    }

    fn read_response<T>(
        &mut self,
        protocol: &Self::Protocol,
        io: &mut T,
    ) -> impl Future<Output = io::Result<Self::Response>> + Send
    where
        T: AsyncRead + Unpin + Send,
    {
        self.inner.read_response(protocol, io)
    }

    fn write_request<T>(
        &mut self,
        protocol: &Self::Protocol,
        io: &mut T,
        request: Self::Request,
    ) -> impl Future<Output = io::Result<()>> + Send
    where
        T: AsyncWrite + Unpin + Send,
    {
        self.inner.write_request(protocol, io, request)
    }

    fn write_response<T>(
        &mut self,
        protocol: &Self::Protocol,
        io: &mut T,
        response: Self::Response,
    ) -> impl Future<Output = io::Result<()>> + Send
    where
        T: AsyncWrite + Unpin + Send,
    {
        self.inner.write_response(protocol, io, response)
    }
}
