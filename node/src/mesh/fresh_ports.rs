//! Every outgoing TCP connection from a fresh local port.
//!
//! libp2p dials from the listening port by default (port reuse, which TCP
//! hole punching needs). Two nodes that dial each other at the same moment
//! from their listening ports then send SYNs for the same pair of
//! addresses, and TCP joins them into one connection on which both act as
//! the dialer: Noise fails and neither retries. mDNS makes that moment
//! likely, since two agents on a LAN hear each other's announcement
//! together; half the two-agent LANs in our tests never linked. The mesh
//! crosses NATs through relay circuits, not hole punching, so it gives the
//! reuse up: two dials are two connections, and both succeed.

use std::pin::Pin;
use std::task::{Context, Poll};

use libp2p::Multiaddr;
use libp2p::core::transport::{
    DialOpts, ListenerId, PortUse, Transport, TransportError, TransportEvent,
};

/// A transport whose dials never reuse a listening port.
pub struct FreshPorts<T>(pub T);

impl<T: Transport + Unpin> Transport for FreshPorts<T> {
    type Output = T::Output;
    type Error = T::Error;
    type ListenerUpgrade = T::ListenerUpgrade;
    type Dial = T::Dial;

    fn listen_on(
        &mut self,
        id: ListenerId,
        address: Multiaddr,
    ) -> Result<(), TransportError<Self::Error>> {
        self.0.listen_on(id, address)
    }

    fn remove_listener(&mut self, id: ListenerId) -> bool {
        self.0.remove_listener(id)
    }

    fn dial(
        &mut self,
        address: Multiaddr,
        options: DialOpts,
    ) -> Result<Self::Dial, TransportError<Self::Error>> {
        self.0.dial(
            address,
            DialOpts {
                port_use: PortUse::New,
                ..options
            },
        )
    }

    fn poll(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<TransportEvent<Self::ListenerUpgrade, Self::Error>> {
        Pin::new(&mut self.get_mut().0).poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use libp2p::core::Endpoint;
    use libp2p::tcp;

    /// Listens on a loopback port; returns the transport and its address.
    async fn listening<T: Transport + Unpin>(mut transport: T) -> (T, Multiaddr)
    where
        T::Error: std::fmt::Debug,
    {
        transport
            .listen_on(ListenerId::next(), "/ip4/127.0.0.1/tcp/0".parse().unwrap())
            .unwrap();
        loop {
            let event = futures::future::poll_fn(|cx| Pin::new(&mut transport).poll(cx)).await;
            if let TransportEvent::NewAddress { listen_addr, .. } = event {
                return (transport, listen_addr);
            }
        }
    }

    fn port(address: &Multiaddr) -> u16 {
        address
            .iter()
            .find_map(|part| match part {
                libp2p::multiaddr::Protocol::Tcp(port) => Some(port),
                _ => None,
            })
            .unwrap()
    }

    async fn dial_and_see_local_port<T>(transport: &mut T, to: &Multiaddr) -> u16
    where
        T: Transport<Output = tcp::tokio::TcpStream> + Unpin,
        T::Error: std::fmt::Debug,
    {
        let asking_for_reuse = DialOpts {
            role: Endpoint::Dialer,
            port_use: PortUse::Reuse,
        };
        let stream = transport
            .dial(to.clone(), asking_for_reuse)
            .unwrap()
            .await
            .unwrap();
        stream.0.local_addr().unwrap().port()
    }

    #[tokio::test]
    async fn a_dial_asking_to_reuse_the_listening_port_gets_a_fresh_one() {
        // Kept, so its listener stays open to be dialled.
        let (_listener, target) =
            listening(tcp::tokio::Transport::new(tcp::Config::default())).await;

        let (mut plain, plain_address) =
            listening(tcp::tokio::Transport::new(tcp::Config::default())).await;
        // The premise: libp2p's TCP alone dials from its listening port.
        assert_eq!(
            dial_and_see_local_port(&mut plain, &target).await,
            port(&plain_address)
        );

        let (mut fresh, fresh_address) = listening(FreshPorts(tcp::tokio::Transport::new(
            tcp::Config::default(),
        )))
        .await;
        assert_ne!(
            dial_and_see_local_port(&mut fresh, &target).await,
            port(&fresh_address)
        );
    }
}
