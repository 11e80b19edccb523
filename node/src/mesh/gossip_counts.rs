//! gossipsub's own message counters (its `metrics` feature), for the
//! node's status: every copy received, the first copies, and sent.

/// gossipsub's message counters, summed over topics.
#[derive(Debug, Default, PartialEq)]
pub struct GossipCounts {
    pub received: u64,
    pub unique: u64,
    pub sent: u64,
}

impl GossipCounts {
    /// Reads them from the text exposition of gossipsub's registry (its
    /// metrics are not otherwise readable).
    pub fn read(registry: &prometheus_client::registry::Registry) -> Self {
        let mut text = String::new();
        if prometheus_client::encoding::text::encode(&mut text, registry).is_err() {
            return Self::default();
        }
        Self::parse(&text)
    }

    fn parse(text: &str) -> Self {
        let total = |name: &str| -> u64 {
            text.lines()
                .filter_map(|line| {
                    let rest = line.strip_prefix(name)?;
                    let rest = rest.strip_prefix("_total")?;
                    if !(rest.starts_with('{') || rest.starts_with(' ')) {
                        return None;
                    }
                    rest.rsplit(' ').next()?.parse::<f64>().ok()
                })
                .sum::<f64>() as u64
        };
        Self {
            received: total("topic_msg_recv_counts_unfiltered"),
            unique: total("topic_msg_recv_counts"),
            sent: total("topic_msg_sent_counts"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::GossipCounts;

    #[test]
    fn gossip_counts_read_the_text_exposition() {
        let text = "# HELP topic_msg_recv_counts_unfiltered Number of gossip messages received.\n\
                    # TYPE topic_msg_recv_counts_unfiltered counter\n\
                    topic_msg_recv_counts_unfiltered_total{hash=\"mig-actions\"} 7\n\
                    topic_msg_recv_counts_total{hash=\"mig-actions\"} 2\n\
                    topic_msg_recv_counts_total{hash=\"other\"} 1\n\
                    topic_msg_sent_counts_total{hash=\"mig-actions\"} 12\n\
                    topic_msg_sent_bytes_total{hash=\"mig-actions\"} 9000\n";
        assert_eq!(
            GossipCounts::parse(text),
            GossipCounts {
                received: 7,
                unique: 3,
                sent: 12
            }
        );
    }
}
