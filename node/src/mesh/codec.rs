//! The request-response codec for every message of `mig_proto::messages`:
//! reads at most the message type's limit from the stream, then decodes
//! with the same bounded decoder the fuzz targets drive. A peer that sends
//! more than the limit gets its stream refused, never a bigger buffer.

use std::io;
use std::marker::PhantomData;

use futures::prelude::*;
use libp2p::StreamProtocol;
use libp2p::request_response;
use mig_proto::messages::Message;

pub struct MessageCodec<Request, Response> {
    types: PhantomData<fn() -> (Request, Response)>,
}

impl<Request, Response> Default for MessageCodec<Request, Response> {
    fn default() -> Self {
        Self { types: PhantomData }
    }
}

impl<Request, Response> Clone for MessageCodec<Request, Response> {
    fn clone(&self) -> Self {
        Self::default()
    }
}

async fn read_message<M: Message, T: AsyncRead + Unpin + Send>(io: &mut T) -> io::Result<M> {
    let mut bytes = Vec::new();
    // One byte over the limit tells "too large" apart from "exactly full".
    io.take(M::MAX_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .await?;
    M::decode(&bytes).map_err(|error| io::Error::new(io::ErrorKind::InvalidData, error))
}

async fn write_message<M: Message, T: AsyncWrite + Unpin + Send>(
    io: &mut T,
    bytes: Vec<u8>,
) -> io::Result<()> {
    if bytes.len() > M::MAX_BYTES {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "message of {} bytes is over its limit of {}",
                bytes.len(),
                M::MAX_BYTES
            ),
        ));
    }
    io.write_all(&bytes).await?;
    io.close().await
}

impl<Request, Response> request_response::Codec for MessageCodec<Request, Response>
where
    Request: Message + Send,
    Response: Message + Send,
{
    type Protocol = StreamProtocol;
    type Request = Request;
    type Response = Response;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Request>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_message(io).await
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Response>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_message(io).await
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        request: Request,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_message::<Request, T>(io, request.encode()).await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        response: Response,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_message::<Response, T>(io, response.encode()).await
    }
}
