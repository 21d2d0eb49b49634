//! An axum router served on its own thread and tokio runtime, so in-process stand-ins work the
//! same from sync tests, async tests (no nested runtime) and benches

use std::net::SocketAddr;
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::oneshot;

use crate::TestkitError;

/// A running server; stopped (and every connection dropped) on Drop
#[derive(Debug)]
pub(crate) struct ServerThread {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl ServerThread {
    /// Binds 127.0.0.1:0 (a free port, no race) and serves `app` until dropped
    pub(crate) fn start(what: &str, app: axum::Router) -> Result<ServerThread, TestkitError> {
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0))
            .map_err(|e| TestkitError::io(format!("bind 127.0.0.1:0 for {what}"), e))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| TestkitError::io(format!("make the {what} listener non-blocking"), e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| TestkitError::io(format!("read the {what} address"), e))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| TestkitError::io(format!("build the {what} runtime"), e))?;
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(what.to_owned())
            .spawn(move || {
                runtime.block_on(async move {
                    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                        return;
                    };
                    tokio::select! {
                        _ = axum::serve(listener, app) => {}
                        _ = stopped => {}
                    }
                });
                // Dropping the runtime cancels open connections, so keep-alive clients cannot
                // hold the thread (a graceful shutdown would wait for them).
                runtime.shutdown_timeout(Duration::from_millis(100));
            })
            .map_err(|e| TestkitError::io(format!("spawn the {what} thread"), e))?;
        Ok(ServerThread {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for ServerThread {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
