//! Rest a sell, cross it with a buy, and read the fills both sides get.
//!
//! ```text
//! cargo run -p ordergate-client --example fills -- 127.0.0.1:9000 1001 key.hex
//! ```
//!
//! Both orders come from one session (the engine has no self-trade
//! prevention), so this session reads the Fill of each side: the buy's
//! (the aggressor) and the resting sell's.

use ordergate_client::wire::codes::Side;
use ordergate_client::{Order, Reply};

mod common;

const INSTRUMENT: u32 = 1;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut conn = common::log_on()?;

    conn.send_new_order(&Order::limit(1, INSTRUMENT, Side::Sell, 100, 10))?;
    println!("  -> NewOrder cl_ord_id 1, sell 10 @ 100");
    common::next_reply(&mut conn)?; // Accepted: it rests

    conn.send_new_order(&Order::limit(2, INSTRUMENT, Side::Buy, 100, 4))?;
    println!("  -> NewOrder cl_ord_id 2, buy 4 @ 100");
    // The buy's Accepted and a Fill for each side, in the engine's order.
    let mut filled = 0;
    while filled < 2 {
        if let Reply::Fill {
            cl_ord_id,
            price,
            qty,
            leaves_qty,
            ..
        } = common::next_reply(&mut conn)?
        {
            println!("fill: order {cl_ord_id} traded {qty} @ {price}, {leaves_qty} left");
            filled += 1;
        }
    }

    // The rest of the sell is still on the book: take it off.
    conn.send_cancel(3, 1, INSTRUMENT)?;
    common::next_reply(&mut conn)?;
    common::log_out(conn)
}
