//! The OGP v1 test vectors (a copy of shared/protocol/vectors.json kept in
//! tests/data so the suite needs nothing outside the project): every frame
//! encodes to exactly its bytes and decodes to its fields, every tag and the
//! logon signature verify, the session keys derive exactly, and every
//! rejected frame is refused for its stated reason.

use ordergate::auth::session_keys::{SessionKeys, derive_raw, logon_signature, verify_logon};
use ordergate::auth::tag::TagKey;
use ordergate::wire::*;
use serde_json::Value;

fn vectors() -> Value {
    let text = include_str!("data/vectors.json");
    serde_json::from_str(text).expect("vectors.json parses")
}

fn hex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2));
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn arr<const N: usize>(s: &str) -> [u8; N] {
    hex(s).try_into().expect("length")
}

fn u(v: &Value, k: &str) -> u64 {
    v[k].as_u64().unwrap_or_else(|| panic!("field {k}"))
}

struct Ctx {
    secret: [u8; 32],
    keys: SessionKeys,
}

fn ctx(v: &Value) -> Ctx {
    let secret = arr::<32>(v["api_secret"].as_str().unwrap());
    let keys = SessionKeys::derive(
        &secret,
        &arr(v["client_nonce"].as_str().unwrap()),
        &arr(v["server_nonce"].as_str().unwrap()),
        v["session_id"].as_u64().unwrap(),
    );
    Ctx { secret, keys }
}

#[test]
fn session_keys_derive_exactly() {
    let v = vectors();
    let secret = arr::<32>(v["api_secret"].as_str().unwrap());
    let raw = derive_raw(
        &secret,
        &arr(v["client_nonce"].as_str().unwrap()),
        &arr(v["server_nonce"].as_str().unwrap()),
        v["session_id"].as_u64().unwrap(),
    );
    assert_eq!(raw.client.to_vec(), hex(v["client_key"].as_str().unwrap()));
    assert_eq!(
        raw.gateway.to_vec(),
        hex(v["gateway_key"].as_str().unwrap())
    );
}

/// Encodes the frame described by `f` (fields, sender) with our encoder and
/// tags it with the right key; returns the bytes.
fn encode(c: &Ctx, f: &Value) -> Vec<u8> {
    let x = &f["fields"];
    let gw = f["sender"].as_str().unwrap().starts_with("gateway");
    let key: &TagKey = if gw { &c.keys.gateway } else { &c.keys.client };
    macro_rules! tagged {
        ($m:expr) => {{
            let mut b = $m.to_bytes();
            key.seal(&mut b);
            b.to_vec()
        }};
    }
    match f["message"].as_str().unwrap() {
        "Logon" => {
            let mut m = Logon {
                key_id: u(x, "key_id"),
                request_time_ns: u(x, "request_time_ns"),
                client_nonce: arr(x["client_nonce"].as_str().unwrap()),
                keepalive_ms: u(x, "keepalive_ms") as u16,
                environment: u(x, "environment") as u8,
                flags: u(x, "flags") as u8,
                signature: [0; 32],
            };
            m.signature = logon_signature(&c.secret, &m.to_bytes());
            m.to_bytes().to_vec()
        }
        "LogonAck" => tagged!(LogonAck {
            session_id: u(x, "session_id"),
            server_time_ns: u(x, "server_time_ns"),
            server_nonce: arr(x["server_nonce"].as_str().unwrap()),
            keepalive_ms: u(x, "keepalive_ms") as u16,
            scopes: u(x, "scopes") as u8,
            environment: u(x, "environment") as u8,
            seq: u(x, "seq"),
        }),
        "LogonReject" => LogonReject {
            reason: u(x, "reason") as u16,
            server_time_ns: u(x, "server_time_ns"),
        }
        .to_bytes()
        .to_vec(),
        "Heartbeat" => tagged!(Heartbeat { seq: u(x, "seq") }),
        "Logout" => tagged!(Logout {
            seq: u(x, "seq"),
            reason: u(x, "reason") as u16
        }),
        "Terminate" => tagged!(Terminate {
            seq: u(x, "seq"),
            reason: u(x, "reason") as u16
        }),
        "NewOrder" => tagged!(NewOrder {
            seq: u(x, "seq"),
            cl_ord_id: u(x, "cl_ord_id"),
            price: x["price"].as_i64().unwrap(),
            qty: u(x, "qty") as u32,
            instrument_id: u(x, "instrument_id") as u32,
            side: u(x, "side") as u8,
            ord_type: u(x, "ord_type") as u8,
            tif: u(x, "tif") as u8,
        }),
        "CancelOrder" => tagged!(CancelOrder {
            seq: u(x, "seq"),
            cl_ord_id: u(x, "cl_ord_id"),
            orig_cl_ord_id: u(x, "orig_cl_ord_id"),
            instrument_id: u(x, "instrument_id") as u32,
        }),
        "ReplaceOrder" => tagged!(ReplaceOrder {
            seq: u(x, "seq"),
            cl_ord_id: u(x, "cl_ord_id"),
            orig_cl_ord_id: u(x, "orig_cl_ord_id"),
            price: x["price"].as_i64().unwrap(),
            qty: u(x, "qty") as u32,
            instrument_id: u(x, "instrument_id") as u32,
        }),
        "MassCancel" => tagged!(MassCancel {
            seq: u(x, "seq"),
            cl_ord_id: u(x, "cl_ord_id"),
            instrument_id: u(x, "instrument_id") as u32,
            side: u(x, "side") as u8,
        }),
        "OrderAccepted" => tagged!(OrderAccepted {
            seq: u(x, "seq"),
            cl_ord_id: u(x, "cl_ord_id"),
            order_id: u(x, "order_id"),
            transact_time_ns: u(x, "transact_time_ns"),
        }),
        "OrderRejected" => tagged!(OrderRejected {
            seq: u(x, "seq"),
            cl_ord_id: u(x, "cl_ord_id"),
            transact_time_ns: u(x, "transact_time_ns"),
            retry_after_ns: u(x, "retry_after_ns"),
            reason: u(x, "reason") as u16,
        }),
        "OrderCanceled" => tagged!(OrderCanceled {
            seq: u(x, "seq"),
            cl_ord_id: u(x, "cl_ord_id"),
            order_id: u(x, "order_id"),
            transact_time_ns: u(x, "transact_time_ns"),
            canceled_qty: u(x, "canceled_qty") as u32,
            reason: u(x, "reason") as u16,
        }),
        "OrderReplaced" => tagged!(OrderReplaced {
            seq: u(x, "seq"),
            cl_ord_id: u(x, "cl_ord_id"),
            order_id: u(x, "order_id"),
            transact_time_ns: u(x, "transact_time_ns"),
            leaves_qty: u(x, "leaves_qty") as u32,
        }),
        "Fill" => tagged!(Fill {
            seq: u(x, "seq"),
            cl_ord_id: u(x, "cl_ord_id"),
            order_id: u(x, "order_id"),
            exec_id: u(x, "exec_id"),
            transact_time_ns: u(x, "transact_time_ns"),
            fill_price: x["fill_price"].as_i64().unwrap(),
            fill_qty: u(x, "fill_qty") as u32,
            leaves_qty: u(x, "leaves_qty") as u32,
        }),
        "MassCancelAck" => tagged!(MassCancelAck {
            seq: u(x, "seq"),
            cl_ord_id: u(x, "cl_ord_id"),
            transact_time_ns: u(x, "transact_time_ns"),
            canceled_count: u(x, "canceled_count") as u32,
        }),
        other => panic!("unknown message {other}"),
    }
}

#[test]
fn every_frame_encodes_to_exactly_its_bytes() {
    let v = vectors();
    let c = ctx(&v);
    let frames = v["frames"].as_array().unwrap();
    assert_eq!(frames.len(), 18);
    for f in frames {
        let want = hex(f["hex"].as_str().unwrap());
        assert_eq!(encode(&c, f), want, "{} from {}", f["message"], f["sender"]);
    }
}

/// Decodes `bytes` and returns its fields as JSON, for comparison with the
/// vector's `fields`.
fn decode_fields(bytes: &[u8], from_gateway: bool) -> (String, Value) {
    use serde_json::json;
    let nonce = |n: [u8; 16]| n.iter().map(|b| format!("{b:02x}")).collect::<String>();
    if from_gateway {
        match decode_gateway(bytes).expect("gateway frame decodes") {
            GatewayFrame::LogonAck(m) => (
                "LogonAck".into(),
                json!({"session_id": m.session_id(), "server_time_ns": m.server_time_ns(), "server_nonce": nonce(m.server_nonce()), "keepalive_ms": m.keepalive_ms(), "scopes": m.scopes(), "environment": m.environment(), "seq": m.seq()}),
            ),
            GatewayFrame::LogonReject(m) => (
                "LogonReject".into(),
                json!({"reason": m.reason(), "server_time_ns": m.server_time_ns()}),
            ),
            GatewayFrame::Heartbeat(m) => ("Heartbeat".into(), json!({"seq": m.seq()})),
            GatewayFrame::Terminate(m) => (
                "Terminate".into(),
                json!({"seq": m.seq(), "reason": m.reason()}),
            ),
            GatewayFrame::OrderAccepted(m) => (
                "OrderAccepted".into(),
                json!({"seq": m.seq(), "cl_ord_id": m.cl_ord_id(), "order_id": m.order_id(), "transact_time_ns": m.transact_time_ns()}),
            ),
            GatewayFrame::OrderRejected(m) => (
                "OrderRejected".into(),
                json!({"seq": m.seq(), "cl_ord_id": m.cl_ord_id(), "transact_time_ns": m.transact_time_ns(), "retry_after_ns": m.retry_after_ns(), "reason": m.reason()}),
            ),
            GatewayFrame::OrderCanceled(m) => (
                "OrderCanceled".into(),
                json!({"seq": m.seq(), "cl_ord_id": m.cl_ord_id(), "order_id": m.order_id(), "transact_time_ns": m.transact_time_ns(), "canceled_qty": m.canceled_qty(), "reason": m.reason()}),
            ),
            GatewayFrame::OrderReplaced(m) => (
                "OrderReplaced".into(),
                json!({"seq": m.seq(), "cl_ord_id": m.cl_ord_id(), "order_id": m.order_id(), "transact_time_ns": m.transact_time_ns(), "leaves_qty": m.leaves_qty()}),
            ),
            GatewayFrame::Fill(m) => (
                "Fill".into(),
                json!({"seq": m.seq(), "cl_ord_id": m.cl_ord_id(), "order_id": m.order_id(), "exec_id": m.exec_id(), "transact_time_ns": m.transact_time_ns(), "fill_price": m.fill_price(), "fill_qty": m.fill_qty(), "leaves_qty": m.leaves_qty()}),
            ),
            GatewayFrame::MassCancelAck(m) => (
                "MassCancelAck".into(),
                json!({"seq": m.seq(), "cl_ord_id": m.cl_ord_id(), "transact_time_ns": m.transact_time_ns(), "canceled_count": m.canceled_count()}),
            ),
        }
    } else {
        match decode_client(bytes).expect("client frame decodes") {
            ClientFrame::Logon(m) => (
                "Logon".into(),
                json!({"key_id": m.key_id(), "request_time_ns": m.request_time_ns(), "client_nonce": nonce(m.client_nonce()), "keepalive_ms": m.keepalive_ms(), "environment": m.environment(), "flags": m.flags()}),
            ),
            ClientFrame::Heartbeat(m) => ("Heartbeat".into(), json!({"seq": m.seq()})),
            ClientFrame::Logout(m) => (
                "Logout".into(),
                json!({"seq": m.seq(), "reason": m.reason()}),
            ),
            ClientFrame::NewOrder(m) => (
                "NewOrder".into(),
                json!({"seq": m.seq(), "cl_ord_id": m.cl_ord_id(), "price": m.price(), "qty": m.qty(), "instrument_id": m.instrument_id(), "side": m.side(), "ord_type": m.ord_type(), "tif": m.tif()}),
            ),
            ClientFrame::CancelOrder(m) => (
                "CancelOrder".into(),
                json!({"seq": m.seq(), "cl_ord_id": m.cl_ord_id(), "orig_cl_ord_id": m.orig_cl_ord_id(), "instrument_id": m.instrument_id()}),
            ),
            ClientFrame::ReplaceOrder(m) => (
                "ReplaceOrder".into(),
                json!({"seq": m.seq(), "cl_ord_id": m.cl_ord_id(), "orig_cl_ord_id": m.orig_cl_ord_id(), "price": m.price(), "qty": m.qty(), "instrument_id": m.instrument_id()}),
            ),
            ClientFrame::MassCancel(m) => (
                "MassCancel".into(),
                json!({"seq": m.seq(), "cl_ord_id": m.cl_ord_id(), "instrument_id": m.instrument_id(), "side": m.side()}),
            ),
        }
    }
}

#[test]
fn every_frame_decodes_to_its_fields_and_its_tag_verifies() {
    let v = vectors();
    let c = ctx(&v);
    for f in v["frames"].as_array().unwrap() {
        let bytes = hex(f["hex"].as_str().unwrap());
        let sender = f["sender"].as_str().unwrap();
        let gw = sender.starts_with("gateway");
        let (name, fields) = decode_fields(&bytes, gw);
        assert_eq!(name, f["message"].as_str().unwrap());
        assert_eq!(fields, f["fields"], "{name} fields");
        match name.as_str() {
            "Logon" => assert!(verify_logon(
                &c.secret,
                bytes.as_slice().try_into().unwrap()
            )),
            "LogonReject" => {}
            _ => {
                let key = if gw { &c.keys.gateway } else { &c.keys.client };
                assert!(key.verify(&bytes), "{name} tag verifies");
                // The other direction's key must not verify it: no reflection.
                let other = if gw { &c.keys.client } else { &c.keys.gateway };
                assert!(
                    !other.verify(&bytes),
                    "{name} verifies under the wrong direction"
                );
            }
        }
    }
}

#[test]
fn every_rejected_frame_is_refused_for_its_stated_reason() {
    let v = vectors();
    let c = ctx(&v);
    let rejected = v["rejected_frames"].as_array().unwrap();
    assert_eq!(rejected.len(), 8);
    for r in rejected {
        let why = r["why"].as_str().unwrap();
        let bytes = hex(r["hex"].as_str().unwrap());
        // The reassembler sees the length prefix first.
        let size = frame_size(&bytes);
        let decoded = size.and_then(|_| decode_client(&bytes).map(|_| ()));
        let expected: Result<(), DecodeError> = match why {
            "price byte flipped after sealing: tag must not verify"
            | "tag byte flipped: tag must not verify" => {
                assert_eq!(decoded, Ok(()), "{why}: still well-formed");
                assert!(!c.keys.client.verify(&bytes), "{why}");
                continue;
            }
            "wrong encoding_type" => Err(DecodeError::EncodingType { found: 0xbeef }),
            "block_length disagrees with template 10" => Err(DecodeError::BlockLength {
                template_id: 10,
                found: 51,
                expected: 52,
            }),
            "unknown template_id" => Err(DecodeError::UnknownTemplate { template_id: 99 }),
            "wrong schema_id" => Err(DecodeError::SchemaId { found: 1 }),
            "message_size below header size" => Err(DecodeError::SizeBelowHeader { size: 11 }),
            "message_size above any template's size" => {
                Err(DecodeError::SizeAboveMax { size: 0x1001 })
            }
            other => panic!("a rejected frame with a reason this test does not know: {other}"),
        };
        assert_eq!(decoded, expected, "{why}");
    }
}

/// The reject codes added within v1 (PRICE_OUT_OF_BAND 11,
/// RISK_MAX_OPEN_NOTIONAL 12, ENGINE_UNAVAILABLE 13) travel in the OrderRejected frame of the
/// vectors unchanged: the same size and header; only `retry_after_ns`
/// (frame offsets 36..44, 0 for every reason but THROTTLED), `reason`
/// (44..46) and the tag differ. Prints the frames for docs/PROTOCOL.md.
#[test]
fn the_reject_codes_added_to_v1_change_only_the_reason_bytes_and_the_tag() {
    use ordergate::wire::codes::RejectReason;
    let v = vectors();
    let c = ctx(&v);
    let vector = v["frames"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["message"] == "OrderRejected")
        .unwrap();
    let original = hex(vector["hex"].as_str().unwrap());
    for code in [
        RejectReason::PRICE_OUT_OF_BAND,
        RejectReason::RISK_MAX_OPEN_NOTIONAL,
        RejectReason::ENGINE_UNAVAILABLE,
    ] {
        let mut frame = vector.clone();
        frame["fields"]["reason"] = code.wire().into();
        frame["fields"]["retry_after_ns"] = 0.into();
        let bytes = encode(&c, &frame);
        assert_eq!(bytes.len(), original.len());
        let differ: Vec<usize> = (0..bytes.len())
            .filter(|&i| bytes[i] != original[i])
            .collect();
        let tag = bytes.len() - 16;
        assert!(
            differ.iter().all(|&i| (36..46).contains(&i) || i >= tag),
            "{code:?}: bytes {differ:?} changed"
        );
        assert_eq!(&bytes[44..46], &code.wire().to_le_bytes());
        let (name, fields) = decode_fields(&bytes, true);
        assert_eq!(name, "OrderRejected");
        assert_eq!(fields, frame["fields"]);
        assert!(c.keys.gateway.verify(&bytes));
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        eprintln!("{}: {hex}", code.name());
    }
}
