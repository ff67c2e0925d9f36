//! The Wireshark dissector, `tools/wireshark/ogp.lua`.
//!
//! 1. Its code and template tables name every code and template the Rust
//!    code defines, with the same numbers and sizes (no tshark needed).
//! 2. A real session against the real gateway (io_uring reactor, engine),
//!    recorded byte for byte as it was written and read, is written as a
//!    pcap (Ethernet/IPv4/TCP, with a handshake and checksums; the test
//!    writes the file itself rather than capturing on `lo`, so it needs
//!    neither root nor a capture that starts in time), and
//!    `tshark -X lua_script:… -V` must name every message, decode the
//!    fields, reassemble a frame split across two segments, and flag the
//!    two frames of bad length the gateway refused. Skipped, saying so,
//!    when tshark is not installed (`.ci/run` installs it).

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;

use common::net::{SECRET, TRADER, WAIT, keys, spec};
use ordergate::client::{ClientSession, FrameReader};
use ordergate::clock::wall_ns;
use ordergate::gateway::Gateway;
use ordergate::wire::codes::{
    CancelReason, Environment, LogonRejectReason, OrdType, RejectReason, Side, TerminateReason, Tif,
};
use ordergate::wire::{self, GatewayFrame};

fn lua_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/wireshark/ogp.lua")
}

/// The `[N] = "NAME"` entries of the Lua table `local NAME = { … }`.
fn lua_table(lua: &str, table: &str) -> Vec<(u32, String)> {
    let start = lua
        .find(&format!("local {table} = {{"))
        .unwrap_or_else(|| panic!("no table {table} in ogp.lua"));
    let body = &lua[start..];
    let body = &body[..body.find("\n}").expect("the table ends")];
    body.lines()
        .filter_map(|l| {
            let l = l.trim().strip_prefix('[')?;
            let (n, rest) = l.split_once(']')?;
            let name = rest.trim().strip_prefix("= \"")?.split('"').next()?;
            Some((n.parse().ok()?, name.to_owned()))
        })
        .collect()
}

fn assert_table(lua: &str, table: &str, rust: Vec<(u32, &str)>) {
    let lua_entries = lua_table(lua, table);
    let wanted: Vec<(u32, String)> = rust.iter().map(|&(n, s)| (n, s.to_owned())).collect();
    assert_eq!(lua_entries, wanted, "ogp.lua's {table}");
}

#[test]
fn the_lua_tables_name_every_code_and_template() {
    let lua = std::fs::read_to_string(lua_path()).expect("tools/wireshark/ogp.lua");
    let codes = |all: Vec<(u32, &'static str)>| all;
    assert_table(
        &lua,
        "TERMINATE_REASON",
        codes(
            TerminateReason::ALL
                .iter()
                .map(|r| (u32::from(r.wire()), r.name()))
                .collect(),
        ),
    );
    assert_table(
        &lua,
        "LOGON_REJECT_REASON",
        LogonRejectReason::ALL
            .iter()
            .map(|r| (u32::from(r.wire()), r.name()))
            .collect(),
    );
    assert_table(
        &lua,
        "REJECT_REASON",
        RejectReason::ALL
            .iter()
            .map(|r| (u32::from(r.wire()), r.name()))
            .collect(),
    );
    assert_table(
        &lua,
        "CANCEL_REASON",
        CancelReason::ALL
            .iter()
            .map(|r| (u32::from(r.wire()), r.name()))
            .collect(),
    );
    assert_table(
        &lua,
        "ENVIRONMENT",
        Environment::ALL
            .iter()
            .map(|r| (u32::from(r.wire()), r.name()))
            .collect(),
    );
    assert_table(
        &lua,
        "SIDE",
        Side::ALL
            .iter()
            .map(|r| (u32::from(r.wire()), r.name()))
            .collect(),
    );
    assert_table(
        &lua,
        "ORD_TYPE",
        OrdType::ALL
            .iter()
            .map(|r| (u32::from(r.wire()), r.name()))
            .collect(),
    );
    assert_table(
        &lua,
        "TIF",
        Tif::ALL
            .iter()
            .map(|r| (u32::from(r.wire()), r.name()))
            .collect(),
    );
    // Every template: id, name, size, as the Rust layouts have them.
    for (id, name, size) in [
        (wire::Logon::TEMPLATE_ID, "Logon", wire::LOGON_SIZE),
        (
            wire::LogonAck::TEMPLATE_ID,
            "LogonAck",
            wire::LOGON_ACK_SIZE,
        ),
        (
            wire::LogonReject::TEMPLATE_ID,
            "LogonReject",
            wire::LOGON_REJECT_SIZE,
        ),
        (
            wire::Heartbeat::TEMPLATE_ID,
            "Heartbeat",
            wire::HEARTBEAT_SIZE,
        ),
        (wire::Logout::TEMPLATE_ID, "Logout", wire::LOGOUT_SIZE),
        (
            wire::Terminate::TEMPLATE_ID,
            "Terminate",
            wire::TERMINATE_SIZE,
        ),
        (
            wire::NewOrder::TEMPLATE_ID,
            "NewOrder",
            wire::NEW_ORDER_SIZE,
        ),
        (
            wire::CancelOrder::TEMPLATE_ID,
            "CancelOrder",
            wire::CANCEL_ORDER_SIZE,
        ),
        (
            wire::ReplaceOrder::TEMPLATE_ID,
            "ReplaceOrder",
            wire::REPLACE_ORDER_SIZE,
        ),
        (
            wire::MassCancel::TEMPLATE_ID,
            "MassCancel",
            wire::MASS_CANCEL_SIZE,
        ),
        (
            wire::OrderAccepted::TEMPLATE_ID,
            "OrderAccepted",
            wire::ORDER_ACCEPTED_SIZE,
        ),
        (
            wire::OrderRejected::TEMPLATE_ID,
            "OrderRejected",
            wire::ORDER_REJECTED_SIZE,
        ),
        (
            wire::OrderCanceled::TEMPLATE_ID,
            "OrderCanceled",
            wire::ORDER_CANCELED_SIZE,
        ),
        (
            wire::OrderReplaced::TEMPLATE_ID,
            "OrderReplaced",
            wire::ORDER_REPLACED_SIZE,
        ),
        (wire::Fill::TEMPLATE_ID, "Fill", wire::FILL_SIZE),
        (
            wire::MassCancelAck::TEMPLATE_ID,
            "MassCancelAck",
            wire::MASS_CANCEL_ACK_SIZE,
        ),
    ] {
        let entry = format!("[{id}] = {{ name = \"{name}\", size = {size},");
        assert!(lua.contains(&entry), "ogp.lua has no `{entry}`");
    }
}

// ---------------------------------------------------------------------------
// A recorded session

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Dir {
    ToGateway,
    ToClient,
}

/// One TCP connection as it happened: every chunk written and every chunk
/// read, in order. `split` marks chunks the pcap cuts into two segments.
struct Flow {
    client: SocketAddr,
    server: SocketAddr,
    chunks: Vec<(Dir, Vec<u8>)>,
    /// Whole frames in the chunks (what tshark must show, one each).
    frames: usize,
}

/// A raw connection to the gateway that records what crosses it.
struct Recorder {
    s: TcpStream,
    c: ClientSession,
    r: FrameReader,
    flow: Flow,
}

impl Recorder {
    fn connect(addr: SocketAddr, secret: [u8; 32]) -> Recorder {
        let s = TcpStream::connect(addr).unwrap();
        s.set_nodelay(true).unwrap();
        s.set_read_timeout(Some(WAIT)).unwrap();
        let client = s.local_addr().unwrap();
        Recorder {
            s,
            c: ClientSession::new(TRADER, secret),
            r: FrameReader::new(1 << 16),
            flow: Flow {
                client,
                server: addr,
                chunks: Vec::new(),
                frames: 0,
            },
        }
    }

    /// Writes frames as one chunk (one `write`).
    fn send(&mut self, frames: &[&[u8]]) {
        let bytes: Vec<u8> = frames.concat();
        self.s.write_all(&bytes).unwrap();
        self.flow.frames += frames.len();
        self.flow.chunks.push((Dir::ToGateway, bytes));
    }

    /// Writes raw bytes that are not whole frames (counted as one frame).
    fn send_raw(&mut self, bytes: &[u8]) {
        self.s.write_all(bytes).unwrap();
        self.flow.frames += 1;
        self.flow.chunks.push((Dir::ToGateway, bytes.to_vec()));
    }

    /// The next frame other than a Heartbeat, checked by the client; None
    /// at the end of the stream. Every read is recorded as it came.
    fn recv(&mut self) -> Option<Vec<u8>> {
        loop {
            if let Some(f) = self.r.next_frame() {
                let f = f.expect("well-formed").to_vec();
                self.flow.frames += 1;
                self.c.receive(&f).expect("the client accepts the frame");
                if u16::from_le_bytes([f[6], f[7]]) == wire::Heartbeat::TEMPLATE_ID {
                    continue;
                }
                return Some(f);
            }
            let spare = self.r.spare();
            match self.s.read(spare) {
                Ok(0) => return None,
                Ok(n) => {
                    let chunk = spare[..n].to_vec();
                    self.flow.chunks.push((Dir::ToClient, chunk));
                    self.r.filled(n);
                }
                Err(e) if e.kind() == ErrorKind::ConnectionReset => return None,
                Err(e) => panic!("read: {e}"),
            }
        }
    }

    fn recv_template(&mut self) -> GatewayFrameKind {
        let f = self.recv().expect("a frame");
        kind(&f)
    }

    fn seal<const N: usize>(&mut self, frame: [u8; N]) -> [u8; N] {
        self.c.seal(frame)
    }
}

/// What a gateway frame is, with the one field the test looks at.
#[derive(Debug, PartialEq, Eq)]
enum GatewayFrameKind {
    LogonAck,
    LogonReject(u16),
    Accepted(u64),
    Rejected(u64, u16),
    Canceled(u64, u16),
    Replaced(u64),
    Fill(u64),
    MassCancelAck(u64),
    Terminate(u16),
    Other(u16),
}

fn kind(f: &[u8]) -> GatewayFrameKind {
    match wire::decode_gateway(f).unwrap() {
        GatewayFrame::LogonAck(_) => GatewayFrameKind::LogonAck,
        GatewayFrame::LogonReject(r) => GatewayFrameKind::LogonReject(r.reason()),
        GatewayFrame::OrderAccepted(a) => GatewayFrameKind::Accepted(a.cl_ord_id()),
        GatewayFrame::OrderRejected(r) => GatewayFrameKind::Rejected(r.cl_ord_id(), r.reason()),
        GatewayFrame::OrderCanceled(c) => GatewayFrameKind::Canceled(c.cl_ord_id(), c.reason()),
        GatewayFrame::OrderReplaced(r) => GatewayFrameKind::Replaced(r.cl_ord_id()),
        GatewayFrame::Fill(x) => GatewayFrameKind::Fill(x.cl_ord_id()),
        GatewayFrame::MassCancelAck(m) => GatewayFrameKind::MassCancelAck(m.cl_ord_id()),
        GatewayFrame::Terminate(t) => GatewayFrameKind::Terminate(t.reason()),
        _ => GatewayFrameKind::Other(u16::from_le_bytes([f[6], f[7]])),
    }
}

fn nonce(n: u64) -> [u8; 16] {
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&n.to_le_bytes());
    out[8..].copy_from_slice(&u64::from(std::process::id()).to_le_bytes());
    out
}

fn new_order(cl_ord_id: u64, side: Side, qty: u32, price: i64) -> [u8; wire::NEW_ORDER_SIZE] {
    wire::NewOrder {
        seq: 0,
        cl_ord_id,
        price,
        qty,
        instrument_id: 1,
        side: side.wire(),
        ord_type: OrdType::Limit.wire(),
        tif: Tif::Day.wire(),
    }
    .to_bytes()
}

/// Every message of OGP v1 over one real session, plus a wrong secret and
/// two frames of bad length, each on its own connection.
fn record_sessions(addr: SocketAddr) -> Vec<Flow> {
    use GatewayFrameKind as K;
    let mut a = Recorder::connect(addr, SECRET);
    let logon =
        a.c.logon(wall_ns(), nonce(1), 1000, Environment::Production.wire(), 1);
    a.send(&[&logon]);
    assert_eq!(a.recv_template(), K::LogonAck);

    // A buy that rests, then a sell that trades against it.
    let buy = a.seal(new_order(1, Side::Buy, 100, 10_000));
    a.send(&[&buy]);
    assert_eq!(a.recv_template(), K::Accepted(1));
    let sell = a.seal(new_order(2, Side::Sell, 40, 10_000));
    a.send(&[&sell]);
    let mut seen = Vec::new();
    for _ in 0..3 {
        seen.push(a.recv_template());
    }
    assert!(seen.contains(&K::Accepted(2)), "{seen:?}");
    assert!(
        seen.contains(&K::Fill(1)) && seen.contains(&K::Fill(2)),
        "{seen:?}"
    );

    // A replace and a cancel in one write; a cancel of no order.
    let replace = a.seal(
        wire::ReplaceOrder {
            seq: 0,
            cl_ord_id: 3,
            orig_cl_ord_id: 1,
            price: 9_990,
            qty: 50,
            instrument_id: 1,
        }
        .to_bytes(),
    );
    let cancel = a.seal(
        wire::CancelOrder {
            seq: 0,
            cl_ord_id: 4,
            orig_cl_ord_id: 3,
            instrument_id: 1,
        }
        .to_bytes(),
    );
    a.send(&[&replace, &cancel]);
    assert_eq!(a.recv_template(), K::Replaced(3));
    assert_eq!(a.recv_template(), K::Canceled(4, CancelReason::USER.wire()));
    let stray = a.seal(
        wire::CancelOrder {
            seq: 0,
            cl_ord_id: 5,
            orig_cl_ord_id: 999,
            instrument_id: 1,
        }
        .to_bytes(),
    );
    a.send(&[&stray]);
    assert_eq!(
        a.recv_template(),
        K::Rejected(5, RejectReason::UNKNOWN_ORDER.wire())
    );

    // One more resting order, then a mass cancel.
    let rest = a.seal(new_order(6, Side::Sell, 7, 10_050));
    a.send(&[&rest]);
    assert_eq!(a.recv_template(), K::Accepted(6));
    let mass = a.seal(
        wire::MassCancel {
            seq: 0,
            cl_ord_id: 7,
            instrument_id: 0,
            side: 0,
        }
        .to_bytes(),
    );
    a.send(&[&mass]);
    assert_eq!(
        a.recv_template(),
        K::Canceled(6, CancelReason::MASS_CANCEL.wire())
    );
    assert_eq!(a.recv_template(), K::MassCancelAck(7));

    let heartbeat = a.seal(wire::Heartbeat { seq: 0 }.to_bytes());
    let logout = a.seal(wire::Logout { seq: 0, reason: 0 }.to_bytes());
    a.send(&[&heartbeat]);
    a.send(&[&logout]);
    assert_eq!(
        a.recv_template(),
        K::Terminate(TerminateReason::LOGOUT.wire())
    );
    assert!(a.recv().is_none(), "closed after the Terminate");

    // A wrong secret: LogonReject AUTH_FAILED.
    let mut b = Recorder::connect(addr, [0x99; 32]);
    let logon =
        b.c.logon(wall_ns(), nonce(2), 1000, Environment::Production.wire(), 0);
    b.send(&[&logon]);
    assert_eq!(
        b.recv_template(),
        K::LogonReject(LogonRejectReason::AUTH_FAILED.wire())
    );

    // A length prefix no frame has (200): refused MALFORMED at once.
    let mut c = Recorder::connect(addr, SECRET);
    let mut bad = new_order(8, Side::Buy, 1, 1);
    bad[..2].copy_from_slice(&200u16.to_le_bytes());
    c.send_raw(&bad);
    assert_eq!(
        c.recv_template(),
        K::LogonReject(LogonRejectReason::MALFORMED.wire())
    );

    // A Heartbeat header claiming 40 bytes (a Heartbeat is 36).
    let mut d = Recorder::connect(addr, SECRET);
    let mut short = [0u8; 40];
    short[..36].copy_from_slice(&wire::Heartbeat { seq: 1 }.to_bytes());
    short[..2].copy_from_slice(&40u16.to_le_bytes());
    short[4..6].copy_from_slice(&28u16.to_le_bytes());
    d.send_raw(&short);
    assert_eq!(
        d.recv_template(),
        K::LogonReject(LogonRejectReason::MALFORMED.wire())
    );
    vec![a.flow, b.flow, c.flow, d.flow]
}

// ---------------------------------------------------------------------------
// pcap

fn checksum(chunks: &[&[u8]]) -> u16 {
    let mut sum: u32 = 0;
    let mut odd: Option<u8> = None;
    for chunk in chunks {
        for &b in *chunk {
            match odd.take() {
                Some(hi) => sum += u32::from(u16::from_be_bytes([hi, b])),
                None => odd = Some(b),
            }
        }
    }
    if let Some(hi) = odd {
        sum += u32::from(u16::from_be_bytes([hi, 0]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

const SYN: u8 = 0x02;
const ACK: u8 = 0x10;
const PSH: u8 = 0x08;
const FIN: u8 = 0x01;

/// A pcap (LINKTYPE_ETHERNET) being written.
struct Pcap {
    out: Vec<u8>,
    t_us: u64,
    ip_id: u16,
}

impl Pcap {
    fn new() -> Pcap {
        let mut out = Vec::new();
        out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
        out.extend_from_slice(&2u16.to_le_bytes());
        out.extend_from_slice(&4u16.to_le_bytes());
        out.extend_from_slice(&0i32.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&65_535u32.to_le_bytes());
        out.extend_from_slice(&1u32.to_le_bytes());
        Pcap {
            out,
            t_us: 1_764_000_000_000_000,
            ip_id: 1,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn segment(
        &mut self,
        from: SocketAddr,
        to: SocketAddr,
        seq: u32,
        ack: u32,
        flags: u8,
        payload: &[u8],
    ) {
        let (SocketAddr::V4(from), SocketAddr::V4(to)) = (from, to) else {
            panic!("IPv4 loopback only")
        };
        let mut tcp = Vec::with_capacity(20 + payload.len());
        tcp.extend_from_slice(&from.port().to_be_bytes());
        tcp.extend_from_slice(&to.port().to_be_bytes());
        tcp.extend_from_slice(&seq.to_be_bytes());
        tcp.extend_from_slice(&ack.to_be_bytes());
        tcp.push(5 << 4);
        tcp.push(flags);
        tcp.extend_from_slice(&65_535u16.to_be_bytes());
        tcp.extend_from_slice(&[0, 0, 0, 0]);
        tcp.extend_from_slice(payload);
        let tcp_len = (tcp.len() as u16).to_be_bytes();
        let pseudo = [
            from.ip().octets().as_slice(),
            to.ip().octets().as_slice(),
            &[0, 6],
            &tcp_len,
        ]
        .concat();
        let sum = checksum(&[&pseudo, &tcp]);
        tcp[16..18].copy_from_slice(&sum.to_be_bytes());

        let mut ip = Vec::with_capacity(20);
        ip.push(0x45);
        ip.push(0);
        ip.extend_from_slice(&((20 + tcp.len()) as u16).to_be_bytes());
        ip.extend_from_slice(&self.ip_id.to_be_bytes());
        self.ip_id = self.ip_id.wrapping_add(1);
        ip.extend_from_slice(&0x4000u16.to_be_bytes());
        ip.push(64);
        ip.push(6);
        ip.extend_from_slice(&[0, 0]);
        ip.extend_from_slice(&from.ip().octets());
        ip.extend_from_slice(&to.ip().octets());
        let sum = checksum(&[&ip]);
        ip[10..12].copy_from_slice(&sum.to_be_bytes());

        let mut frame = vec![0u8; 12];
        frame.extend_from_slice(&0x0800u16.to_be_bytes());
        frame.extend_from_slice(&ip);
        frame.extend_from_slice(&tcp);

        self.t_us += 100;
        self.out
            .extend_from_slice(&((self.t_us / 1_000_000) as u32).to_le_bytes());
        self.out
            .extend_from_slice(&((self.t_us % 1_000_000) as u32).to_le_bytes());
        self.out
            .extend_from_slice(&(frame.len() as u32).to_le_bytes());
        self.out
            .extend_from_slice(&(frame.len() as u32).to_le_bytes());
        self.out.extend_from_slice(&frame);
    }

    /// A flow: handshake, every chunk as a segment (chunk `split` cut in
    /// two after `at` bytes), FIN both ways.
    fn flow(&mut self, flow: &Flow, split: Option<(usize, usize)>) {
        let (c, s) = (flow.client, flow.server);
        let (mut cseq, mut sseq) = (1_000u32, 5_000u32);
        self.segment(c, s, cseq, 0, SYN, &[]);
        self.segment(s, c, sseq, cseq + 1, SYN | ACK, &[]);
        cseq += 1;
        sseq += 1;
        self.segment(c, s, cseq, sseq, ACK, &[]);
        for (i, (dir, bytes)) in flow.chunks.iter().enumerate() {
            let pieces: Vec<&[u8]> = match split {
                Some((chunk, at)) if chunk == i => vec![&bytes[..at], &bytes[at..]],
                _ => vec![bytes],
            };
            for piece in pieces {
                match dir {
                    Dir::ToGateway => {
                        self.segment(c, s, cseq, sseq, PSH | ACK, piece);
                        cseq += piece.len() as u32;
                    }
                    Dir::ToClient => {
                        self.segment(s, c, sseq, cseq, PSH | ACK, piece);
                        sseq += piece.len() as u32;
                    }
                }
            }
        }
        self.segment(s, c, sseq, cseq, FIN | ACK, &[]);
        self.segment(c, s, cseq, sseq + 1, FIN | ACK, &[]);
        self.segment(s, c, sseq + 1, cseq + 1, ACK, &[]);
    }
}

fn tshark_available() -> bool {
    Command::new("tshark").arg("--version").output().is_ok()
}

#[test]
fn tshark_names_every_message_of_a_recorded_session() {
    let gw = Gateway::start(spec(), keys()).expect("the gateway starts");
    let flows = record_sessions(gw.local_addr());
    gw.shutdown();

    let dir = std::env::temp_dir().join(format!("ordergate-dissector-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let pcap_path = dir.join("session.pcap");
    let mut pcap = Pcap::new();
    // The first NewOrder (chunk 2 of the session: Logon, LogonAck, NewOrder)
    // goes in two segments, cut inside its cl_ord_id; the LogonReject of
    // the wrong secret too, cut inside its header.
    assert_eq!(flows[0].chunks[2].0, Dir::ToGateway);
    pcap.flow(&flows[0], Some((2, 23)));
    pcap.flow(&flows[1], Some((1, 5)));
    pcap.flow(&flows[2], None);
    pcap.flow(&flows[3], None);
    std::fs::write(&pcap_path, &pcap.out).unwrap();
    let frames: usize = flows.iter().map(|f| f.frames).sum();

    if !tshark_available() {
        eprintln!(
            "dissector: tshark is not installed: the pcap check is skipped \
             (apt-get install tshark; .ci/run installs it). The pcap was {}",
            pcap_path.display()
        );
        return;
    }
    let lua = lua_path();
    let out = Command::new("tshark")
        .arg("-r")
        .arg(&pcap_path)
        .arg("-X")
        .arg(format!("lua_script:{}", lua.display()))
        .args(["-o", "tcp.try_heuristic_first:TRUE", "-V"])
        .output()
        .expect("run tshark");
    let text = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "tshark failed:\n{err}\n{text}");
    assert!(
        !err.contains("Lua: Error") && !err.to_lowercase().contains("error during loading"),
        "the script did not load cleanly:\n{err}"
    );
    std::fs::write(dir.join("tshark.txt"), text.as_bytes()).unwrap();

    // One dissected frame per frame that crossed the wire, no more.
    let shown = text.matches("OGP v1, ").count();
    assert_eq!(
        shown,
        frames,
        "frames shown by the dissector (the output is in {})",
        dir.join("tshark.txt").display()
    );
    for name in [
        "Logon (client → gateway)",
        "LogonAck (gateway → client)",
        "LogonReject (gateway → client)",
        "Heartbeat (either way)",
        "Logout (client → gateway)",
        "Terminate (gateway → client)",
        "NewOrder (client → gateway)",
        "CancelOrder (client → gateway)",
        "ReplaceOrder (client → gateway)",
        "MassCancel (client → gateway)",
        "OrderAccepted (gateway → client)",
        "OrderRejected (gateway → client)",
        "OrderCanceled (gateway → client)",
        "OrderReplaced (gateway → client)",
        "Fill (gateway → client)",
        "MassCancelAck (gateway → client)",
    ] {
        assert!(
            text.contains(&format!("OGP v1, {name}")),
            "no {name} in {}",
            dir.join("tshark.txt").display()
        );
    }
    for field in [
        "template_id: NewOrder (10)",
        "encoding_type: 0xcafe",
        "schema_id: 0x4f47",
        "key_id: 1",
        "cl_ord_id: 1",
        "orig_cl_ord_id: 999",
        "price: 10000",
        "price: 9990",
        "qty: 100",
        "side: Buy (1)",
        "side: Sell (2)",
        "side: Both (0)",
        "ord_type: Limit (1)",
        "tif: Day (0)",
        "environment: Production (1)",
        "cancel_on_disconnect: True",
        "TRADE: True",
        "fill_qty: 40",
        "leaves_qty: 60",
        "canceled_count: 1",
        "reason: UNKNOWN_ORDER (7)",
        "reason: USER (1)",
        "reason: MASS_CANCEL (2)",
        "reason: LOGOUT (1)",
        "reason: AUTH_FAILED (1)",
        "reason: MALFORMED (9)",
        "mac: ",
        "signature: ",
        "request_time_ns: ",
    ] {
        assert!(
            text.contains(field),
            "no `{field}` in {}",
            dir.join("tshark.txt").display()
        );
    }
    // The NewOrder cut in two was put back together.
    assert!(
        text.contains("[2 Reassembled TCP Segments (64 bytes)"),
        "no reassembled NewOrder"
    );
    // The two frames of bad length are flagged, naming what is wrong.
    for flag in [
        "bad length: message_size 200 outside 32..=84",
        "bad length: message_size 40, Heartbeat is 36 bytes",
    ] {
        assert!(
            text.contains(&format!("[{flag}]")) || text.contains(flag),
            "no `{flag}` in {}",
            dir.join("tshark.txt").display()
        );
    }
    assert!(
        text.contains("Expert Info (Error/Malformed)"),
        "the bad lengths are expert errors"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn codes_no_table_names_are_shown_as_numbers() {
    if !tshark_available() {
        eprintln!("dissector: tshark is not installed: skipped (apt-get install tshark)");
        return;
    }
    // A Terminate with reason 42 and an OrderRejected with reason 77: not
    // from a gateway (none sends them), written here to see them named.
    let mut terminate = wire::Terminate { seq: 9, reason: 42 }.to_bytes();
    terminate[28..].fill(0xAA);
    let mut rejected = wire::OrderRejected {
        seq: 10,
        cl_ord_id: 5,
        transact_time_ns: 1,
        retry_after_ns: 0,
        reason: 77,
    }
    .to_bytes();
    rejected[48..].fill(0xBB);
    let flow = Flow {
        client: "127.0.0.1:40001".parse().unwrap(),
        server: "127.0.0.1:40002".parse().unwrap(),
        chunks: vec![(Dir::ToClient, [&rejected[..], &terminate[..]].concat())],
        frames: 2,
    };
    let dir = std::env::temp_dir().join(format!("ordergate-dissector-u-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("unknown.pcap");
    let mut pcap = Pcap::new();
    pcap.flow(&flow, None);
    std::fs::write(&path, &pcap.out).unwrap();
    let out = Command::new("tshark")
        .arg("-r")
        .arg(&path)
        .arg("-X")
        .arg(format!("lua_script:{}", lua_path().display()))
        .arg("-V")
        .output()
        .expect("run tshark");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("reason: Unknown (42)"), "{text}");
    assert!(text.contains("reason: Unknown (77)"), "{text}");
    assert!(text.contains("Terminate 42"), "{text}");
    assert!(text.contains("OrderRejected cl_ord_id=5 77"), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}
