//! `aurum-dashboard`: the gold datamarts in a browser. A server-rendered site (axum +
//! askama, SVG charts drawn on the server) that reads the gold data through the gold
//! API with each user's own token, and works without JavaScript.

pub mod api_client;
pub mod cache;
pub mod charts;
pub mod config;
pub mod csv;
pub mod data;
pub mod filters;
pub mod gold;
pub mod pages;
pub mod server;
pub mod session;

pub use server::{ServeError, serve};
