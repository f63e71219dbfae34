//! The framing every Waku request/response protocol uses: one unsigned-varint length-prefixed
//! protobuf per direction per stream, read with a size limit. libp2p's request-response closes
//! the stream after writing, which js-waku needs (it reads until EOF).

use std::{io, marker::PhantomData};

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::{StreamProtocol, request_response};

/// A request-response codec for prost messages with per-direction size limits.
#[derive(Debug)]
pub struct ProtoCodec<Req, Resp> {
    max_request: usize,
    max_response: usize,
    _types: PhantomData<fn() -> (Req, Resp)>,
}

impl<Req, Resp> Clone for ProtoCodec<Req, Resp> {
    fn clone(&self) -> Self {
        Self { max_request: self.max_request, max_response: self.max_response, _types: PhantomData }
    }
}

impl<Req, Resp> ProtoCodec<Req, Resp> {
    /// A codec refusing requests over `max_request` and responses over `max_response` bytes.
    pub fn new(max_request: usize, max_response: usize) -> Self {
        Self { max_request, max_response, _types: PhantomData }
    }
}

/// Reads one unsigned-varint length prefix and that many bytes, refusing more than `max`.
pub async fn read_length_prefixed<T: AsyncRead + Unpin>(
    io: &mut T,
    max: usize,
) -> io::Result<Vec<u8>> {
    let mut len: u64 = 0;
    for i in 0..10 {
        let mut byte = [0u8; 1];
        io.read_exact(&mut byte).await?;
        len |= u64::from(byte[0] & 0x7f) << (7 * i);
        if byte[0] & 0x80 == 0 {
            let len = usize::try_from(len).unwrap_or(usize::MAX);
            if len > max {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("message of {len} bytes exceeds the {max}-byte limit"),
                ));
            }
            let mut buf = vec![0u8; len];
            io.read_exact(&mut buf).await?;
            return Ok(buf);
        }
    }
    Err(io::Error::new(io::ErrorKind::InvalidData, "length prefix longer than 10 bytes"))
}

/// Writes one unsigned-varint length-prefixed message.
pub async fn write_length_prefixed<T: AsyncWrite + Unpin>(
    io: &mut T,
    data: &[u8],
) -> io::Result<()> {
    let mut prefix = Vec::with_capacity(10);
    let mut len = data.len() as u64;
    loop {
        let byte = (len & 0x7f) as u8;
        len >>= 7;
        if len == 0 {
            prefix.push(byte);
            break;
        }
        prefix.push(byte | 0x80);
    }
    io.write_all(&prefix).await?;
    io.write_all(data).await?;
    io.flush().await
}

fn decode<M: prost::Message + Default>(bytes: &[u8]) -> io::Result<M> {
    M::decode(bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

impl<Req, Resp> request_response::Codec for ProtoCodec<Req, Resp>
where
    Req: prost::Message + Default + Send + 'static,
    Resp: prost::Message + Default + Send + 'static,
{
    type Protocol = StreamProtocol;
    type Request = Req;
    type Response = Resp;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Req>
    where
        T: AsyncRead + Unpin + Send,
    {
        decode(&read_length_prefixed(io, self.max_request).await?)
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Resp>
    where
        T: AsyncRead + Unpin + Send,
    {
        decode(&read_length_prefixed(io, self.max_response).await?)
    }

    async fn write_request<T>(&mut self, _: &StreamProtocol, io: &mut T, req: Req) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_length_prefixed(io, &req.encode_to_vec()).await?;
        io.close().await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: Resp,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_length_prefixed(io, &res.encode_to_vec()).await?;
        io.close().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn length_prefix_round_trips_and_limits_apply() {
        for size in [0usize, 1, 127, 128, 300, 70_000] {
            let data = vec![7u8; size];
            let mut buf = Vec::new();
            write_length_prefixed(&mut buf, &data).await.unwrap();
            let mut reader = futures::io::Cursor::new(buf);
            assert_eq!(read_length_prefixed(&mut reader, 100_000).await.unwrap(), data);
        }
        let mut buf = Vec::new();
        write_length_prefixed(&mut buf, &[0u8; 2000]).await.unwrap();
        let err = read_length_prefixed(&mut futures::io::Cursor::new(buf), 1000).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        let endless = futures::io::Cursor::new(vec![0xffu8; 20]);
        assert!(read_length_prefixed(&mut { endless }, 1000).await.is_err());
    }
}
