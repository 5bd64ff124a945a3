//! Which of a peer's ICE candidates the door lets its ICE agent use.
//!
//! Every remote candidate makes the agent send packets to an address the peer chose, and a TCP
//! candidate makes it open a connection: a peer that sends hundreds of them turns the door into
//! a scanner of its own LAN and runs it out of file descriptors. So, per call:
//!
//! - only UDP candidates with a literal IP address are used: TCP (active, passive or
//!   simultaneous-open) candidates are dropped (the door gathers and offers UDP only, and a
//!   browser always offers UDP beside TCP), and so are host names (the agent would resolve
//!   them: a DNS query of the peer's choosing), mDNS names (`….local`, only resolvable on the
//!   peer's own link) and link-local addresses (169.254.0.0/16, fe80::/10), which never reach
//!   across a router and would only probe the door's own segment;
//! - a candidate seen before in the call is dropped (peers resend them in renegotiations);
//! - at most [`MAX_REMOTE_CANDIDATES`] are used in the whole call; a browser offers a handful
//!   per interface and TURN server.
//!
//! The end of candidates (an empty `candidate`) always passes, once.

use core::net::IpAddr;
use std::collections::HashSet;

use super::Candidate;

/// The most remote candidates one call hands to its ICE agent.
pub const MAX_REMOTE_CANDIDATES: usize = 64;

/// Why a candidate is not used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dropped {
    /// Not of the form `candidate:<foundation> <component> <transport> <priority> <address>
    /// <port> typ <type> …`.
    Malformed,
    /// A TCP candidate.
    Tcp,
    /// An mDNS name (`….local`) or another host name.
    Name,
    LinkLocal,
    Duplicate,
    /// The call has [`MAX_REMOTE_CANDIDATES`] already.
    TooMany,
}

impl Dropped {
    pub fn as_str(self) -> &'static str {
        match self {
            Dropped::Malformed => "malformed",
            Dropped::Tcp => "TCP",
            Dropped::Name => "a host name instead of an address",
            Dropped::LinkLocal => "link-local",
            Dropped::Duplicate => "a duplicate",
            Dropped::TooMany => "over the call's limit",
        }
    }
}

/// Whether one candidate line could be used at all, whatever came before it.
pub fn judge(candidate: &str) -> Result<(), Dropped> {
    if candidate.is_empty() {
        return Ok(());
    }
    let line = candidate.strip_prefix("a=").unwrap_or(candidate);
    let Some(line) = line.strip_prefix("candidate:") else {
        return Err(Dropped::Malformed);
    };
    let fields: Vec<&str> = line.split_ascii_whitespace().collect();
    let [_foundation, _component, transport, _priority, address, port, typ, _kind, ..] = fields[..]
    else {
        return Err(Dropped::Malformed);
    };
    if typ != "typ" || port.parse::<u16>().is_err() {
        return Err(Dropped::Malformed);
    }
    if !transport.eq_ignore_ascii_case("udp") {
        return Err(Dropped::Tcp);
    }
    let Ok(ip) = address.parse::<IpAddr>() else {
        return Err(Dropped::Name);
    };
    let link_local = match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) == 0xfe80,
    };
    if link_local {
        return Err(Dropped::LinkLocal);
    }
    Ok(())
}

/// The remote candidates one call has used so far.
#[derive(Debug, Default)]
pub struct Admitted {
    seen: HashSet<String>,
    used: usize,
}

/// What [`Admitted::admit`] did with a batch.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Admission {
    pub used: Vec<Candidate>,
    /// How many were dropped, by the first reason met (in [`Dropped`] order of appearance).
    pub dropped: Vec<(Dropped, usize)>,
}

impl Admitted {
    /// The candidates of `batch` that the call's ICE agent may use, in order.
    pub fn admit(&mut self, batch: Vec<Candidate>) -> Admission {
        let mut out = Admission::default();
        let mut reject = |why: Dropped| match out.dropped.iter_mut().find(|(w, _)| *w == why) {
            Some((_, n)) => *n += 1,
            None => out.dropped.push((why, 1)),
        };
        let mut used = Vec::new();
        for c in batch {
            if let Err(why) = judge(&c.candidate) {
                reject(why);
                continue;
            }
            if self.seen.contains(&c.candidate) {
                reject(Dropped::Duplicate);
                continue;
            }
            // The end of candidates does not count against the limit.
            if !c.candidate.is_empty() {
                if self.used >= MAX_REMOTE_CANDIDATES {
                    reject(Dropped::TooMany);
                    continue;
                }
                self.used += 1;
            }
            self.seen.insert(c.candidate.clone());
            used.push(c);
        }
        out.used = used;
        out
    }
}
