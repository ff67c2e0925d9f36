//! A TCP client bound to a chosen loopback source address (127.0.0.x)
//! before it connects: std has no bind-before-connect, so this uses libc
//! (a dependency of the crate) and hands the socket to a `TcpStream`.
#![allow(dead_code)]

use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::fd::FromRawFd;

fn sockaddr_in(ip: Ipv4Addr, port: u16) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes(ip.octets()),
        },
        sin_zero: [0; 8],
    }
}

/// An unconnected IPv4 stream socket bound to `local` (any port).
pub fn bound_socket(local: Ipv4Addr) -> io::Result<TcpStream> {
    // SAFETY: plain socket(2); the result is checked and owned at once.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor nothing else owns.
    let stream = unsafe { TcpStream::from_raw_fd(fd) };
    let sin = sockaddr_in(local, 0);
    // SAFETY: sin is a valid sockaddr_in and its exact size is passed.
    let r = unsafe {
        libc::bind(
            fd,
            (&raw const sin).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(stream)
}

/// Connects `stream` (from [`bound_socket`]) to `to`, blocking.
pub fn connect(stream: &TcpStream, to: SocketAddr) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let SocketAddr::V4(to) = to else {
        return Err(io::Error::other("IPv4 only"));
    };
    let sin = sockaddr_in(*to.ip(), to.port());
    // SAFETY: sin is a valid sockaddr_in and its exact size is passed; the
    // descriptor is owned by `stream`, which outlives the call.
    let r = unsafe {
        libc::connect(
            stream.as_raw_fd(),
            (&raw const sin).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A connection to `to` from `local`.
pub fn connect_from(local: Ipv4Addr, to: SocketAddr) -> io::Result<TcpStream> {
    let stream = bound_socket(local)?;
    connect(&stream, to)?;
    stream.set_nodelay(true)?;
    Ok(stream)
}
