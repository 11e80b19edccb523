//! The simulated network: libp2p's in-memory transport (with libp2p's
//! plaintext handshake, or the real Noise, and Yamux on top), segments
//! that reach each other only through the relays' segment, partitions
//! that cut a segment off, and per-segment link shaping.
//!
//! Model, kept simple on purpose and printed with every report:
//! * Reachability: a node dials nodes of its own segment and of the relay
//!   segment; relays dial everyone. A cut segment reaches no other segment;
//!   its existing cross-segment connections fail on their next byte (as
//!   TCP does: a silent partition is noticed when something is sent).
//! * Shaping is applied to the bytes a node receives, with the profile of
//!   the node's own segment: one-way `latency_ms`; `bandwidth_kbps` as a
//!   FIFO of that rate; `loss` as the chance that a chunk costs a
//!   retransmission timeout (200 ms or twice the latency), because on a
//!   reliable stream loss shows up as delay, not as missing bytes.
//!
//! Each connection starts with a two-byte header, the dialer's segment, so
//! both ends know the link they are on; then the handshake and Yamux as
//! on TCP.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::core::transport::{MemoryTransport, Transport, upgrade::Version};
use libp2p::{Multiaddr, multiaddr::Protocol, noise, plaintext, yamux};
use mig_node::mesh::TransportFactory;
use mig_node::mesh::traffic::Counted;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};
use tokio::time::{Instant, Sleep};

/// How a segment's links behave (bytes into its nodes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LinkProfile {
    /// One-way latency in milliseconds.
    pub latency_ms: f64,
    /// Chance, per chunk received, of a retransmission delay (0 to 1).
    pub loss: f64,
    /// Bandwidth into each node in kilobits per second; 0: unlimited.
    pub bandwidth_kbps: f64,
}

impl LinkProfile {
    fn is_ideal(&self) -> bool {
        self.latency_ms <= 0.0 && self.loss <= 0.0 && self.bandwidth_kbps <= 0.0
    }
}

/// One segment of the simulated network.
#[derive(Debug)]
pub struct Segment {
    pub name: String,
    pub profile: LinkProfile,
    cut: AtomicBool,
}

/// How two simulated nodes authenticate a link. Every node of a fleet
/// shares the two cores, so each handshake and each encrypted frame is
/// paid a thousand times over on one machine, where a real agent pays for
/// its own links on its own host. The plaintext handshake still gives each
/// side the other's peer id (they exchange public keys), which is all the
/// node takes from a handshake; frames then travel unencrypted through
/// memory (docs/decisions/0011).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Handshake {
    /// libp2p's plaintext protocol: public keys exchanged, no encryption.
    #[default]
    Plaintext,
    /// The real Noise XX handshake and encrypted frames, as on TCP.
    Noise,
}

impl Handshake {
    pub fn describe(self) -> &'static str {
        match self {
            Self::Plaintext => {
                "libp2p's plaintext handshake (public keys exchanged, frames unencrypted; --handshake noise for the real Noise)"
            }
            Self::Noise => "the real Noise handshake and encryption",
        }
    }
}

/// A handshake not done by then fails the connection, as on TCP.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(20);

/// Who reaches whom. Index `relay_segment` is the relays' own segment.
#[derive(Debug)]
pub struct World {
    segments: Vec<Segment>,
    relay_segment: usize,
    /// Seeds each connection's loss generator.
    seed: u64,
    connections: AtomicU64,
    /// Memory-transport ports: `port_base + node index + 1`.
    port_base: u64,
    /// The segment of each node, by index.
    placement: Vec<usize>,
}

impl World {
    /// `segments` are the agents' segments; the relays' segment is added
    /// last with `relay_profile`. `placement` gives each node's segment.
    pub fn new(
        segments: Vec<(String, LinkProfile)>,
        relay_profile: LinkProfile,
        placement: Vec<usize>,
        seed: u64,
    ) -> Self {
        let mut segments: Vec<Segment> = segments
            .into_iter()
            .map(|(name, profile)| Segment {
                name,
                profile,
                cut: AtomicBool::new(false),
            })
            .collect();
        let relay_segment = segments.len();
        segments.push(Segment {
            name: "relays".into(),
            profile: relay_profile,
            cut: AtomicBool::new(false),
        });
        // Ports are process-wide in the in-memory transport; a random base
        // keeps two worlds in one process (tests) apart.
        let port_base = (rand::rng().random_range(1u64..1 << 40)) << 20;
        Self {
            segments,
            relay_segment,
            seed,
            connections: AtomicU64::new(0),
            port_base,
            placement,
        }
    }

    pub fn relay_segment(&self) -> usize {
        self.relay_segment
    }

    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// The listen address of node `index`.
    pub fn address(&self, index: usize) -> Multiaddr {
        Multiaddr::empty().with(Protocol::Memory(self.port_base + index as u64 + 1))
    }

    /// Cuts a segment off from every other one, or heals it.
    pub fn set_cut(&self, segment: usize, cut: bool) {
        if let Some(segment) = self.segments.get(segment) {
            segment.cut.store(cut, Ordering::SeqCst);
        }
    }

    /// Whether a node of segment `a` and one of segment `b` can talk.
    pub fn reachable(&self, a: usize, b: usize) -> bool {
        if a == b {
            return true;
        }
        let cut = |segment: usize| {
            self.segments
                .get(segment)
                .is_none_or(|segment| segment.cut.load(Ordering::SeqCst))
        };
        (a == self.relay_segment || b == self.relay_segment) && !cut(a) && !cut(b)
    }

    /// The transport of a node in `segment`: in-memory links, the segment
    /// header, shaping, byte counting, then `handshake` and Yamux.
    pub fn transport(self: &Arc<Self>, segment: usize, handshake: Handshake) -> TransportFactory {
        let world = self.clone();
        Arc::new(move |key, traffic| {
            let world = world.clone();
            let links = MemoryTransport::default()
                .and_then(move |mut stream, endpoint| {
                    let world = world.clone();
                    async move {
                        let remote = if endpoint.is_dialer() {
                            stream.write_all(&(segment as u16).to_le_bytes()).await?;
                            stream.flush().await?;
                            // The listener's segment, from its port.
                            world.segment_of_address(endpoint.get_remote_address())
                        } else {
                            let mut header = [0u8; 2];
                            stream.read_exact(&mut header).await?;
                            Some(usize::from(u16::from_le_bytes(header)))
                        };
                        let remote = remote.ok_or_else(|| io::Error::other("unknown segment"))?;
                        if !world.reachable(segment, remote) {
                            return Err(io::Error::new(
                                io::ErrorKind::ConnectionRefused,
                                "no route between these segments",
                            ));
                        }
                        Ok(Shaped::new(stream, world.clone(), segment, remote))
                    }
                })
                .map(move |stream, _| Counted::new(stream, traffic.clone()))
                .upgrade(Version::V1Lazy);
            // The two arms differ in type until boxed.
            Ok(match handshake {
                Handshake::Noise => links
                    .authenticate(noise::Config::new(key)?)
                    .multiplex(yamux::Config::default())
                    .timeout(HANDSHAKE_TIMEOUT)
                    .boxed(),
                Handshake::Plaintext => links
                    .authenticate(plaintext::Config::new(key))
                    .multiplex(yamux::Config::default())
                    .timeout(HANDSHAKE_TIMEOUT)
                    .boxed(),
            })
        })
    }

    /// Segments of listening nodes, registered as nodes are placed.
    fn segment_of_address(&self, address: &Multiaddr) -> Option<usize> {
        let Some(Protocol::Memory(port)) = address.iter().next() else {
            return None;
        };
        let index = port.checked_sub(self.port_base + 1)?;
        self.placement.get(usize::try_from(index).ok()?).copied()
    }
}

/// Largest number of bytes held back in one direction of one connection;
/// past it the reader stops reading and the writer waits.
const MAX_HELD: usize = 1024 * 1024;
/// Read size from the underlying channel.
const CHUNK: usize = 16 * 1024;

/// One end of a connection: incoming bytes held back as the node's segment
/// profile says, and the link checked on every read and write.
pub struct Shaped<S> {
    inner: S,
    world: Arc<World>,
    local: usize,
    remote: usize,
    profile: LinkProfile,
    /// Bytes received, with the time they may be handed on.
    held: VecDeque<(Instant, Vec<u8>)>,
    held_bytes: usize,
    /// When the incoming link is next free (bandwidth).
    link_free: Instant,
    /// The last release time (bytes are released in order).
    last_release: Instant,
    timer: Option<Pin<Box<Sleep>>>,
    eof: bool,
    rng: StdRng,
}

impl<S> Shaped<S> {
    fn new(inner: S, world: Arc<World>, local: usize, remote: usize) -> Self {
        let profile = world
            .segments
            .get(local)
            .map(|segment| segment.profile)
            .unwrap_or_default();
        let number = world.connections.fetch_add(1, Ordering::Relaxed);
        let rng = StdRng::seed_from_u64(world.seed ^ number.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let now = Instant::now();
        Self {
            inner,
            world,
            local,
            remote,
            profile,
            held: VecDeque::new(),
            held_bytes: 0,
            link_free: now,
            last_release: now,
            timer: None,
            eof: false,
            rng,
        }
    }

    fn check_link(&self) -> io::Result<()> {
        if self.world.reachable(self.local, self.remote) {
            Ok(())
        } else {
            Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "the segment is cut off",
            ))
        }
    }

    /// When bytes arriving now may be handed on.
    fn release_time(&mut self, bytes: usize, now: Instant) -> Instant {
        let mut release = now;
        if self.profile.bandwidth_kbps > 0.0 {
            let start = self.link_free.max(now);
            let seconds = bytes as f64 * 8.0 / (self.profile.bandwidth_kbps * 1000.0);
            self.link_free = start + Duration::from_secs_f64(seconds);
            release = self.link_free;
        }
        let latency = Duration::from_secs_f64(self.profile.latency_ms.max(0.0) / 1000.0);
        release += latency;
        if self.profile.loss > 0.0 && self.rng.random::<f64>() < self.profile.loss {
            release += Duration::from_millis(200).max(latency * 2);
        }
        release = release.max(self.last_release);
        self.last_release = release;
        release
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Shaped<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buffer: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.check_link()?;
        if this.profile.is_ideal() {
            return Pin::new(&mut this.inner).poll_read(cx, buffer);
        }
        loop {
            // Take in everything that has arrived, stamped with its release.
            while !this.eof && this.held_bytes < MAX_HELD {
                let mut chunk = vec![0u8; CHUNK];
                match Pin::new(&mut this.inner).poll_read(cx, &mut chunk) {
                    Poll::Ready(Ok(0)) => this.eof = true,
                    Poll::Ready(Ok(read)) => {
                        chunk.truncate(read);
                        let release = this.release_time(read, Instant::now());
                        this.held_bytes += read;
                        this.held.push_back((release, chunk));
                    }
                    Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
                    Poll::Pending => break,
                }
            }
            let Some((release, _)) = this.held.front() else {
                return if this.eof {
                    Poll::Ready(Ok(0))
                } else {
                    Poll::Pending
                };
            };
            let release = *release;
            if release <= Instant::now() {
                this.timer = None;
                let Some((_, bytes)) = this.held.front_mut() else {
                    return Poll::Pending;
                };
                let count = bytes.len().min(buffer.len());
                buffer[..count].copy_from_slice(&bytes[..count]);
                bytes.drain(..count);
                if bytes.is_empty() {
                    this.held.pop_front();
                }
                this.held_bytes -= count;
                return Poll::Ready(Ok(count));
            }
            let timer = this
                .timer
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(release)));
            if timer.deadline() != release {
                timer.as_mut().reset(release);
            }
            match timer.as_mut().poll(cx) {
                Poll::Ready(()) => continue,
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Shaped<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buffer: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.check_link()?;
        Pin::new(&mut this.inner).poll_write(cx, buffer)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.check_link()?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_close(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn world(cut_b: bool) -> World {
        let world = World::new(
            vec![
                ("a".into(), LinkProfile::default()),
                ("b".into(), LinkProfile::default()),
            ],
            LinkProfile::default(),
            vec![0, 1, 2],
            7,
        );
        world.set_cut(1, cut_b);
        world
    }

    #[test]
    fn segments_meet_only_through_relays_and_a_cut_segment_reaches_none() {
        let world = world(false);
        assert!(world.reachable(0, 0));
        assert!(!world.reachable(0, 1));
        assert!(world.reachable(0, 2) && world.reachable(2, 1));
        let world = self::world(true);
        assert!(!world.reachable(1, 2));
        assert!(world.reachable(1, 1));
        assert!(world.reachable(0, 2));
        assert_eq!(world.segment_of_address(&world.address(1)), Some(1));
        assert_eq!(world.segment_of_address(&world.address(9)), None);
    }

    #[tokio::test]
    async fn latency_and_bandwidth_hold_bytes_back_in_order() {
        let world = Arc::new(World::new(
            vec![(
                "slow".into(),
                LinkProfile {
                    latency_ms: 50.0,
                    loss: 0.0,
                    bandwidth_kbps: 800.0,
                },
            )],
            LinkProfile::default(),
            vec![0, 0],
            1,
        ));
        // 10 KB at 800 kbit/s is 100 ms, plus 50 ms of latency.
        let mut shaped = Shaped::new(futures::io::Cursor::new(vec![7u8; 10_000]), world, 0, 0);
        let started = Instant::now();
        let mut received = Vec::new();
        let mut buffer = [0u8; 4096];
        while received.len() < 10_000 {
            let read = shaped.read(&mut buffer).await.unwrap();
            received.extend_from_slice(&buffer[..read]);
        }
        let elapsed = started.elapsed();
        assert!(received.iter().all(|byte| *byte == 7));
        assert!(elapsed >= Duration::from_millis(145), "{elapsed:?}");
    }
}
