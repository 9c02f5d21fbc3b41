//! Which way voice goes (spec §8.4): QUIC datagrams while VOICE_PING echoes come back by
//! datagram, the voice tunnel stream once they have stopped for [`SWITCH_AFTER`], and back to
//! datagrams when the echo of a probe arrives. Sans-io: the session feeds it the clock and the
//! echoes, and sends the pings it asks for.

use std::time::{Duration, Instant};

/// A VOICE_PING on the current path this often (also the round-trip measurement).
pub const PING_INTERVAL: Duration = Duration::from_secs(1);
/// No datagram echo for this long moves voice to the tunnel.
pub const SWITCH_AFTER: Duration = Duration::from_secs(3);
/// On the tunnel, one probe datagram this often.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(5);

/// A voice path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VoicePath {
    /// QUIC datagrams (RFC 9221).
    Datagram,
    /// Records on the voice tunnel stream.
    Tunnel,
}

/// A ping to send: the path and the 8-byte payload the server echoes.
pub type Ping = (VoicePath, [u8; 8]);

/// The path decision for one voice session.
#[derive(Debug)]
pub struct PathSelector {
    epoch: Instant,
    path: VoicePath,
    /// Whether the server takes datagrams at all (no probes otherwise).
    datagrams: bool,
    last_datagram_echo: Instant,
    next_ping: Instant,
    next_probe: Instant,
    rtt: Option<Duration>,
}

impl PathSelector {
    /// Starts on datagrams when the server takes them, on the tunnel otherwise.
    pub fn new(now: Instant, datagrams: bool) -> Self {
        Self {
            epoch: now,
            path: if datagrams { VoicePath::Datagram } else { VoicePath::Tunnel },
            datagrams,
            last_datagram_echo: now,
            next_ping: now,
            next_probe: now + PROBE_INTERVAL,
            rtt: None,
        }
    }

    /// The path voice takes now.
    pub fn path(&self) -> VoicePath {
        self.path
    }

    /// The smoothed round-trip time through the server, once an echo came back.
    pub fn rtt(&self) -> Option<Duration> {
        self.rtt
    }

    /// When [`poll`](Self::poll) has something to do next.
    pub fn poll_timeout(&self) -> Instant {
        match self.path {
            VoicePath::Datagram => self.next_ping.min(self.last_datagram_echo + SWITCH_AFTER),
            VoicePath::Tunnel if self.datagrams => self.next_ping.min(self.next_probe),
            VoicePath::Tunnel => self.next_ping,
        }
    }

    /// Moves to the tunnel if datagram echoes stopped, and returns the pings due at `now`.
    pub fn poll(&mut self, now: Instant) -> Vec<Ping> {
        if self.path == VoicePath::Datagram
            && now.duration_since(self.last_datagram_echo) >= SWITCH_AFTER
        {
            self.path = VoicePath::Tunnel;
            self.next_ping = now;
            self.next_probe = now + PROBE_INTERVAL;
        }
        let mut pings = Vec::new();
        if now >= self.next_ping {
            pings.push((self.path, self.stamp(now)));
            self.next_ping = now + PING_INTERVAL;
        }
        if self.path == VoicePath::Tunnel && self.datagrams && now >= self.next_probe {
            pings.push((VoicePath::Datagram, self.stamp(now)));
            self.next_probe = now + PROBE_INTERVAL;
        }
        pings
    }

    /// An echo of one of our pings came back by `via`.
    pub fn on_echo(&mut self, via: VoicePath, payload: &[u8], now: Instant) {
        let Ok(stamp) = <[u8; 8]>::try_from(payload) else { return };
        let sent = self.epoch + Duration::from_micros(u64::from_be_bytes(stamp));
        if let Some(sample) = now.checked_duration_since(sent) {
            // RFC 6298 smoothing: an eighth of each new sample.
            self.rtt = Some(match self.rtt {
                Some(rtt) => (rtt * 7 + sample) / 8,
                None => sample,
            });
        }
        if via == VoicePath::Datagram {
            self.last_datagram_echo = now;
            self.path = VoicePath::Datagram;
        }
    }

    fn stamp(&self, now: Instant) -> [u8; 8] {
        let micros = now.duration_since(self.epoch).as_micros();
        u64::try_from(micros).unwrap_or(u64::MAX).to_be_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn answered_datagram_pings_keep_voice_on_datagrams_and_measure_the_round_trip() {
        let start = Instant::now();
        let mut paths = PathSelector::new(start, true);
        let mut now = start;
        for _ in 0..10 {
            let pings = paths.poll(now);
            assert_eq!(pings.len(), 1);
            let (via, payload) = pings[0];
            assert_eq!(via, VoicePath::Datagram);
            paths.on_echo(via, &payload, now + 40 * MS);
            now += PING_INTERVAL;
        }
        assert_eq!(paths.path(), VoicePath::Datagram);
        assert_eq!(paths.rtt(), Some(40 * MS));
    }

    /// Polls from `now` on, with no datagram echo coming back, until voice moves to the
    /// tunnel; returns when it did (the poll that switched sends a tunnel ping at once).
    fn run_until_tunnel(paths: &mut PathSelector, mut now: Instant) -> Instant {
        loop {
            let pings = paths.poll(now);
            if paths.path() == VoicePath::Tunnel {
                assert_eq!(pings.len(), 1);
                assert_eq!(pings[0].0, VoicePath::Tunnel);
                return now;
            }
            assert!(pings.iter().all(|(via, _)| *via == VoicePath::Datagram));
            now = paths.poll_timeout();
        }
    }

    #[test]
    fn lost_datagrams_move_voice_to_the_tunnel_and_a_probe_echo_brings_it_back() {
        let start = Instant::now();
        let mut paths = PathSelector::new(start, true);
        let switched = run_until_tunnel(&mut paths, start);
        assert_eq!(switched, start + SWITCH_AFTER);
        // On the tunnel: a ping there each second, no probe before five seconds.
        let mut now = paths.poll_timeout();
        while now < switched + PROBE_INTERVAL {
            let pings = paths.poll(now);
            assert_eq!(pings.iter().map(|(via, _)| *via).collect::<Vec<_>>(), [VoicePath::Tunnel]);
            now = paths.poll_timeout();
        }
        assert_eq!(now, switched + PROBE_INTERVAL);
        let pings = paths.poll(now);
        assert_eq!(pings.iter().filter(|(via, _)| *via == VoicePath::Tunnel).count(), 1);
        let probe = pings.iter().find(|(via, _)| *via == VoicePath::Datagram).expect("probe");
        // A tunnel echo keeps the tunnel; the probe's echo means datagrams work again.
        paths.on_echo(VoicePath::Tunnel, &probe.1, now + 30 * MS);
        assert_eq!(paths.path(), VoicePath::Tunnel);
        let back = now + 30 * MS;
        paths.on_echo(VoicePath::Datagram, &probe.1, back);
        assert_eq!(paths.path(), VoicePath::Datagram);
        assert_eq!(paths.rtt(), Some(30 * MS));
        // Three more seconds without an echo and it is back on the tunnel.
        assert_eq!(run_until_tunnel(&mut paths, back), back + SWITCH_AFTER);
    }

    #[test]
    fn without_datagrams_voice_stays_on_the_tunnel_and_never_probes() {
        let start = Instant::now();
        let mut paths = PathSelector::new(start, false);
        for second in 0..12 {
            let pings = paths.poll(start + PING_INTERVAL * second);
            assert_eq!(pings.iter().map(|(via, _)| *via).collect::<Vec<_>>(), [VoicePath::Tunnel]);
        }
        // Garbage and future stamps are ignored.
        paths.on_echo(VoicePath::Tunnel, b"short", start);
        paths.on_echo(VoicePath::Tunnel, &u64::MAX.to_be_bytes(), start);
        assert_eq!(paths.rtt(), None);
    }
}
