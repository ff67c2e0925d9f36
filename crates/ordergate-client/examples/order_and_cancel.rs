//! Send a limit order, see it accepted, cancel it, see it canceled.
//!
//! ```text
//! cargo run -p ordergate-client --example order_and_cancel -- 127.0.0.1:9000 1001 key.hex
//! ```
//!
//! The key needs the `trade` and `cancel` scopes (`ordergate keys new`
//! gives both by default).

use ordergate_client::wire::codes::Side;
use ordergate_client::{Order, Reply};

mod common;

/// Instrument ids are `1..=instruments` of the gateway's engine.
const INSTRUMENT: u32 = 1;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut conn = common::log_on()?;

    // A buy far below any seller, so it rests.
    let order = Order::limit(1, INSTRUMENT, Side::Buy, 90, 10);
    let seq = conn.send_new_order(&order)?;
    println!("  -> NewOrder cl_ord_id 1, buy 10 @ 90 (seq {seq})");
    let Reply::Accepted { order_id, .. } = common::next_reply(&mut conn)? else {
        return Err("the order was not accepted".into());
    };
    println!("order 1 rests as order_id {order_id}");

    // Cancel it by its cl_ord_id; the cancel has an id of its own.
    let seq = conn.send_cancel(2, 1, INSTRUMENT)?;
    println!("  -> CancelOrder cl_ord_id 2 of 1 (seq {seq})");
    match common::next_reply(&mut conn)? {
        Reply::Canceled { canceled_qty, .. } => println!("canceled {canceled_qty}"),
        other => return Err(format!("expected Canceled, got {other:?}").into()),
    }

    common::log_out(conn)
}
