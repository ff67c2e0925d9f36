//! What every example needs: where the gateway is and which key to log on
//! with, from the command line, and a logged-on connection.
//!
//! ```text
//! cargo run -p ordergate-client --example NAME -- ADDR KEY_ID SECRET_FILE
//! ```
//!
//! `SECRET_FILE` holds the key's 64 hex digits, mode 0600, as `ordergate
//! keys new --secret-file` writes it (README, "A first run").

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use ordergate_client::{ConnectOptions, Connection, Reply, read_secret_file};

const USAGE: &str = "usage: ADDR KEY_ID SECRET_FILE  (e.g. 127.0.0.1:9000 1001 key.hex)";

/// Reads the arguments and logs on; prints what the gateway granted.
pub fn log_on() -> Result<Connection, Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(addr), Some(key_id), Some(secret_file)) = (args.next(), args.next(), args.next())
    else {
        return Err(USAGE.into());
    };
    let addr: SocketAddr = addr.parse().map_err(|e| format!("ADDR {addr}: {e}"))?;
    let key_id: u64 = key_id
        .parse()
        .map_err(|e| format!("KEY_ID {key_id}: {e}"))?;
    let secret = read_secret_file(&PathBuf::from(secret_file))?;
    let conn = Connection::connect(addr, key_id, secret, &ConnectOptions::default())?;
    let grant = conn.grant();
    println!(
        "logged on to {addr} as key {key_id}: session {}, keepalive {} ms",
        grant.session_id, grant.keepalive_ms
    );
    Ok(conn)
}

/// The next reply, waiting up to a second; heartbeats are skipped.
pub fn next_reply(conn: &mut Connection) -> Result<Reply, Box<dyn std::error::Error>> {
    loop {
        match conn.recv(Duration::from_secs(1))? {
            Some(Reply::Heartbeat) => continue,
            Some(reply) => {
                println!("  <- {reply:?}");
                return Ok(reply);
            }
            None => return Err("no answer within a second".into()),
        }
    }
}

/// Logs out and waits for the gateway's Terminate.
pub fn log_out(mut conn: Connection) -> Result<(), Box<dyn std::error::Error>> {
    conn.send_logout()?;
    next_reply(&mut conn)?;
    conn.close();
    Ok(())
}
