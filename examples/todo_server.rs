//! A service of your own proto behind the production server: a shared to-do list
//! (`proto/todo.proto`, package `todo.v1`, service `Todos`: `Add`, `List`, and `Watch` streaming
//! every change), with health, reflection, limits, a per-call tracing span and graceful shutdown.
//! No Greeter.
//!
//! To build it in a crate of your own, copy this file to `src/main.rs` and `proto/todo.proto`
//! beside it, this `build.rs` (the README's "Your own service" explains it):
//!
//! ```rust,build.rs
//! use prost::Message;
//!
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     println!("cargo:rerun-if-changed=proto/todo.proto");
//!     let descriptors = protox::compile(["proto/todo.proto"], ["proto"])?;
//!     let out_dir = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
//!     // For reflection: what `grpcurl list` and `describe` read.
//!     std::fs::write(out_dir.join("todo_descriptor.bin"), descriptors.encode_to_vec())?;
//!     tonic_prost_build::configure()
//!         .build_client(false) // a server; keep it if you call the service from Rust too
//!         .compile_fds(descriptors)?;
//!     Ok(())
//! }
//! ```
//!
//! and this in your `Cargo.toml`:
//!
//! ```toml
//! [dependencies]
//! wsgrpc = { version = "0.1", default-features = false, features = ["grpc"] }
//! tokio = { version = "1.47", features = ["macros", "rt-multi-thread", "net", "signal", "sync"] }
//! tonic = { version = "0.14.2", default-features = false, features = ["codegen"] }
//! tonic-prost = "0.14.2"
//! prost = "0.14"
//! futures = "0.3.31"
//! tracing-subscriber = { version = "0.3.19", features = ["env-filter"] }
//!
//! [build-dependencies]
//! protox = "0.10"
//! tonic-prost-build = "0.14.2"
//! prost = "0.14"
//! ```
//!
//! Try it:
//!
//! ```text
//! cargo run --example todo_server --features grpc   # 127.0.0.1:50052; or pass ADDR / set ADDR=
//! grpcurl -plaintext 127.0.0.1:50052 list
//! grpcurl -plaintext 127.0.0.1:50052 describe todo.v1.Todos
//! grpcurl -plaintext -d '{}' 127.0.0.1:50052 todo.v1.Todos/Watch        # in a second terminal
//! grpcurl -plaintext -d '{"title":"buy milk"}' 127.0.0.1:50052 todo.v1.Todos/Add
//! grpcurl -plaintext -d '{}' 127.0.0.1:50052 todo.v1.Todos/List
//! grpcurl -plaintext -d '{"service":"todo.v1.Todos"}' 127.0.0.1:50052 grpc.health.v1.Health/Check
//! ```

use std::{
    pin::Pin,
    sync::{Arc, Mutex},
};

use futures::{Stream, stream};
use tokio::sync::{broadcast, watch};
use tonic::{Request, Response, Status};
use wsgrpc::grpc::{Config, GrpcServer};

/// The code `build.rs` generates from `proto/todo.proto`, and its descriptors for reflection.
pub mod pb {
    #![allow(clippy::all, missing_docs, unreachable_pub)]
    tonic::include_proto!("todo.v1");

    /// The encoded `FileDescriptorSet` of `todo.proto`, written by `build.rs`.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/todo_descriptor.bin"));
}

use pb::{
    AddRequest, Change, ListRequest, ListResponse, Todo, WatchRequest,
    change::Kind,
    todos_server::{Todos, TodosServer},
};

const DEFAULT_ADDR: &str = "127.0.0.1:50052";
/// Longest title accepted, in bytes.
pub const MAX_TITLE_LEN: usize = 256;
/// Most items the list holds; an `Add` past it gets RESOURCE_EXHAUSTED, so memory stays bounded.
pub const MAX_ITEMS: usize = 10_000;
/// Changes kept for watchers that have not read them yet (one buffer shared by all watchers; each
/// watcher is a cursor into it). A watcher more than this far behind skips ahead and is sent
/// `missed: N` instead of the N changes it lost, so it knows to call `List` again.
pub const WATCH_BUFFER: usize = 64;

/// The to-do list: the `todo.v1.Todos` implementation.
#[derive(Clone)]
pub struct TodoList {
    items: Arc<Mutex<Vec<Todo>>>,
    changes: broadcast::Sender<Todo>,
    /// Set on shutdown, so `Watch` streams end (with OK) instead of holding the drain open.
    closed: watch::Sender<bool>,
}

impl Default for TodoList {
    fn default() -> Self {
        TodoList {
            items: Arc::default(),
            changes: broadcast::channel(WATCH_BUFFER).0,
            closed: watch::channel(false).0,
        }
    }
}

impl TodoList {
    /// Ends every `Watch` stream, now and for later calls.
    pub fn close(&self) {
        self.closed.send_replace(true);
    }
}

type ChangeStream = Pin<Box<dyn Stream<Item = Result<Change, Status>> + Send>>;

#[tonic::async_trait]
impl Todos for TodoList {
    async fn add(&self, request: Request<AddRequest>) -> Result<Response<Todo>, Status> {
        let title = request.into_inner().title;
        if title.trim().is_empty() {
            return Err(Status::invalid_argument("title must not be empty"));
        }
        if title.len() > MAX_TITLE_LEN {
            return Err(Status::invalid_argument(format!(
                "title is {} bytes long, the limit is {MAX_TITLE_LEN}",
                title.len()
            )));
        }
        let todo = {
            let mut items = self
                .items
                .lock()
                .unwrap_or_else(|poison| poison.into_inner());
            if items.len() >= MAX_ITEMS {
                return Err(Status::resource_exhausted(format!(
                    "the list is full ({MAX_ITEMS} items)"
                )));
            }
            let todo = Todo {
                id: items.len() as u64 + 1,
                title,
            };
            items.push(todo.clone());
            // Sent under the lock, so watchers see changes in id order. No watcher: not an error.
            let _ = self.changes.send(todo.clone());
            todo
        };
        Ok(Response::new(todo))
    }

    async fn list(&self, _request: Request<ListRequest>) -> Result<Response<ListResponse>, Status> {
        let items = self
            .items
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        Ok(Response::new(ListResponse {
            items: items.clone(),
        }))
    }

    type WatchStream = ChangeStream;

    async fn watch(
        &self,
        _request: Request<WatchRequest>,
    ) -> Result<Response<ChangeStream>, Status> {
        let changes = self.changes.subscribe();
        let closed = self.closed.subscribe();
        // Pulled by tonic as the client reads: nothing is queued per watcher beyond its cursor.
        let stream = stream::unfold((changes, closed), |(mut changes, mut closed)| async move {
            let kind = tokio::select! {
                change = changes.recv() => match change {
                    Ok(todo) => Kind::Added(todo),
                    Err(broadcast::error::RecvError::Lagged(missed)) => Kind::Missed(missed),
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
                _ = closed.wait_for(|closed| *closed) => return None,
            };
            let change = Change { kind: Some(kind) };
            Some((Ok(change), (changes, closed)))
        });
        Ok(Response::new(Box::pin(stream)))
    }
}

/// The server: the to-do list, its descriptors for reflection, and the settings.
pub fn server(todos: TodoList) -> GrpcServer {
    let config = Config::default().max_decoding_message_size(64 * 1024);
    GrpcServer::builder()
        .add_service_with(move |config| wsgrpc::configure_service!(TodosServer::new(todos), config))
        .file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .config(config)
}

#[allow(dead_code)] // the tests include this file for `server` and call no `main`
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();

    let addr = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("ADDR").ok())
        .unwrap_or_else(|| DEFAULT_ADDR.to_owned());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("listening on {}", listener.local_addr()?);

    let todos = TodoList::default();
    let shutdown = {
        let todos = todos.clone();
        async move {
            let _ = tokio::signal::ctrl_c().await;
            todos.close();
        }
    };
    server(todos).serve(listener, shutdown).await?;
    Ok(())
}
