//! The node's TCP transport: libp2p-tcp for listening, with two things it does not do.
//!
//! - **Dials leave from the listen address.** libp2p-tcp binds a dialing socket to the
//!   unspecified address, so the kernel picks the source: on a host with several addresses a
//!   node listening on one of them connects out from another (its peers' per-IP limits, and
//!   their firewalls, see an address the node never advertised), and every node of a simulation
//!   on 127.x.y.z arrives from 127.0.0.1. When the node listens on one specific address, its
//!   dials to addresses of the same family and scope (loopback or not) are bound to it.
//! - **Bytes are counted** on every connection, in and out, below Noise and the muxer: what
//!   the node really sends and receives ([`ByteCounters`]).
//! - **Links can be given a delay and a rate** ([`LinkModel`]), for simulations of many nodes
//!   on one host: what a node reads is held back for the link's one-way delay (and paced to
//!   its rate), so with both ends doing so every byte crosses the link once in each direction
//!   at the link's speed. Real nodes run without one.

use std::{
    collections::VecDeque,
    future::Future,
    io,
    net::{IpAddr, SocketAddr},
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use futures::{AsyncRead, AsyncWrite, FutureExt};
use libp2p::{
    Multiaddr, PeerId, Transport as _,
    core::{
        muxing::StreamMuxerBox,
        transport::{Boxed, DialOpts, ListenerId, TransportError, TransportEvent},
        upgrade::{SelectUpgrade, Version},
    },
    identity::Keypair,
    multiaddr::Protocol,
    noise, tcp, yamux,
};

type Inner = tcp::tokio::Transport;
/// What the swarm takes: TCP, Noise, then Yamux or Mplex.
pub type Authenticated = Boxed<(PeerId, StreamMuxerBox)>;

/// The node's plain TCP transport, authenticated and multiplexed (Yamux or Mplex, as nwaku).
pub fn tcp_transport(
    key: &Keypair,
    tcp: SourceBoundTcp,
) -> Result<Authenticated, Box<dyn std::error::Error + Send + Sync>> {
    Ok(tcp
        .upgrade(Version::V1)
        .authenticate(noise::Config::new(key)?)
        .multiplex(SelectUpgrade::new(yamux::Config::default(), libp2p_mplex::Config::default()))
        .map(|(peer, muxer), _| (peer, StreamMuxerBox::new(muxer)))
        .boxed())
}
type Stream = tcp::tokio::TcpStream;

/// Bytes received and sent over every TCP connection of one node.
#[derive(Debug, Default)]
pub struct ByteCounters {
    received: AtomicU64,
    sent: AtomicU64,
}

impl ByteCounters {
    /// Bytes received so far.
    pub fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    /// Bytes sent so far.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }
}

/// One link's character in a simulation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Link {
    /// Time for a byte to cross, one way (half the round trip).
    pub one_way: Duration,
    /// The rate each direction carries, if limited.
    pub bytes_per_sec: Option<u64>,
}

/// The links of a simulated network: what connects two addresses.
pub trait LinkModel: Send + Sync + 'static {
    /// The link between `a` and `b`; it must not depend on their order, since each end asks.
    /// Asked as bytes arrive, so a model may change its links while connections live.
    fn link(&self, a: IpAddr, b: IpAddr) -> Link;

    /// Whether the link between `a` and `b` is cut, as when a host crashes: from then on
    /// nothing crosses it either way and neither end hears the other close (no FIN), so a
    /// connection lives until a timeout notices. Asked on every read and write.
    fn severed(&self, _a: IpAddr, _b: IpAddr) -> bool {
        false
    }

    /// Whether `to` refuses every TCP connection (a host behind NAT or a firewall that still
    /// finds peers over discv5's UDP and dials out): a dial to it fails at once, as on a
    /// reset. Connections it opens itself carry data both ways.
    fn refuses(&self, _to: IpAddr) -> bool {
        false
    }
}

/// libp2p-tcp (tokio), dialing from `source` when it is set, counting bytes.
pub struct SourceBoundTcp {
    inner: Inner,
    source: Option<IpAddr>,
    nodelay: bool,
    meter: Meter,
}

/// What every connection of one node shares: its counters and the link model.
#[derive(Clone)]
struct Meter {
    counters: Arc<ByteCounters>,
    links: Option<Arc<dyn LinkModel>>,
}

impl Meter {
    fn wrap(&self, stream: Stream) -> Counted<Stream> {
        let shaper = self.links.as_ref().and_then(|links| {
            let local = stream.0.local_addr().ok()?.ip();
            let remote = stream.0.peer_addr().ok()?.ip();
            Some(Box::new(Shaper::new(links.clone(), (local, remote))))
        });
        Counted { inner: stream, counters: self.counters.clone(), shaper }
    }
}

impl SourceBoundTcp {
    /// A transport whose dials leave from `listen_ip` when that is one specific address.
    pub fn new(listen_ip: IpAddr, counters: Arc<ByteCounters>) -> Self {
        let nodelay = true;
        Self {
            inner: Inner::new(tcp::Config::default().nodelay(nodelay)),
            source: (!listen_ip.is_unspecified()).then_some(listen_ip),
            nodelay,
            meter: Meter { counters, links: None },
        }
    }

    /// Every connection shaped by `links` (simulations).
    pub fn with_links(mut self, links: Option<Arc<dyn LinkModel>>) -> Self {
        self.meter.links = links;
        self
    }

    /// The address to bind a dial to `remote` to: the listen address when it can reach it.
    fn bind_for(&self, remote: IpAddr) -> Option<IpAddr> {
        self.source.filter(|source| {
            source.is_ipv4() == remote.is_ipv4() && source.is_loopback() == remote.is_loopback()
        })
    }
}

/// `/ip4/a/tcp/p` or `/ip6/a/tcp/p`, nothing after it, as a socket address.
fn tcp_socket_addr(address: &Multiaddr) -> Option<SocketAddr> {
    let mut parts = address.iter();
    let ip: IpAddr = match parts.next()? {
        Protocol::Ip4(ip) => ip.into(),
        Protocol::Ip6(ip) => ip.into(),
        _ => return None,
    };
    let Protocol::Tcp(port) = parts.next()? else { return None };
    let rest = parts.next();
    // A trailing /p2p/<id> is the peer, not the route.
    if !matches!(rest, None | Some(Protocol::P2p(_))) || parts.next().is_some() {
        return None;
    }
    (port != 0 && !ip.is_unspecified()).then(|| SocketAddr::new(ip, port))
}

impl libp2p::Transport for SourceBoundTcp {
    type Output = Counted<Stream>;
    type Error = io::Error;
    type ListenerUpgrade = futures::future::BoxFuture<'static, Result<Self::Output, io::Error>>;
    type Dial = futures::future::BoxFuture<'static, Result<Self::Output, io::Error>>;

    fn listen_on(
        &mut self,
        id: ListenerId,
        address: Multiaddr,
    ) -> Result<(), TransportError<Self::Error>> {
        self.inner.listen_on(id, address)
    }

    fn remove_listener(&mut self, id: ListenerId) -> bool {
        self.inner.remove_listener(id)
    }

    fn dial(
        &mut self,
        address: Multiaddr,
        opts: DialOpts,
    ) -> Result<Self::Dial, TransportError<Self::Error>> {
        let meter = self.meter.clone();
        if let (Some(links), Some(remote)) = (&meter.links, tcp_socket_addr(&address))
            && links.refuses(remote.ip())
        {
            let refused = io::Error::new(io::ErrorKind::ConnectionRefused, "connection refused");
            return Ok(futures::future::ready(Err(refused)).boxed());
        }
        let bound = tcp_socket_addr(&address)
            .and_then(|remote| self.bind_for(remote.ip()).map(|source| (remote, source)));
        let Some((remote, source)) = bound else {
            let dial = self.inner.dial(address, opts)?;
            return Ok(dial.map(move |stream| stream.map(|s| meter.wrap(s))).boxed());
        };
        let nodelay = self.nodelay;
        Ok(async move {
            let socket = match remote {
                SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
                SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
            };
            socket.set_nodelay(nodelay)?;
            socket.bind(SocketAddr::new(source, 0))?;
            let stream = socket.connect(remote).await?;
            Ok(meter.wrap(tcp::tokio::TcpStream(stream)))
        }
        .boxed())
    }

    fn poll(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<TransportEvent<Self::ListenerUpgrade, Self::Error>> {
        let meter = self.meter.clone();
        Pin::new(&mut self.inner).poll(cx).map(|event| {
            event.map_upgrade(|upgrade| {
                upgrade.map(move |stream| stream.map(|s| meter.wrap(s))).boxed()
            })
        })
    }
}

/// A stream whose bytes in and out are added to a node's [`ByteCounters`], its reads held
/// back as its link says when there is a link model.
pub struct Counted<S> {
    inner: S,
    counters: Arc<ByteCounters>,
    shaper: Option<Box<Shaper>>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let read = match this.shaper.as_deref_mut() {
            None => Pin::new(&mut this.inner).poll_read(cx, buf),
            // Nothing arrives any more, not even the end: the peer "crashed".
            Some(shaper) if shaper.is_severed() => Poll::Pending,
            Some(shaper) => shaper.poll_read(&mut this.inner, cx, buf),
        };
        if let Poll::Ready(Ok(n)) = read {
            this.counters.received.fetch_add(n as u64, Ordering::Relaxed);
        }
        read
    }
}

/// Bytes read from a socket but not yet due, at most this many per connection: past it the
/// socket is left unread and TCP's own flow control pushes back on the sender.
const SHAPER_BUFFER: usize = 1 << 20;

thread_local! {
    /// Where a shaped read lands before it is queued: one per thread, not a zeroed 16 KiB
    /// array on every poll (a thousand simulated nodes poll their links tens of thousands of
    /// times a second).
    static READ_SCRATCH: std::cell::RefCell<Box<[u8]>> =
        std::cell::RefCell::new(vec![0; 16 * 1024].into_boxed_slice());
}

/// The receiving end of a simulated link: every chunk read from the socket becomes readable
/// once the link's rate has carried it and its one-way delay has passed.
pub struct Shaper {
    links: Arc<dyn LinkModel>,
    /// (local, remote) addresses of the connection.
    ends: (IpAddr, IpAddr),
    /// Chunks read from the socket, each with the time it is due.
    due: VecDeque<(tokio::time::Instant, Vec<u8>)>,
    /// How much of the front chunk was already handed out.
    offset: usize,
    buffered: usize,
    /// When the link has finished carrying what it was given (the rate's queue).
    link_free: tokio::time::Instant,
    timer: Pin<Box<tokio::time::Sleep>>,
    /// The socket ended (or failed); handed out once every due chunk is.
    ended: Option<io::Result<()>>,
}

impl Shaper {
    fn new(links: Arc<dyn LinkModel>, ends: (IpAddr, IpAddr)) -> Self {
        let now = tokio::time::Instant::now();
        Self {
            links,
            ends,
            due: VecDeque::new(),
            offset: 0,
            buffered: 0,
            link_free: now,
            timer: Box::pin(tokio::time::sleep_until(now)),
            ended: None,
        }
    }

    fn is_severed(&self) -> bool {
        self.links.severed(self.ends.0, self.ends.1)
    }

    fn poll_read<S: AsyncRead + Unpin>(
        &mut self,
        inner: &mut S,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        // Take in what the socket has, stamped with when it is due.
        while self.ended.is_none() && self.buffered < SHAPER_BUFFER {
            let read = READ_SCRATCH.with_borrow_mut(|scratch| {
                Pin::new(&mut *inner).poll_read(cx, scratch).map_ok(|n| scratch[..n].to_vec())
            });
            match read {
                Poll::Ready(Ok(chunk)) if chunk.is_empty() => self.ended = Some(Ok(())),
                Poll::Ready(Ok(chunk)) => {
                    let n = chunk.len();
                    let now = tokio::time::Instant::now();
                    let link = self.links.link(self.ends.0, self.ends.1);
                    let carried = match link.bytes_per_sec {
                        Some(rate) if rate > 0 => {
                            let start = self.link_free.max(now);
                            start + Duration::from_secs_f64(n as f64 / rate as f64)
                        }
                        _ => now,
                    };
                    self.link_free = carried;
                    self.due.push_back((carried + link.one_way, chunk));
                    self.buffered += n;
                }
                Poll::Ready(Err(e)) => self.ended = Some(Err(e)),
                Poll::Pending => break,
            }
        }
        // Hand out what is due.
        if let Some((at, bytes)) = self.due.front() {
            if *at > tokio::time::Instant::now() {
                self.timer.as_mut().reset(*at);
                // The timer wakes us when it is due; the socket when more arrives.
                if self.timer.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
            }
            let n = (bytes.len() - self.offset).min(buf.len());
            buf[..n].copy_from_slice(&bytes[self.offset..self.offset + n]);
            self.offset += n;
            self.buffered -= n;
            if self.offset == bytes.len() {
                self.due.pop_front();
                self.offset = 0;
            }
            return Poll::Ready(Ok(n));
        }
        // Nothing due and nothing buffered: the socket said Pending above (it will wake us),
        // or it ended.
        match self.ended.take() {
            Some(Ok(())) => {
                self.ended = Some(Ok(()));
                Poll::Ready(Ok(0))
            }
            Some(Err(e)) => Poll::Ready(Err(e)),
            None => Poll::Pending,
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.shaper.as_deref().is_some_and(Shaper::is_severed) {
            // Sent into the void, as to a crashed host before TCP gives up.
            return Poll::Ready(Ok(buf.len()));
        }
        let written = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = written {
            self.counters.sent.fetch_add(n as u64, Ordering::Relaxed);
        }
        written
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_close(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_tcp_addresses_are_dialled_by_hand() {
        let parse = |s: &str| tcp_socket_addr(&s.parse().expect("multiaddr"));
        assert_eq!(parse("/ip4/127.0.0.2/tcp/60000"), Some("127.0.0.2:60000".parse().expect("a")));
        assert_eq!(
            parse("/ip6/::1/tcp/5/p2p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA"),
            Some("[::1]:5".parse().expect("a"))
        );
        // WebSocket and DNS addresses belong to other layers; port 0 and 0.0.0.0 are not dialable.
        for other in [
            "/ip4/127.0.0.2/tcp/5/ws",
            "/dns4/example.org/tcp/5",
            "/ip4/127.0.0.2/tcp/0",
            "/ip4/0.0.0.0/tcp/5",
            "/ip4/127.0.0.2/udp/5",
        ] {
            assert_eq!(parse(other), None, "{other}");
        }
    }

    #[test]
    fn dials_are_bound_only_where_the_listen_address_can_reach() {
        let counters = Arc::new(ByteCounters::default());
        let loopback = SourceBoundTcp::new("127.16.0.1".parse().expect("ip"), counters.clone());
        assert_eq!(loopback.bind_for("127.16.3.1".parse().expect("ip")), loopback.source);
        assert_eq!(loopback.bind_for("192.0.2.1".parse().expect("ip")), None);
        assert_eq!(loopback.bind_for("::1".parse().expect("ip")), None);
        let public = SourceBoundTcp::new("192.0.2.7".parse().expect("ip"), counters.clone());
        assert_eq!(public.bind_for("198.51.100.1".parse().expect("ip")), public.source);
        assert_eq!(public.bind_for("127.0.0.1".parse().expect("ip")), None);
        let any = SourceBoundTcp::new("0.0.0.0".parse().expect("ip"), counters);
        assert_eq!(any.bind_for("198.51.100.1".parse().expect("ip")), None);
    }

    struct Fixed(Link, std::sync::atomic::AtomicBool);
    impl LinkModel for Fixed {
        fn link(&self, _: IpAddr, _: IpAddr) -> Link {
            self.0
        }
        fn severed(&self, _: IpAddr, _: IpAddr) -> bool {
            self.1.load(Ordering::Relaxed)
        }
    }

    /// A connected pair of sockets, each end metered with `link`.
    async fn pair(link: Link) -> (Counted<Stream>, Counted<Stream>, Arc<ByteCounters>) {
        let (a, b, counters, _) = cuttable_pair(link).await;
        (a, b, counters)
    }

    async fn cuttable_pair(
        link: Link,
    ) -> (Counted<Stream>, Counted<Stream>, Arc<ByteCounters>, Arc<Fixed>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let dial = tokio::net::TcpStream::connect(listener.local_addr().expect("addr"));
        let (dialed, accepted) = tokio::join!(dial, listener.accept());
        let counters = Arc::new(ByteCounters::default());
        let model = Arc::new(Fixed(link, Default::default()));
        let meter = Meter { counters: counters.clone(), links: Some(model.clone()) };
        let a = meter.wrap(tcp::tokio::TcpStream(dialed.expect("connect")));
        let b = meter.wrap(tcp::tokio::TcpStream(accepted.expect("accept").0));
        (a, b, counters, model)
    }

    /// Refuses connections to one address.
    struct Firewalled(IpAddr);
    impl LinkModel for Firewalled {
        fn link(&self, _: IpAddr, _: IpAddr) -> Link {
            Link { one_way: Duration::ZERO, bytes_per_sec: None }
        }
        fn refuses(&self, to: IpAddr) -> bool {
            to == self.0
        }
    }

    #[tokio::test]
    async fn dials_to_a_host_that_refuses_connections_fail_as_refused_and_others_connect() {
        use libp2p::{Transport, core::transport::DialOpts};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let dial = |firewall: &str| {
            let model = Arc::new(Firewalled(firewall.parse().expect("ip")));
            let mut transport =
                SourceBoundTcp::new("127.0.0.1".parse().expect("ip"), Default::default())
                    .with_links(Some(model));
            let address: Multiaddr = format!("/ip4/127.0.0.1/tcp/{port}").parse().expect("addr");
            let opts = DialOpts {
                role: libp2p::core::Endpoint::Dialer,
                port_use: libp2p::core::transport::PortUse::New,
            };
            transport.dial(address, opts).expect("a dial starts")
        };
        // The listener is there, but the model says the host refuses: no connection.
        let refused = dial("127.0.0.1").await.err().expect("refused");
        assert_eq!(refused.kind(), io::ErrorKind::ConnectionRefused);
        // Another host's firewall does not matter.
        let (connected, accepted) = tokio::join!(dial("127.0.0.2"), listener.accept());
        assert!(connected.is_ok() && accepted.is_ok());
    }

    #[tokio::test]
    async fn a_severed_link_carries_nothing_not_even_the_close() {
        use futures::{AsyncReadExt, AsyncWriteExt};
        let link = Link { one_way: Duration::ZERO, bytes_per_sec: None };
        let (mut a, mut b, _, model) = cuttable_pair(link).await;
        a.write_all(b"before").await.expect("write");
        let mut got = [0u8; 6];
        b.read_exact(&mut got).await.expect("read");
        model.1.store(true, Ordering::Relaxed);
        // Writes still "succeed", as to a host that died a moment ago.
        a.write_all(b"after").await.expect("write");
        a.close().await.expect("close");
        drop(a);
        // The other end hears neither the bytes nor the close: it waits, as for a dead host.
        let mut rest = Vec::new();
        let waited =
            tokio::time::timeout(Duration::from_millis(300), b.read_to_end(&mut rest)).await;
        assert!(waited.is_err(), "the read ended: {waited:?}, {rest:?}");
        assert!(rest.is_empty());
    }

    #[tokio::test]
    async fn a_link_holds_bytes_back_for_its_delay_and_paces_them_to_its_rate() {
        use futures::{AsyncReadExt, AsyncWriteExt};
        let one_way = Duration::from_millis(80);
        let (mut a, mut b, counters) = pair(Link { one_way, bytes_per_sec: None }).await;
        let started = tokio::time::Instant::now();
        a.write_all(b"ping").await.expect("write");
        let mut got = [0u8; 4];
        b.read_exact(&mut got).await.expect("read");
        assert_eq!(&got, b"ping");
        b.write_all(b"pong").await.expect("write");
        a.read_exact(&mut got).await.expect("read");
        assert_eq!(&got, b"pong");
        // There and back: both ends held what they read for the one-way delay.
        assert!(started.elapsed() >= one_way * 2, "{:?}", started.elapsed());
        assert_eq!((counters.sent(), counters.received()), (8, 8));

        // 256 KiB at 1 MiB/s takes a quarter of a second, whatever loopback could do, and
        // arrives whole and in order; then the end of the stream.
        let rate = 1 << 20;
        let (mut a, mut b, _) =
            pair(Link { one_way: Duration::ZERO, bytes_per_sec: Some(rate) }).await;
        let sent: Vec<u8> = (0..256 * 1024u32).map(|i| (i % 251) as u8).collect();
        let started = tokio::time::Instant::now();
        let writer = async {
            a.write_all(&sent).await.expect("write");
            a.close().await.expect("close");
        };
        let mut received = Vec::new();
        let reader = b.read_to_end(&mut received);
        let ((), read) = tokio::join!(writer, reader);
        read.expect("read");
        assert!(started.elapsed() >= Duration::from_millis(240), "{:?}", started.elapsed());
        assert!(received == sent, "{} bytes arrived of {}", received.len(), sent.len());
    }
}
