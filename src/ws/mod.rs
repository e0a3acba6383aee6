//! The WebSocket side (work in progress).
