//! A UDP socket that answers each datagram from the address it was sent to.
//!
//! A socket bound to `0.0.0.0` or `[::]` receives datagrams sent to any of the host's
//! addresses, but a plain `send_to` answers from whatever address the kernel's routing picks
//! for the client — on a host with a public and a private address, or with 127.0.0.1 and
//! 127.0.0.2, a query sent to the second is answered from the first, and resolvers (dig,
//! Knot's and Unbound's, the tree client's) drop an answer from an address they did not ask.
//! Authoritative servers solve it with `IP_PKTINFO` / `IPV6_RECVPKTINFO`: each datagram
//! arrives with the local address it was sent to, and the answer is sent with that address as
//! its source. A socket bound to one address needs none of this and skips it.

use std::{
    io::{self, IoSlice, IoSliceMut},
    net::SocketAddr,
    os::fd::AsRawFd,
};

use nix::sys::socket::{
    self, ControlMessage, ControlMessageOwned, MsgFlags, MultiHeaders, SockaddrLike,
    SockaddrStorage, sockopt,
};
use rustix::net::{MMsgHdr, SendAncillaryBuffer, SendFlags, SocketAddrAny, addr::SocketAddrArg};
use tokio::{io::Interest, net::UdpSocket};

/// The local address a datagram was sent to, as the kernel reported it.
#[derive(Clone, Copy)]
pub(crate) enum LocalAddress {
    /// From `IP_PKTINFO`: `ipi_spec_dst` is the local address (for a datagram sent to a
    /// broadcast address, the interface's own address rather than the broadcast one).
    V4(libc::in_pktinfo),
    /// From `IPV6_PKTINFO` (an IPv4 client of a dual-stack socket arrives v4-mapped, and
    /// Linux takes the v4-mapped address back on sending).
    V6(libc::in6_pktinfo),
}

/// One datagram read by [`ReplySocket::recv_batch`].
#[derive(Clone, Copy)]
pub(crate) struct Datagram {
    /// Its length in its buffer (cut at the buffer's size).
    pub(crate) len: usize,
    /// Who sent it.
    pub(crate) source: SocketAddr,
    /// Where it was sent, when the socket is bound to every address.
    pub(crate) local: Option<LocalAddress>,
}

/// Most datagrams read in one system call.
pub(crate) const BATCH: usize = 32;

/// Buffers for [`ReplySocket::recv_batch`]: [`BATCH`] datagrams of up to a given size each,
/// and what the kernel said of them.
pub(crate) struct Received {
    buffers: Vec<Vec<u8>>,
    /// Ancillary data room per datagram (0: none asked for).
    control: usize,
    datagrams: Vec<Option<Datagram>>,
}

impl Received {
    /// Room for [`BATCH`] datagrams of `max_len` bytes (longer ones are cut) and, on a
    /// wildcard socket, their local addresses.
    pub(crate) fn new(socket: &ReplySocket, max_len: usize) -> Self {
        let control =
            if socket.wildcard { nix::cmsg_space!(libc::in6_pktinfo).capacity() } else { 0 };
        Self {
            buffers: vec![vec![0; max_len]; BATCH],
            control,
            datagrams: Vec::with_capacity(BATCH),
        }
    }

    /// The `index`th datagram of the last batch and its bytes (`None`: not from an IP
    /// address).
    pub(crate) fn get(&self, index: usize) -> Option<(Datagram, &[u8])> {
        let datagram = (*self.datagrams.get(index)?)?;
        Some((datagram, self.buffers.get(index)?.get(..datagram.len)?))
    }
}

/// A UDP socket whose answers leave from the address each query was sent to.
pub(crate) struct ReplySocket {
    socket: UdpSocket,
    /// Bound to the unspecified address, so each datagram carries its local address.
    wildcard: bool,
}

impl ReplySocket {
    /// Wraps `socket`, asking the kernel for each datagram's local address when it is bound
    /// to the unspecified address.
    pub(crate) fn new(socket: UdpSocket) -> io::Result<Self> {
        let local = socket.local_addr()?;
        let wildcard = local.ip().is_unspecified();
        if wildcard {
            match local {
                SocketAddr::V4(_) => socket::setsockopt(&socket, sockopt::Ipv4PacketInfo, &true)?,
                SocketAddr::V6(_) => {
                    socket::setsockopt(&socket, sockopt::Ipv6RecvPacketInfo, &true)?
                }
            }
        }
        Ok(Self { socket, wildcard })
    }

    /// The datagrams waiting, up to [`BATCH`], read in one `recvmmsg` into `received`
    /// (waits for the first). Their number.
    pub(crate) async fn recv_batch(&self, received: &mut Received) -> io::Result<usize> {
        let fd = self.socket.as_raw_fd();
        let Received { buffers, control, datagrams } = received;
        datagrams.clear();
        self.socket
            .async_io(Interest::READABLE, || {
                // Made for each call: nix's headers hold raw pointers (not `Send`), and this
                // future moves between the runtime's threads.
                let control = (*control > 0).then(|| Vec::with_capacity(*control));
                let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(BATCH, control);
                let mut slices: Vec<[IoSliceMut<'_>; 1]> =
                    buffers.iter_mut().map(|buffer| [IoSliceMut::new(buffer)]).collect();
                let results = socket::recvmmsg(
                    fd,
                    &mut headers,
                    slices.iter_mut(),
                    MsgFlags::MSG_DONTWAIT,
                    None,
                )?;
                for message in results {
                    // Not an IP datagram (cannot happen on a UDP socket): skipped, its slot
                    // kept so that indexes match the buffers.
                    let source = message.address.as_ref().and_then(socket_addr);
                    let local = message.cmsgs().ok().and_then(|mut messages| {
                        messages.find_map(|control| match control {
                            ControlMessageOwned::Ipv4PacketInfo(info) => {
                                Some(LocalAddress::V4(info))
                            }
                            ControlMessageOwned::Ipv6PacketInfo(info) => {
                                Some(LocalAddress::V6(info))
                            }
                            _ => None,
                        })
                    });
                    datagrams.push(source.map(|source| Datagram {
                        len: message.bytes,
                        source,
                        local,
                    }));
                }
                Ok(datagrams.len())
            })
            .await
    }

    /// Sends each of `answers` (bytes, client, local address): in `sendmmsg` calls of up to
    /// [`BATCH`] on a socket bound to one address; one `sendmsg` each on a wildcard socket,
    /// where each answer carries its own source address (rustix's `sendmmsg` takes no
    /// `IP_PKTINFO`, and nix's reads uninitialised addresses when it reports its count).
    /// An answer the kernel refuses (not `WouldBlock`) is dropped, as `send_to`'s were.
    pub(crate) async fn send_batch(&self, answers: &[(&[u8], SocketAddr, Option<LocalAddress>)]) {
        if self.wildcard {
            for (bytes, to, local) in answers {
                let _ = self.send(bytes, *to, *local).await;
            }
            return;
        }
        let mut start = 0;
        while start < answers.len() {
            let rest = &answers[start..];
            let sent = self
                .socket
                .async_io(Interest::WRITABLE, || {
                    let addresses: Vec<SocketAddrAny> =
                        rest.iter().map(|(_, to, _)| to.as_any()).collect();
                    let data: Vec<[IoSlice<'_>; 1]> =
                        rest.iter().map(|(bytes, _, _)| [IoSlice::new(bytes)]).collect();
                    let mut controls: Vec<SendAncillaryBuffer<'_, '_, '_>> =
                        rest.iter().map(|_| SendAncillaryBuffer::default()).collect();
                    let mut messages: Vec<MMsgHdr<'_>> = addresses
                        .iter()
                        .zip(&data)
                        .zip(controls.iter_mut())
                        .map(|((to, data), control)| MMsgHdr::new_with_addr(to, data, control))
                        .collect();
                    rustix::net::sendmmsg(&self.socket, &mut messages, SendFlags::DONTWAIT)
                        .map_err(io::Error::from)
                })
                .await;
            // The first message failed: skip it, send the rest.
            start += sent.unwrap_or(0).max(1);
        }
    }

    /// Sends `bytes` to `to`, from `local` when the datagram it answers carried one.
    async fn send(
        &self,
        bytes: &[u8],
        to: SocketAddr,
        local: Option<LocalAddress>,
    ) -> io::Result<()> {
        let Some(local) = local else {
            return self.socket.send_to(bytes, to).await.map(drop);
        };
        let fd = self.socket.as_raw_fd();
        let destination = SockaddrStorage::from(to);
        self.socket
            .async_io(Interest::WRITABLE, || {
                let data = [IoSlice::new(bytes)];
                // IPv4: the source address only; the routing table picks the interface.
                let v4;
                let source = match &local {
                    LocalAddress::V4(info) => {
                        v4 = libc::in_pktinfo {
                            ipi_ifindex: 0,
                            ipi_spec_dst: info.ipi_spec_dst,
                            ipi_addr: libc::in_addr { s_addr: 0 },
                        };
                        ControlMessage::Ipv4PacketInfo(&v4)
                    }
                    // IPv6: address and interface, as a link-local address needs both.
                    LocalAddress::V6(info) => ControlMessage::Ipv6PacketInfo(info),
                };
                socket::sendmsg(fd, &data, &[source], MsgFlags::empty(), Some(&destination))
                    .map(drop)
                    .map_err(io::Error::from)
            })
            .await
    }
}

fn socket_addr(address: &SockaddrStorage) -> Option<SocketAddr> {
    match address.family()? {
        socket::AddressFamily::Inet => {
            address.as_sockaddr_in().map(|a| SocketAddr::V4((*a).into()))
        }
        socket::AddressFamily::Inet6 => {
            address.as_sockaddr_in6().map(|a| SocketAddr::V6((*a).into()))
        }
        _ => None,
    }
}
