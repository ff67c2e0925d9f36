use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use ordergate::auth::keys::{KeyEntry, KeyTable};
use ordergate::auth::secret::Secret;
use ordergate::client::{ClientSession, FrameReader};
use ordergate::gateway::{Gateway, GatewaySpec};
use ordergate::wire::codes::{Environment, Scopes};
use ordergate::wire::{self, GatewayFrame};

#[test]
fn logon_and_order_over_loopback() {
    let keys = KeyTable::from_entries(vec![KeyEntry {
        id: 1,
        secret: Secret::from_bytes([3; 32]),
        scopes: Scopes::TRADE.union(Scopes::CANCEL),
        environment: Environment::Production,
        msgs_per_sec: 1000,
        burst: 100,
    }])
    .unwrap();
    let gw = Gateway::start(GatewaySpec::default(), keys).expect("start");
    let mut s = TcpStream::connect(gw.local_addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut c = ClientSession::new(1, [3; 32]);
    let now = ordergate::reactor::worker::wall_ns();
    s.write_all(&c.logon(now, [9; 16], 1000, 1, 0)).unwrap();
    let mut r = FrameReader::new(4096);
    let mut got = Vec::new();
    while got.len() < 2 {
        let n = s.read(r.spare()).unwrap();
        assert!(n > 0, "closed");
        r.filled(n);
        while let Some(f) = r.next_frame() {
            let f = f.unwrap().to_vec();
            let t = match c.receive(&f).unwrap() {
                GatewayFrame::LogonAck(_) => "ack",
                GatewayFrame::OrderAccepted(_) => "accepted",
                other => panic!("{other:?}"),
            };
            got.push(t);
            if t == "ack" {
                let o = c.seal(
                    wire::NewOrder {
                        seq: 0,
                        cl_ord_id: 1,
                        price: 10,
                        qty: 1,
                        instrument_id: 1,
                        side: 1,
                        ord_type: 1,
                        tif: 0,
                    }
                    .to_bytes(),
                );
                s.write_all(&o).unwrap();
            }
        }
    }
    assert_eq!(got, vec!["ack", "accepted"]);
    let report = gw.shutdown();
    assert_eq!(report.reactors[0].counters.logons_accepted, 1);
    assert_eq!(report.reactors[0].counters.commands_out, 1);
}
