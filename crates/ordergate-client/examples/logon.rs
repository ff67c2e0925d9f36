//! Log on to a gateway and log out again: the smallest use of the client.
//!
//! ```text
//! cargo run -p ordergate-client --example logon -- 127.0.0.1:9000 1001 key.hex
//! ```

mod common;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let conn = common::log_on()?;
    common::log_out(conn)
}
