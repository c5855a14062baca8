//! A TCP proxy in front of the simulator that can stop answering: connections open, requests
//! go out, nothing ever comes back. What a client sees of a hung or partitioned API server.

use std::io;
use std::net::SocketAddr;

use jobify_sim::kubernetes::KubeSim;

use super::cluster::client_to;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

/// The proxy; dropping it closes every connection.
pub struct Proxy {
    addr: SocketAddr,
    frozen: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Proxy {
    /// A proxy forwarding to `sim`.
    pub async fn start(sim: &KubeSim) -> Self {
        let upstream: SocketAddr = sim
            .url()
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .parse()
            .expect("the simulator listens on host:port");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let (frozen, watching) = watch::channel(false);
        let task = tokio::spawn(accept(listener, upstream, watching));
        Proxy { addr, frozen, task }
    }

    /// A client that talks to the simulator through this proxy.
    pub fn client(&self) -> kube::Client {
        client_to(&format!("http://{}", self.addr))
    }

    /// From now on, nothing answers: open connections are cut, new ones are accepted and
    /// never read.
    pub fn freeze(&self) {
        self.frozen.send_replace(true);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept(listener: TcpListener, upstream: SocketAddr, frozen: watch::Receiver<bool>) {
    let mut connections = JoinSet::new();
    while let Ok((client, _)) = listener.accept().await {
        let mut frozen = frozen.clone();
        connections.spawn(async move {
            if *frozen.borrow_and_update() {
                // Hold the connection open without reading it, until the proxy is dropped.
                let _held = client;
                return std::future::pending::<()>().await;
            }
            let Ok(server) = TcpStream::connect(upstream).await else {
                return;
            };
            tokio::select! {
                _ = frozen.wait_for(|f| *f) => {}
                _ = pump(&client, &server) => {}
                _ = pump(&server, &client) => {}
            }
        });
    }
}

/// Copies bytes from `from` to `to` until `from` closes.
async fn pump(from: &TcpStream, to: &TcpStream) -> io::Result<()> {
    let mut buf = vec![0; 16 * 1024];
    loop {
        from.readable().await?;
        let n = match from.try_read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => continue,
            Err(err) => return Err(err),
        };
        let mut written = 0;
        while written < n {
            to.writable().await?;
            match to.try_write(&buf[written..n]) {
                Ok(k) => written += k,
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
                Err(err) => return Err(err),
            }
        }
    }
}
